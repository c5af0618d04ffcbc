"""Moving-average smoothing of per-frame predictions: the baseline a sequence model must beat.

Much of what a recurrent net gains over a frame model can come from averaging away per-frame noise;
scoring the frame model's smoothed output next to the sequence model shows how much of the gain is
temporal modelling beyond smoothing. The window counts video frames, not table rows: frames without
a face are filled first, so a window never stretches across a gap of missing faces.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from affecttrack.data.sequences import fill_missing
from affecttrack.errors import AffectTrackError
from affecttrack.predictions.table import checked_predictions

_VA = ["valence", "arousal"]


def _filled(frames: np.ndarray, values: np.ndarray, all_frames: np.ndarray,
            causal: bool) -> pd.DataFrame:
    """Values on every frame of the span.

    Linear interpolation looks at the next prediction, which a streaming system has not seen yet,
    so the causal variant holds the last prediction instead.
    """
    if causal:
        held = pd.DataFrame(values, index=frames).reindex(all_frames).ffill()
        return held.reset_index(drop=True)
    return pd.DataFrame(fill_missing(frames, values, all_frames).astype(np.float64))


def check_window(window: int, causal: bool = False) -> None:
    """Refuse windows that cannot be centred or hold no frame, before any work is done."""
    if window < 1:
        raise AffectTrackError(f"moving average window must be >= 1 frame, got {window}")
    if not causal and window % 2 == 0:
        raise AffectTrackError(f"a centred moving average needs an odd window, got {window}")


def smooth_track(frames: np.ndarray, values: np.ndarray, window: int,
                 causal: bool = False) -> np.ndarray:
    """Moving average of one track's (n, k) `values` at its `frames` (increasing, unique).

    The window counts video frames: frames of the span without a value are filled first (see the
    module docstring), so a window never reaches across a gap to rows far away in time.
    """
    frames = np.asarray(frames, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    all_frames = np.arange(frames[0], frames[-1] + 1)
    filled = _filled(frames, values, all_frames, causal)
    # Near the ends the window holds fewer frames (min_periods=1) rather than inventing values.
    smoothed = filled.rolling(window, center=not causal, min_periods=1).mean()
    return smoothed.to_numpy()[frames - frames[0]]


def moving_average(pred: pd.DataFrame, window: int = 15, causal: bool = False) -> pd.DataFrame:
    """Per video, the mean of the predictions over a `window`-frame window around each frame.

    Centred by default (the offline baseline; `window` must then be odd so the window is
    symmetric); `causal=True` averages the current and `window - 1` previous frames only, as
    streaming inference must. Returns a prediction table with the same (video, frame) rows as
    `pred`, sorted by video and frame.
    """
    check_window(window, causal)
    table = checked_predictions(pred)
    if table.empty:
        return table
    for _, video in table.groupby("video", sort=False):
        table.loc[video.index, _VA] = smooth_track(video["frame"].to_numpy(),
                                                   video[_VA].to_numpy(), window, causal)
    return table
