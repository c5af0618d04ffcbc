"""The fixed map between expressions and valence/arousal space."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from affecttrack.labels import (
    AFFWILD2_EXPRESSIONS,
    EXPRESSION_CENTROIDS,
    EXPRESSION_VA,
    expression_from_va,
)

unit = st.floats(-1.0, 1.0, allow_nan=False)


def test_expressions_are_in_affwild2_order():
    assert AFFWILD2_EXPRESSIONS == ("Neutral", "Anger", "Disgust", "Fear", "Happiness",
                                    "Sadness", "Surprise")
    assert set(EXPRESSION_VA) == set(AFFWILD2_EXPRESSIONS)
    assert not EXPRESSION_CENTROIDS.flags.writeable


def test_each_centroid_maps_to_its_expression():
    valence, arousal = EXPRESSION_CENTROIDS.T
    assert expression_from_va(valence, arousal).tolist() == list(range(7))


def test_circumplex_quadrants():
    assert AFFWILD2_EXPRESSIONS[int(expression_from_va(0.8, 0.4))] == "Happiness"
    assert AFFWILD2_EXPRESSIONS[int(expression_from_va(-0.7, -0.6))] == "Sadness"
    assert AFFWILD2_EXPRESSIONS[int(expression_from_va(0.05, -0.05))] == "Neutral"


def test_vectorised_over_any_shape():
    valence = np.zeros((3, 4))
    arousal = np.linspace(-1, 1, 12).reshape(3, 4)
    labels = expression_from_va(valence, arousal)
    assert labels.shape == (3, 4) and labels.dtype == np.int64
    assert expression_from_va(0.6, 0.3).shape == ()


@given(unit, unit)
def test_weak_affect_reads_as_neutral(valence, arousal):
    """Within half the distance to the nearest emotion every point is Neutral."""
    radius = np.linalg.norm(EXPRESSION_CENTROIDS[1:], axis=1).min() / 2
    scale = 0.99 * radius / max(np.hypot(valence, arousal), radius)
    assert expression_from_va(valence * scale, arousal * scale) == 0


@given(unit, unit)
def test_moving_towards_a_centroid_keeps_the_label(valence, arousal):
    label = int(expression_from_va(valence, arousal))
    cv, ca = EXPRESSION_CENTROIDS[label]
    assert expression_from_va((valence + cv) / 2, (arousal + ca) / 2) == label
