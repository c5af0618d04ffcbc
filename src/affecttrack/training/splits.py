"""Subject-independent evaluation protocols: the paper's hold-out and k-fold cross-validation.

Frames of one person are far more alike than frames of two people, so a model tested on a subject
it was trained on scores what it memorised, not what it learned. Every split here therefore divides
*subjects*, never frames: a subject's frames are all on one side.

The k-fold assignment is a small greedy stratification over subjects (the idea of scikit-learn's
StratifiedGroupKFold): subjects, largest first, each go to the fold that keeps every class's share
closest to equal across folds. A few lines of numpy instead of scikit-learn keep SciPy and
scikit-learn (~50 MB) out of the runtime dependencies for one function, and let the hold-out and the
folds share the same subject handling (at least one subject per fold, seeded ties).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from affecttrack.errors import AffectTrackError

HOLDOUT_ATTEMPTS = 200


@dataclass(frozen=True)
class Split:
    """Frames (rows of a face-store index) to train on and to test on, subject-disjoint."""

    train: pd.DataFrame
    test: pd.DataFrame

    @property
    def test_subjects(self) -> list[str]:
        return sorted(self.test["subject"].unique())


def subject_holdout(frames: pd.DataFrame, fraction: float = 0.1, seed: int = 0,
                    label: str = "expression") -> Split:
    """Hold out about `fraction` of the subjects (at least one, never all) as the test set.

    Draws are seeded; of up to HOLDOUT_ATTEMPTS draws the first that leaves every class of
    `frames[label]` in the training set is taken (a class seen by one subject only cannot be in
    both), otherwise the draw that leaves the most classes in training.
    """
    if not 0.0 < fraction < 1.0:
        raise AffectTrackError(f"hold-out fraction must be between 0 and 1, got {fraction}")
    subjects = _subjects(frames, minimum=2)
    n_test = int(np.clip(round(fraction * len(subjects)), 1, len(subjects) - 1))
    classes = set(frames[label].unique())
    rng = np.random.default_rng(seed)
    best, best_missing = None, len(classes) + 1
    for _ in range(HOLDOUT_ATTEMPTS):
        held_out = frames["subject"].isin(rng.choice(subjects, n_test, replace=False))
        missing = len(classes - set(frames.loc[~held_out, label].unique()))
        if missing < best_missing:
            best, best_missing = held_out, missing
        if missing == 0:
            break
    return Split(train=frames[~best], test=frames[best])


def subject_kfold(frames: pd.DataFrame, folds: int = 10, seed: int = 0,
                  label: str = "expression") -> list[Split]:
    """`folds` subject-disjoint test folds that together hold every frame once, stratified by
    `frames[label]` as far as whole subjects allow."""
    if folds < 2:
        raise AffectTrackError(f"k-fold cross-validation needs at least 2 folds, got {folds}")
    subjects = _subjects(frames, minimum=folds)
    counts = pd.crosstab(frames["subject"], frames[label]).reindex(subjects).to_numpy(np.float64)
    fold_of = _assign_folds(counts, folds, np.random.default_rng(seed))
    subject_fold = frames["subject"].map(dict(zip(subjects, fold_of))).to_numpy()
    return [Split(train=frames[subject_fold != k], test=frames[subject_fold == k])
            for k in range(folds)]


def _subjects(frames: pd.DataFrame, minimum: int) -> np.ndarray:
    subjects = np.array(sorted(frames["subject"].unique()))
    if len(subjects) < minimum:
        raise AffectTrackError(f"a subject-independent split needs at least {minimum} subjects; "
                               f"these frames have {len(subjects)}")
    return subjects


def _assign_folds(counts: np.ndarray, folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold of each subject (row of per-class `counts`): greedily the fold where each class's
    share of the data spreads least across folds, smaller folds first on ties, and every fold
    getting at least one subject."""
    totals = np.maximum(counts.sum(axis=0), 1.0)
    shuffled = rng.permutation(len(counts))
    order = shuffled[np.argsort(-counts[shuffled].sum(axis=1), kind="stable")]
    fold_counts = np.zeros((folds, counts.shape[1]))
    fold_sizes = np.zeros(folds, dtype=np.int64)
    fold_of = np.empty(len(counts), dtype=np.int64)
    for remaining, subject in zip(range(len(order), 0, -1), order):
        empty = np.flatnonzero(fold_sizes == 0)
        candidates = empty if remaining <= len(empty) else np.arange(folds)
        spread = [_class_spread(fold_counts, k, counts[subject], totals) for k in candidates]
        best = min(zip(spread, fold_counts[candidates].sum(axis=1), candidates))[2]
        fold_counts[best] += counts[subject]
        fold_sizes[best] += 1
        fold_of[subject] = best
    return fold_of


def _class_spread(fold_counts: np.ndarray, fold: int, added: np.ndarray,
                  totals: np.ndarray) -> float:
    """Mean over classes of the std across folds of the class's share, were `added` put in
    `fold`."""
    trial = fold_counts.copy()
    trial[fold] += added
    return float((trial / totals).std(axis=0).mean())
