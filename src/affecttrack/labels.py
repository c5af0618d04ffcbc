"""Expression names and where each basic expression sits in valence/arousal space.

Aff-Wild2 annotates valence/arousal and expressions separately; the synthetic generator (and any
analysis that relates the two) needs one fixed map between them. The centroids follow the
placements of the circumplex model of affect (Russell, 1980) as Aff-Wild2's papers draw them:
pleasant emotions right, unpleasant left, activated ones up.
"""

from __future__ import annotations

import numpy as np

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


def expression_from_va(valence: np.ndarray | float, arousal: np.ndarray | float) -> np.ndarray:
    """Index (Aff-Wild2 order) of the expression whose centroid is nearest to each (v, a) point.

    Neutral's centroid is the origin, so weak affect (a point closer to the origin than to any
    emotion) reads as Neutral, as annotators label it.
    """
    points = np.stack(np.broadcast_arrays(np.asarray(valence, dtype=np.float64),
                                          np.asarray(arousal, dtype=np.float64)), axis=-1)
    distances = np.linalg.norm(points[..., None, :] - EXPRESSION_CENTROIDS, axis=-1)
    return np.argmin(distances, axis=-1).astype(np.int64)
