"""Scores of action-unit detection as the ABAW challenges report them: F1 per unit, averaged.

Each unit is a yes/no decision per frame (probability >= the threshold); frames where a unit's
label is unknown (-1) do not count for that unit. A unit never active in the labels and never
predicted active has no positives to find: its F1 is 0, as torchmetrics and the challenge's
scikit-learn script both count it, so a model cannot score by saying "never".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torchmetrics.functional.classification import multilabel_f1_score

from affecttrack.errors import AffectTrackError


def action_unit_metrics(y_true: np.ndarray, probabilities: np.ndarray, names: Sequence[str],
                        threshold: float = 0.5) -> dict[str, Any]:
    """{"f1_mean", "f1": {unit: F1}, "active_share": {unit: share of known labels active},
    "frames": frames with any unit known} for (n, k) labels (0/1, -1 unknown) and
    probabilities."""
    y_true = np.asarray(y_true)
    probabilities = np.asarray(probabilities, dtype=np.float32)
    if y_true.ndim != 2 or y_true.shape != probabilities.shape or y_true.shape[1] != len(names):
        raise AffectTrackError(f"action-unit metrics need (n, {len(names)}) labels and "
                               f"probabilities, got {y_true.shape} and {probabilities.shape}")
    if not set(np.unique(y_true).tolist()) <= {-1, 0, 1}:
        raise AffectTrackError("action-unit labels must be 0, 1 or -1 (unknown)")
    f1 = multilabel_f1_score(torch.from_numpy(probabilities), torch.from_numpy(
        y_true.astype(np.int64)), num_labels=len(names), threshold=threshold, average="none",
        ignore_index=-1).numpy().astype(np.float64)
    known = y_true >= 0
    share = np.divide((y_true == 1).sum(axis=0), known.sum(axis=0),
                      out=np.zeros(len(names)), where=known.sum(axis=0) > 0)
    return {"f1_mean": float(f1.mean()), "f1": dict(zip(names, f1.round(4).tolist())),
            "active_share": dict(zip(names, share.round(4).tolist())),
            "frames": int(known.any(axis=1).sum())}
