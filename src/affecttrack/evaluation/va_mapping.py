"""How expression categories sit in valence/arousal space, and how well one head's output can be
read off the other's (issue 5, item 3; the follow-up paper's analysis).

Two maps join the spaces: valence/arousal -> category by the nearest category centroid, and
category probabilities -> valence/arousal as the probability-weighted centroid (both in
`labels`, where the fixed circumplex centroids use them too). Here the centroids are measured:
on the labels of frames annotated with both (a reference that needs no training) and on a
model's predictions. `mapping_report` then asks, for a model with both heads, whether the heads
agree, and whether mapping one head's output beats or trails the other head at its own task.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torchmetrics.functional.classification import multiclass_cohen_kappa

from affecttrack.errors import AffectTrackError
from affecttrack.evaluation.classification import classification_metrics
from affecttrack.evaluation.metrics import va_metrics
from affecttrack.labels import expression_va, nearest_centroid, probabilities_to_va

__all__ = ["category_centroids", "category_statistics", "labelled_points", "mapping_report",
           "nearest_centroid", "probabilities_to_va"]

STATISTICS_COLUMNS: tuple[str, ...] = (
    "category", "n", "valence_mean", "arousal_mean", "valence_std", "arousal_std",
    "distance_mean", "valence_median", "arousal_median")


def labelled_points(valence: np.ndarray, arousal: np.ndarray, classes: np.ndarray,
                    n_classes: int) -> pd.DataFrame:
    """The points with finite valence and arousal and a class (not -1) as a table (valence,
    arousal, category); a class index of `n_classes` or more is an error, not a silent drop."""
    columns = {"valence": np.asarray(valence, dtype=np.float64).ravel(),
               "arousal": np.asarray(arousal, dtype=np.float64).ravel(),
               "category": np.asarray(classes, dtype=np.int64).ravel()}
    if len({len(values) for values in columns.values()}) > 1:
        lengths = ", ".join(str(len(values)) for values in columns.values())
        raise AffectTrackError(f"valence/arousal categories: valence, arousal and classes "
                               f"differ in length ({lengths})")
    table = pd.DataFrame(columns)
    if (table["category"] >= n_classes).any():
        raise AffectTrackError(f"valence/arousal categories: class indices must lie below "
                               f"{n_classes} (the number of names), got "
                               f"{table['category'].max()}")
    keep = np.isfinite(table["valence"]) & np.isfinite(table["arousal"]) & (table["category"] >= 0)
    return table[keep]


def category_statistics(valence: np.ndarray, arousal: np.ndarray, classes: np.ndarray,
                        names: Sequence[str]) -> pd.DataFrame:
    """One row per class of `names` (in order, also for classes without points): n, centroid
    (mean valence and arousal), spread (population std per dimension and the mean distance to
    the centroid) and median. Points with a NaN or class -1 are left out; absent classes get NaN.
    """
    table = labelled_points(valence, arousal, classes, len(names))
    centroid = table.groupby("category")[["valence", "arousal"]].transform("mean")
    grouped = table.assign(distance=np.hypot(table["valence"] - centroid["valence"],
                                             table["arousal"] - centroid["arousal"])
                           ).groupby("category")
    stats = pd.DataFrame({
        "n": grouped.size(),
        "valence_mean": grouped["valence"].mean(), "arousal_mean": grouped["arousal"].mean(),
        "valence_std": grouped["valence"].std(ddof=0),
        "arousal_std": grouped["arousal"].std(ddof=0),
        "distance_mean": grouped["distance"].mean(),
        "valence_median": grouped["valence"].median(),
        "arousal_median": grouped["arousal"].median(),
    }).reindex(range(len(names)))
    stats["n"] = stats["n"].fillna(0).astype(np.int64)
    return stats.assign(category=list(names)).reset_index(drop=True)[list(STATISTICS_COLUMNS)]


def category_centroids(statistics: pd.DataFrame) -> np.ndarray:
    """The (k, 2) centroids of `category_statistics` (NaN rows for absent classes)."""
    return statistics[["valence_mean", "arousal_mean"]].to_numpy(dtype=np.float64)


def _jsonable_records(statistics: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain dicts, NaN as None (JSON has no NaN)."""
    return [{key: (None if isinstance(value, float) and not np.isfinite(value) else value)
             for key, value in row.items()} for row in statistics.to_dict("records")]


def _finite_float(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _head_agreement(expression_head: np.ndarray, va_head: np.ndarray,
                    n_classes: int) -> dict[str, Any] | None:
    """How often the expression head's class equals the class of the VA head's point, and
    Cohen's kappa (agreement beyond chance; None when undefined, e.g. both always one class)."""
    both = va_head >= 0
    if not both.any():
        return None
    a, b = torch.from_numpy(expression_head[both]), torch.from_numpy(va_head[both])
    kappa = float(multiclass_cohen_kappa(a, b, num_classes=n_classes, validate_args=False))
    return {"n": int(both.sum()), "agreement": float((a == b).double().mean()),
            "cohen_kappa": _finite_float(kappa)}


def _scores(y_true: np.ndarray, y_pred: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    metrics = classification_metrics(y_true, y_pred, names)
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}


def _va_to_category(classes_true: np.ndarray, expression_head: np.ndarray,
                    va_head_classes: np.ndarray, names: Sequence[str]) -> dict[str, Any] | None:
    """The expression head against the VA head read through the label centroids, on frames with
    a class label (and a finite VA prediction)."""
    frames = (classes_true >= 0) & (va_head_classes >= 0)
    if not frames.any():
        return None
    return {"n": int(frames.sum()),
            "expression_head": _scores(classes_true[frames], expression_head[frames], names),
            "va_head_via_centroids": _scores(classes_true[frames], va_head_classes[frames],
                                             names)}


def _category_to_va(va_true: np.ndarray, va_pred: np.ndarray, probs_pred: np.ndarray,
                    centroids: np.ndarray, names: Sequence[str]) -> dict[str, Any] | None:
    """The VA head against the expression head read through the centroids (label centroids and,
    where every class has one, the fixed circumplex ones), on frames with VA labels."""
    mapped = probabilities_to_va(probs_pred, centroids)
    frames = (np.isfinite(va_true).all(axis=1) & np.isfinite(va_pred).all(axis=1)
              & np.isfinite(mapped).all(axis=1))
    if not frames.any():
        return None
    circumplex = expression_va(list(names))
    return {"n": int(frames.sum()),
            "va_head": va_metrics(va_true[frames], va_pred[frames]),
            "expression_head_via_centroids": va_metrics(va_true[frames], mapped[frames]),
            "expression_head_via_circumplex": None if circumplex is None else va_metrics(
                va_true[frames], probabilities_to_va(probs_pred[frames], circumplex))}


def _checked(va_true: np.ndarray | None, classes_true: np.ndarray | None, va_pred: np.ndarray,
             probs_pred: np.ndarray, names: Sequence[str]
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The inputs as arrays of one length (absent labels as all-NaN / all -1)."""
    va_pred = np.asarray(va_pred, dtype=np.float64)
    probs_pred = np.asarray(probs_pred, dtype=np.float64)
    n = len(va_pred)
    va_true = np.full((n, 2), np.nan) if va_true is None else np.asarray(va_true, np.float64)
    classes_true = (np.full(n, -1, np.int64) if classes_true is None
                    else np.asarray(classes_true, np.int64))
    if (va_pred.shape != (n, 2) or va_true.shape != (n, 2) or classes_true.shape != (n,)
            or probs_pred.shape != (n, len(names))):
        raise AffectTrackError(
            f"mapping_report: need (n, 2) valence/arousal, (n,) classes and (n, {len(names)}) "
            f"probabilities; got {va_true.shape}, {classes_true.shape}, {va_pred.shape}, "
            f"{probs_pred.shape}")
    return va_true, classes_true, va_pred, probs_pred


def mapping_report(va_true: np.ndarray | None, classes_true: np.ndarray | None,
                   va_pred: np.ndarray, probs_pred: np.ndarray,
                   names: Sequence[str]) -> dict[str, Any]:
    """JSON-ready comparison of a two-headed model's heads through valence/arousal space.

    `va_true` (n, 2; NaN = unlabelled) and `classes_true` (n,; -1 = unlabelled) may be None;
    `va_pred` is the VA head, `probs_pred` the expression head's probabilities over `names`.
    - centroids: per class statistics of the labels (frames with both labels; the training-free
      reference) and of the predictions (VA head grouped by the expression head's class);
    - head_agreement: expression head's class vs the class of the VA head's point under the
      label centroids (rate and Cohen's kappa);
    - va_to_category: accuracy and macro-F1 of that VA-derived class next to the expression
      head's own, on class-labelled frames;
    - category_to_va: CCC (PCC, RMSE) of the probability-weighted label centroids next to the VA
      head's own, on VA-labelled frames.
    The label centroids are measured on the very frames scored, so the mapped scores are an
    optimistic reference. A part whose labels are missing is None.
    """
    va_true, classes_true, va_pred, probs_pred = _checked(va_true, classes_true, va_pred,
                                                          probs_pred, names)
    expression_head = np.argmax(probs_pred, axis=1)
    label_stats = category_statistics(va_true[:, 0], va_true[:, 1], classes_true, names)
    predicted_stats = category_statistics(va_pred[:, 0], va_pred[:, 1], expression_head, names)
    report: dict[str, Any] = {
        "n": len(va_pred), "classes": list(names),
        "centroids": {"labels": _jsonable_records(label_stats) if label_stats["n"].sum() else None,
                      "predictions": _jsonable_records(predicted_stats)},
        "head_agreement": None, "va_to_category": None, "category_to_va": None}
    if not label_stats["n"].sum():
        return report
    centroids = category_centroids(label_stats)
    va_head_classes = nearest_centroid(va_pred[:, 0], va_pred[:, 1], centroids)
    report["head_agreement"] = _head_agreement(expression_head, va_head_classes, len(names))
    report["va_to_category"] = _va_to_category(classes_true, expression_head, va_head_classes,
                                               names)
    report["category_to_va"] = _category_to_va(va_true, va_pred, probs_pred, centroids, names)
    return report
