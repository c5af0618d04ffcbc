"""CCC, Pearson r and RMSE of valence/arousal predictions, as the paper and challenges report them.

CCC is computed here in numpy rather than with torchmetrics' `ConcordanceCorrCoef`, for two
reasons: torchmetrics divides variances and covariance by n - 1, while the paper's formula and the
ABAW evaluation script use population statistics (divide by n; the two differ whenever the means
differ, noticeably on short clips), and it returns NaN for a constant series, although a constant
prediction has a well-defined CCC. Pearson r and RMSE come from torchmetrics, in float64 so that its
near-zero-variance guard only fires for series that really are constant.

Constant series (decided here so that no NaN ever reaches a report):
- identical series score 1 on CCC and PCC (perfect agreement, also when both are constant);
- otherwise CCC follows its formula, which gives 0 when either series is constant;
- PCC is undefined when either series is constant; it is reported as 0 (no measurable linear
  association), which keeps CCC <= |PCC| true everywhere.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torchmetrics.functional import mean_squared_error, pearson_corrcoef

from affecttrack.errors import AffectTrackError

DIMENSIONS: tuple[str, str] = ("valence", "arousal")


def _pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both series as float64 1-d arrays, or a clear error for inputs no metric can score."""
    x = np.asarray(y_true, dtype=np.float64)
    y = np.asarray(y_pred, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise AffectTrackError(f"metrics need two 1-d series of the same length, got shapes "
                               f"{x.shape} and {y.shape}")
    if x.size == 0:
        raise AffectTrackError("metrics need at least one value, got empty series")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise AffectTrackError("metrics got NaN or infinite values; fill or drop them first")
    return x, y


def ccc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Concordance correlation coefficient with population statistics (the paper's formula)."""
    x, y = _pair(y_true, y_pred)
    if np.array_equal(x, y):
        return 1.0
    mean_x, mean_y = x.mean(), y.mean()
    covariance = np.mean((x - mean_x) * (y - mean_y))
    return float(2 * covariance / (x.var() + y.var() + (mean_x - mean_y) ** 2))


def pcc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Pearson correlation; 0 when a series is constant (see the module notes)."""
    x, y = _pair(y_true, y_pred)
    if np.array_equal(x, y):
        return 1.0
    with warnings.catch_warnings():
        # torchmetrics warns and returns NaN for a constant series; we report 0 by decision.
        warnings.simplefilter("ignore", UserWarning)
        value = float(pearson_corrcoef(torch.from_numpy(y), torch.from_numpy(x)))
    return value if np.isfinite(value) else 0.0


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root mean squared error."""
    x, y = _pair(y_true, y_pred)
    return float(mean_squared_error(torch.from_numpy(y), torch.from_numpy(x), squared=False))


def va_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """CCC, PCC and RMSE per dimension of (n, 2) valence/arousal arrays, and the mean CCC.

    Returns `{"valence": {"ccc", "pcc", "rmse"}, "arousal": {...}, "mean_ccc"}` with plain floats,
    ready for JSON.
    """
    true = np.asarray(y_true)
    pred = np.asarray(y_pred)
    if true.ndim != 2 or true.shape[1] != 2 or true.shape != pred.shape:
        raise AffectTrackError(f"va_metrics needs two (n, 2) valence/arousal arrays, got shapes "
                               f"{true.shape} and {pred.shape}")
    result: dict = {}
    for column, name in enumerate(DIMENSIONS):
        result[name] = {"ccc": ccc(true[:, column], pred[:, column]),
                        "pcc": pcc(true[:, column], pred[:, column]),
                        "rmse": rmse(true[:, column], pred[:, column])}
    result["mean_ccc"] = (result["valence"]["ccc"] + result["arousal"]["ccc"]) / 2
    return result
