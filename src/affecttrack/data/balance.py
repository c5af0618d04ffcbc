"""The paper's downsampling of Aff-Wild2 training frames (subsets 1, 2 and 3).

Aff-Wild2's valence/arousal labels pile up around neutral and mildly positive values, so a model
trained on all frames learns to predict the crowd. The paper thins crowded regions of the
valence/arousal plane: each frame is kept with probability p = 1 - k / N, where k is the number of
frames in its cell of a 40 x 40 grid over [-1, 1]^2 and N is a reference count that sets how hard
the crowd is cut. Frames whose valence and arousal are both exactly 0 are dropped first: they are
mostly placeholder annotations, not real neutral faces.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from affecttrack.errors import AffectTrackError

Subset = Literal["none", "subset1", "subset2", "subset3"]
SUBSETS: tuple[str, ...] = ("none", "subset1", "subset2", "subset3")
BINS = 40
_EDGES = np.linspace(-1.0, 1.0, BINS + 1)


def va_histogram(valence: np.ndarray, arousal: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Frame counts on a bins x bins grid over [-1, 1]^2 (rows: valence, columns: arousal).

    Values of exactly 1.0 fall into the last bin, as np.histogram2d puts them.
    """
    counts, _, _ = np.histogram2d(valence, arousal, bins=bins, range=[[-1, 1], [-1, 1]])
    return counts.astype(np.int64)


def _bin_index(values: np.ndarray) -> np.ndarray:
    """Grid cell of each value, with the same edges and right-edge rule as np.histogram2d."""
    return np.clip(np.searchsorted(_EDGES, values, side="right") - 1, 0, BINS - 1)


def _labelled(valence: np.ndarray, arousal: np.ndarray) -> np.ndarray:
    """Frames with a valence/arousal label; rejects labels outside [-1, 1]."""
    labelled = np.isfinite(valence) & np.isfinite(arousal)
    outside = labelled & ((np.abs(valence) > 1) | (np.abs(arousal) > 1))
    if outside.any():
        raise AffectTrackError(f"{int(outside.sum())} valence/arousal labels lie outside [-1, 1]; "
                               "balancing expects labels in [-1, 1]")
    return labelled


def reference_count(counts: np.ndarray, subset: Subset) -> float:
    """N of p = 1 - k / N for a subset.

    subset1: the largest bin count; subset2: the mean count of the bins that hold frames (the
    paper's public code averaged over non-empty bins only; averaging over all 1600 bins would make N
    tiny and drop almost everything); subset3: the mean of those two.
    """
    largest = float(counts.max()) if counts.size else 0.0
    nonempty = counts[counts > 0]
    mean = float(nonempty.mean()) if nonempty.size else 0.0
    references = {"subset1": largest, "subset2": mean, "subset3": (largest + mean) / 2}
    if subset not in references:
        raise AffectTrackError(f"unknown balancing subset {subset!r}; expected one of {SUBSETS}")
    return references[subset]


def keep_probability(valence: np.ndarray, arousal: np.ndarray, subset: Subset) -> np.ndarray:
    """Probability of keeping each frame; 0 for unlabelled frames.

    "none" keeps every labelled frame. The other subsets drop frames with valence == arousal == 0,
    build the grid from the remaining labelled frames and keep with p = max(0, 1 - k / N).
    """
    if subset not in SUBSETS:
        raise AffectTrackError(f"unknown balancing subset {subset!r}; expected one of {SUBSETS}")
    valence = np.asarray(valence, dtype=np.float64)
    arousal = np.asarray(arousal, dtype=np.float64)
    labelled = _labelled(valence, arousal)
    if subset == "none":
        return labelled.astype(np.float64)
    eligible = labelled & ~((valence == 0) & (arousal == 0))
    probability = np.zeros(valence.shape, dtype=np.float64)
    if not eligible.any():
        return probability
    counts = va_histogram(valence[eligible], arousal[eligible])
    k = counts[_bin_index(valence[eligible]), _bin_index(arousal[eligible])]
    probability[eligible] = np.clip(1.0 - k / reference_count(counts, subset), 0.0, 1.0)
    return probability


def balance_mask(valence: np.ndarray, arousal: np.ndarray, subset: Subset,
                 rng: np.random.Generator) -> np.ndarray:
    """Which frames a balanced training set keeps (a draw of `keep_probability`)."""
    probability = keep_probability(valence, arousal, subset)
    return rng.random(probability.shape) < probability
