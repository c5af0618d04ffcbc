"""Gap-free windows over a video's frames, and filling frames that got no prediction.

The sequence model only ever sees windows of consecutive frames that all have a face and a label:
a window that jumped over a missing face would teach the RNN dynamics that never happened. Frames
that have no prediction (no face was found) still need a value for evaluation and for the
challenge's per-frame files, so they are interpolated from their neighbours.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from affecttrack.errors import AffectTrackError

Target = Literal["many_to_many", "many_to_one"]
TARGETS: tuple[str, ...] = ("many_to_many", "many_to_one")


def gap_free_runs(frames: np.ndarray, valid: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) array positions of maximal stretches of consecutive, valid frames.

    `frames` are one video's frame numbers in increasing order; `valid` marks frames that have both
    a face and a label. Positions (not frame numbers) are returned so callers can slice the arrays
    they already hold.
    """
    frames = np.asarray(frames, dtype=np.int64)
    valid = np.asarray(valid, dtype=bool)
    if frames.shape != valid.shape or frames.ndim != 1:
        raise AffectTrackError(f"gap_free_runs: frames {frames.shape} and valid {valid.shape} "
                               "must be 1-d arrays of the same length")
    if frames.size == 0:
        return []
    # A run breaks before position i when frame i is invalid, frame i-1 is invalid, or frames jump.
    continues = np.zeros(frames.size, dtype=bool)
    continues[1:] = (np.diff(frames) == 1) & valid[1:] & valid[:-1]
    starts = np.flatnonzero(valid & ~continues)
    stops = np.flatnonzero(valid & ~np.append(continues[1:], False)) + 1
    return [(int(start), int(stop)) for start, stop in zip(starts, stops)]


def window_starts(runs: list[tuple[int, int]], length: int = 100, stride: int = 10,
                  target: Target = "many_to_many") -> np.ndarray:
    """Start positions of `length`-frame windows that stay inside one run.

    many_to_many: the window's own frames are the targets. many_to_one (the paper's public code):
    the target is the frame right after the window, which must be in the same run, so a run needs
    `length + 1` frames. Windows step by `stride` from each run's start, and the run's last possible
    window is always added so the tail frames of every run are trained on too (with
    `stride <= length` every frame of a long enough run is then in some window).
    """
    if target not in TARGETS:
        raise AffectTrackError(f"unknown sequence target {target!r}; expected one of {TARGETS}")
    if length < 1 or stride < 1:
        raise AffectTrackError(f"window length ({length}) and stride ({stride}) must be >= 1")
    span = length + (1 if target == "many_to_one" else 0)
    starts: list[np.ndarray] = []
    for run_start, run_stop in runs:
        last = run_stop - span
        if last < run_start:
            continue
        starts.append(np.unique(np.append(np.arange(run_start, last + 1, stride), last)))
    if not starts:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate(starts).astype(np.int64)


def fill_missing(frames_with_pred: np.ndarray, values: np.ndarray,
                 all_frames: np.ndarray) -> np.ndarray:
    """Values for `all_frames`: linear between neighbouring predictions, nearest one at the ends.

    `values` is (n, k) for the n frames in `frames_with_pred` (any order); the result is
    (len(all_frames), k) float32.
    """
    frames = np.asarray(frames_with_pred, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if frames.size == 0:
        raise AffectTrackError("cannot fill missing frames: the video has no prediction at all")
    if values.shape[0] != frames.size:
        raise AffectTrackError(f"fill_missing: {frames.size} frames but {values.shape[0]} values")
    order = np.argsort(frames, kind="stable")
    frames, values = frames[order], values[order]
    if np.any(np.diff(frames) == 0):
        raise AffectTrackError("fill_missing: a frame has more than one prediction")
    targets = np.asarray(all_frames, dtype=np.float64)
    filled = np.empty((targets.size, values.shape[1]), dtype=np.float32)
    for column in range(values.shape[1]):
        filled[:, column] = np.interp(targets, frames, values[:, column])
    return filled
