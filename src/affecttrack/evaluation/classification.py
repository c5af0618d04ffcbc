"""Scoring expression predictions: accuracy, macro-F1, per-class recall and the confusion matrix.

Predictions may come from a model trained on another dataset whose classes differ (CK+'s 8 with
contempt, scored on JAFFE's 7). Predicted classes are matched to the test labels by canonical
name (`labels.map_expressions`); a prediction of a class the test set lacks can never be right, so
it counts as an error, the confusion matrix gets a column for it, and the share of such predictions
is reported as `unmapped_fraction`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_recall,
)

from affecttrack.errors import AffectTrackError
from affecttrack.labels import map_expressions


def confusion_columns(class_names: Sequence[str],
                      predicted_names: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """The confusion matrix's column names (the test classes, then predicted classes the test set
    lacks) and, for each predicted class, its column."""
    class_names = list(class_names)
    if predicted_names is None or list(predicted_names) == class_names:
        return class_names, np.arange(len(class_names))
    mapping = map_expressions(tuple(predicted_names), tuple(class_names))
    extra = np.flatnonzero(mapping < 0)
    columns = mapping.copy()
    columns[extra] = len(class_names) + np.arange(len(extra))
    return class_names + [predicted_names[i] for i in extra], columns


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str],
                           predicted_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Scores of predicted classes `y_pred` (indices into `predicted_names`, by default the same
    classes as the labels) against labels `y_true` (indices into `class_names`).

    Returns a JSON-ready dict: n, accuracy, macro_f1 (mean F1 over the classes present in the
    labels), recall and f1 per class (None for classes absent from the labels), support,
    unmapped_fraction (predictions of classes the labels lack), and the confusion matrix (rows:
    true classes, columns: `confusion_columns`).
    """
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise AffectTrackError(f"classification_metrics: need equally many labels and "
                               f"predictions, at least one; got {y_true.size} and {y_pred.size}")
    columns, column_of = confusion_columns(class_names, predicted_names)
    n_true = len(class_names)
    _check_range(y_true, n_true, "label")
    _check_range(y_pred, len(column_of), "prediction")
    target, preds = torch.from_numpy(y_true), torch.from_numpy(column_of[y_pred])
    n = len(columns)
    confusion = multiclass_confusion_matrix(preds, target, num_classes=n)[:n_true].numpy()
    recall = multiclass_recall(preds, target, num_classes=n, average=None)[:n_true].numpy()
    f1 = multiclass_f1_score(preds, target, num_classes=n, average=None)[:n_true].numpy()
    support = confusion.sum(axis=1)
    present = support > 0
    return {
        "n": int(y_true.size),
        "accuracy": float(multiclass_accuracy(preds, target, num_classes=n, average="micro")),
        "macro_f1": float(f1[present].mean()),
        "unmapped_fraction": float((column_of[y_pred] >= n_true).mean()),
        "recall": _per_class(class_names, recall, present),
        "f1": _per_class(class_names, f1, present),
        "support": {name: int(count) for name, count in zip(class_names, support)},
        "confusion": {"rows": list(class_names), "columns": columns,
                      "counts": confusion.tolist()},
    }


def _check_range(values: np.ndarray, size: int, what: str) -> None:
    if values.min() < 0 or values.max() >= size:
        raise AffectTrackError(f"classification_metrics: {what} indices must lie in 0..{size - 1}, "
                               f"got {values.min()}..{values.max()}")


def _per_class(names: Sequence[str], values: np.ndarray,
               present: np.ndarray) -> dict[str, float | None]:
    return {name: float(value) if there else None
            for name, value, there in zip(names, values, present)}


def summarise_folds(folds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample standard deviation over folds of accuracy, macro-F1, the unmapped fraction
    and each class's recall (over the folds whose labels hold the class); std is None for a
    single fold."""
    scalars = ("accuracy", "macro_f1", "unmapped_fraction")
    summary: dict[str, Any] = {"mean": {}, "std": {}}
    for key in scalars:
        summary["mean"][key], summary["std"][key] = mean_std([fold[key] for fold in folds])
    names = list(folds[0]["recall"]) if folds else []
    recalls = {name: mean_std([fold["recall"][name] for fold in folds
                                if fold["recall"][name] is not None]) for name in names}
    summary["mean"]["recall"] = {name: value[0] for name, value in recalls.items()}
    summary["std"]["recall"] = {name: value[1] for name, value in recalls.items()}
    return summary


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None for a single value; both None for none)."""
    if not values:
        return None, None
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return float(np.mean(values)), std

