"""Short gaps inside a face's track, filled by linear interpolation and flagged.

A detector miss or a failed template match for a few frames should not punch holes in a person's
valence/arousal curve, but values for frames where nothing was measured must never pass for
measurements: interpolated rows carry `interpolated=True` and no detector score. Only gaps of at
most `max_gap` frames between two frames of the same track are filled; a face that was away
longer is left missing, and frames without any face keep their empty row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from affecttrack.inference.results import most_probable

BOX = ["x", "y", "w", "h"]


def interpolate_gaps(rows: pd.DataFrame, max_gap: int, labels: tuple[str, ...],
                     action_units: tuple[str, ...] = ()) -> pd.DataFrame:
    """`rows` (the engine's table, one per frame and face) with every gap of 1..`max_gap`
    frames inside a track filled (valence, arousal, class and action-unit probabilities);
    sorted by frame, then face id."""
    if rows.empty or max_gap < 1:
        return rows
    classes = [label.lower() for label in labels]
    values = ["valence", "arousal", *classes, *action_units]
    times = rows.groupby("frame")["time_s"].first()
    filled = [_fill_track(track, max_gap, values) for _, track in
              rows[rows["face_id"].notna()].groupby("face_id", sort=False)]
    filled = [part for part in filled if not part.empty]
    if not filled:
        return rows
    new = pd.concat(filled, ignore_index=True)
    new["time_s"] = times.reindex(new["frame"]).to_numpy()
    new["expression"] = most_probable(new[classes].to_numpy(), labels)
    covered = rows["face_id"].isna() & rows["frame"].isin(new["frame"])
    table = pd.concat([rows[~covered], new.astype(rows.dtypes.to_dict())], ignore_index=True)
    return table.sort_values(["frame", "face_id"], na_position="first",
                             kind="stable").reset_index(drop=True)


def _fill_track(track: pd.DataFrame, max_gap: int, values: list[str]) -> pd.DataFrame:
    """Interpolated rows for the short gaps of one face's track (sorted by frame)."""
    frames = track["frame"].to_numpy()
    steps = np.diff(frames)
    gaps = np.flatnonzero((steps > 1) & (steps <= max_gap + 1))
    if not gaps.size:
        return track.iloc[:0]
    missing = np.concatenate([np.arange(frames[gap] + 1, frames[gap + 1]) for gap in gaps])
    numeric = track[BOX + values].to_numpy(dtype=np.float64, na_value=np.nan)
    new = pd.DataFrame({column: np.interp(missing, frames, numeric[:, j])
                        for j, column in enumerate(BOX + values)})
    new[BOX] = new[BOX].round()
    new.insert(0, "frame", missing)
    new["face_id"] = track["face_id"].iloc[0]
    new["score"] = np.nan
    new["interpolated"] = True
    return new.reindex(columns=track.columns)   # time_s and expression are set by the caller
