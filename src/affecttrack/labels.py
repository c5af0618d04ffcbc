"""Expression names and where each basic expression sits in valence/arousal space.

Aff-Wild2 annotates valence/arousal and expressions separately; the synthetic generator (and any
analysis that relates the two) needs one fixed map between them. The centroids follow the
placements of the circumplex model of affect (Russell, 1980) as Aff-Wild2's papers draw them:
pleasant emotions right, unpleasant left, activated ones up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

from affecttrack.errors import AffectTrackError

AFFWILD2_EXPRESSIONS: tuple[str, ...] = (
    "Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")

# (valence, arousal) of each expression, in AFFWILD2_EXPRESSIONS order.
EXPRESSION_VA: dict[str, tuple[float, float]] = {
    "Neutral": (0.0, 0.0),
    "Anger": (-0.5, 0.6),
    "Disgust": (-0.6, 0.2),
    "Fear": (-0.35, 0.8),
    "Happiness": (0.6, 0.3),
    "Sadness": (-0.6, -0.4),
    "Surprise": (0.2, 0.75),
}

EXPRESSION_CENTROIDS: np.ndarray = np.array(
    [EXPRESSION_VA[name] for name in AFFWILD2_EXPRESSIONS], dtype=np.float64)
EXPRESSION_CENTROIDS.flags.writeable = False

# Aff-Wild2's markers for a frame without annotation.
VA_UNANNOTATED = -5.0
EXPRESSION_UNANNOTATED = -1
AU_UNANNOTATED = -1

# The action units Aff-Wild2's AU_Set annotates: 8 in the 2020 release, 12 from 2022 on.
ACTION_UNITS_2020: tuple[str, ...] = ("AU1", "AU2", "AU4", "AU6", "AU12", "AU15", "AU20", "AU25")
ACTION_UNITS_LATER: tuple[str, ...] = ("AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15",
                                       "AU23", "AU24", "AU25", "AU26")


def is_action_unit(name: str) -> bool:
    """Whether `name` is an action unit's name as Aff-Wild2's files and our tables write it."""
    return re.fullmatch(r"AU\d+", name) is not None


def sorted_action_units(names: Iterable[str]) -> tuple[str, ...]:
    """Action-unit names ("AU12") without repeats, in the order of their FACS numbers."""
    return tuple(sorted(set(names), key=lambda name: (int(name[2:]), name)))


def nearest_centroid(valence: np.ndarray | float, arousal: np.ndarray | float,
                     centroids: np.ndarray) -> np.ndarray:
    """Index of the centroid ((k, 2) valence/arousal rows) nearest to each (v, a) point, in the
    points' shape; -1 for a point with a NaN.

    A centroid with a NaN (a class that no labelled frame placed) is never chosen, so centroids
    measured on data that lack a class still map every point; with none usable there is no map.
    """
    centroids = np.asarray(centroids, dtype=np.float64).reshape(-1, 2)
    usable = np.isfinite(centroids).all(axis=1)
    if not usable.any():
        raise AffectTrackError("nearest_centroid: no centroid with finite valence and arousal")
    points = np.stack(np.broadcast_arrays(np.asarray(valence, dtype=np.float64),
                                          np.asarray(arousal, dtype=np.float64)), axis=-1)
    distances = np.linalg.norm(points[..., None, :] - np.where(usable[:, None], centroids, 0.0),
                               axis=-1)
    distances[..., ~usable] = np.inf
    nearest = np.argmin(distances, axis=-1)
    return np.where(np.isfinite(points).all(axis=-1), nearest,
                    EXPRESSION_UNANNOTATED).astype(np.int64)


def expression_from_va(valence: np.ndarray | float, arousal: np.ndarray | float) -> np.ndarray:
    """Index (Aff-Wild2 order) of the expression whose centroid is nearest to each (v, a) point.

    Neutral's centroid is the origin, so weak affect (a point closer to the origin than to any
    emotion) reads as Neutral, as annotators label it.
    """
    return nearest_centroid(valence, arousal, EXPRESSION_CENTROIDS)


# The basic expressions under one spelling each, so that datasets naming them differently (CK+'s
# "happy", Aff-Wild2's "Happiness", a user's "HAPPY") can be matched and mapped onto each other.
CKPLUS_EXPRESSIONS: tuple[str, ...] = (
    "Neutral", "Anger", "Contempt", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")
JAFFE_EXPRESSIONS: tuple[str, ...] = AFFWILD2_EXPRESSIONS

_SYNONYMS: dict[str, str] = {
    "neutral": "Neutral", "neu": "Neutral", "ne": "Neutral", "calm": "Neutral",
    "anger": "Anger", "angry": "Anger", "ang": "Anger", "an": "Anger",
    "contempt": "Contempt", "contemptuous": "Contempt", "con": "Contempt",
    "disgust": "Disgust", "disgusted": "Disgust", "dis": "Disgust", "di": "Disgust",
    "fear": "Fear", "fearful": "Fear", "afraid": "Fear", "scared": "Fear", "fe": "Fear",
    "happiness": "Happiness", "happy": "Happiness", "joy": "Happiness", "hap": "Happiness",
    "ha": "Happiness",
    "sadness": "Sadness", "sad": "Sadness", "sa": "Sadness",
    "surprise": "Surprise", "surprised": "Surprise", "sur": "Surprise", "su": "Surprise",
    "other": "Other",
}


# Contempt is not in Aff-Wild2's set: mildly unpleasant, mildly activated, between Neutral and
# Disgust (where the circumplex studies that include it place it).
_EXTRA_VA: dict[str, tuple[float, float]] = {"Contempt": (-0.4, 0.25)}


def expression_va(labels: tuple[str, ...] | list[str]) -> np.ndarray | None:
    """(k, 2) valence/arousal centroids for the classes `labels` (any common spelling), or None
    when one of them (such as "Other") has no place in valence/arousal space."""
    known = {**EXPRESSION_VA, **_EXTRA_VA}
    names = [canonical_expression(label) for label in labels]
    if not names or any(name not in known for name in names):
        return None
    return np.array([known[name] for name in names], dtype=np.float64)


def va_from_probabilities(probabilities: np.ndarray,
                          labels: tuple[str, ...] | list[str]) -> np.ndarray | None:
    """Valence/arousal as the probability-weighted mean of the classes' centroids: the follow-up
    paper's category-to-valence/arousal mapping, which gives an expression-only model a
    continuous reading (None when a class has no centroid)."""
    centroids = expression_va(labels)
    if centroids is None:
        return None
    return probabilities_to_va(probabilities, centroids)


def probabilities_to_va(probabilities: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(..., 2) valence/arousal as the probability-weighted mean of the (k, 2) centroids.

    Classes whose centroid has a NaN (absent from the data the centroids were measured on) are
    left out and the remaining weights renormalised, so a little probability on such a class
    does not turn the whole reading into NaN (only a row with all its weight there is NaN); with
    all centroids known the map stays linear.
    """
    centroids = np.asarray(centroids, dtype=np.float64).reshape(-1, 2)
    known = np.isfinite(centroids).all(axis=1)
    weights = np.asarray(probabilities, dtype=np.float64)[..., known]
    va = weights @ centroids[known]
    if known.all():
        return va
    with np.errstate(invalid="ignore", divide="ignore"):
        return va / weights.sum(axis=-1, keepdims=True)


def canonical_expression(name: str) -> str | None:
    """The canonical name (as in CKPLUS_EXPRESSIONS, or "Other") of a label spelled any common
    way, case-insensitively; None when the name is not a known expression."""
    return _SYNONYMS.get(str(name).strip().lower())


def map_expressions(source: tuple[str, ...], target: tuple[str, ...]) -> np.ndarray:
    """For each class of `source`, its index in `target` (-1 where `target` lacks it), matched by
    canonical name: how a model trained on CK+'s 8 classes is scored on JAFFE's 7."""
    positions = {canonical_expression(name): i for i, name in enumerate(target)}
    return np.array([positions.get(canonical_expression(name), -1) for name in source],
                    dtype=np.int64)
