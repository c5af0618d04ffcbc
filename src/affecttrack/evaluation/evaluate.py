"""Score prediction tables against a face store's labels the way Aff-Wild2 is scored.

The challenge scores every annotated frame, whether or not a face was found in it, pooled over all
videos of the split. A model that only predicts frames with a face is therefore scored on
interpolated values for the others (linear between neighbouring predictions, nearest at the ends),
and how many frames were interpolated is reported next to the metrics.

A labelled video without a single prediction cannot be interpolated; it is an error naming the
video rather than a silent drop, because dropping it would score the model on an easier subset
than the other models.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from affecttrack.data.sequences import fill_missing
from affecttrack.errors import AffectTrackError
from affecttrack.evaluation.metrics import va_metrics
from affecttrack.predictions.table import checked_predictions

_INDEX_COLUMNS = ("video", "frame", "split", "valence", "arousal")
_VA = ["valence", "arousal"]


def labelled_frames(index: pd.DataFrame, split: str | None = "val") -> pd.DataFrame:
    """`video, frame, valence, arousal` of the split's frames that have both labels, sorted.

    `split=None` takes every split (plots of training videos, say).
    """
    missing = [column for column in _INDEX_COLUMNS if column not in index.columns]
    if missing:
        raise AffectTrackError(f"face store index lacks column(s) {missing}")
    chosen = index if split is None else index[index["split"] == split]
    labelled = chosen[chosen["valence"].notna() & chosen["arousal"].notna()]
    table = labelled.loc[:, ["video", "frame", *_VA]].astype(
        {"video": str, "frame": np.int64, "valence": np.float64, "arousal": np.float64})
    return table.sort_values(["video", "frame"], kind="stable").reset_index(drop=True)


def align_predictions(labelled: pd.DataFrame, pred: pd.DataFrame,
                      name: str = "predictions") -> pd.DataFrame:
    """Labels and predictions side by side for every labelled frame, missing ones interpolated.

    Returns `video, frame, valence_true, arousal_true, valence_pred, arousal_pred, interpolated`.
    Predictions for unlabelled frames still anchor the interpolation; predictions for videos that
    are not in `labelled` are ignored.
    """
    table = checked_predictions(pred, name)
    by_video = {video: rows for video, rows in table.groupby("video", sort=False)}
    absent = sorted(set(labelled["video"]) - set(by_video))
    if absent:
        shown = ", ".join(absent[:5]) + (f" and {len(absent) - 5} more" if len(absent) > 5 else "")
        raise AffectTrackError(f"{name}: no prediction at all for labelled video(s) {shown}; "
                               "cannot interpolate a video without any predicted frame")
    parts = []
    for video, truth in labelled.groupby("video", sort=False):
        rows = by_video[video]
        frames = truth["frame"].to_numpy()
        filled = fill_missing(rows["frame"].to_numpy(), rows[_VA].to_numpy(), frames)
        parts.append(pd.DataFrame({
            "video": video, "frame": frames,
            "valence_true": truth["valence"].to_numpy(),
            "arousal_true": truth["arousal"].to_numpy(),
            "valence_pred": filled[:, 0].astype(np.float64),
            "arousal_pred": filled[:, 1].astype(np.float64),
            "interpolated": ~np.isin(frames, rows["frame"].to_numpy())}))
    return pd.concat(parts, ignore_index=True)


def evaluate_predictions(index: pd.DataFrame, predictions: dict[str, pd.DataFrame],
                         split: str = "val") -> dict[str, dict]:
    """`va_metrics` per named model over all VA-labelled frames of `split`, pooled.

    Each model's entry also holds `n_frames`, `n_interpolated` (labelled frames that had no
    prediction) and `n_videos`.
    """
    labelled = labelled_frames(index, split)
    if labelled.empty:
        raise AffectTrackError(f"no valence/arousal-labelled frames in split {split!r} to "
                               "evaluate on")
    results: dict[str, dict] = {}
    for name, pred in predictions.items():
        aligned = align_predictions(labelled, pred, name)
        metrics = va_metrics(aligned[["valence_true", "arousal_true"]].to_numpy(),
                             aligned[["valence_pred", "arousal_pred"]].to_numpy())
        metrics.update(n_frames=len(aligned), n_interpolated=int(aligned["interpolated"].sum()),
                       n_videos=int(aligned["video"].nunique()))
        results[name] = metrics
    return results
