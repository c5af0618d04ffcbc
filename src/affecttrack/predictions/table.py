"""The prediction-table contract (`video, frame, valence, arousal`, one row per predicted frame).

Every evaluation step checks tables through here, so a malformed table fails once, with a message
naming the model, instead of as a pandas error deep inside an interpolation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from affecttrack.errors import AffectTrackError

COLUMNS: tuple[str, ...] = ("video", "frame", "valence", "arousal")


def checked_predictions(pred: pd.DataFrame, name: str = "predictions") -> pd.DataFrame:
    """The table's contract columns sorted by (video, frame), or an error naming `name`."""
    missing = [column for column in COLUMNS if column not in pred.columns]
    if missing:
        raise AffectTrackError(f"{name}: prediction table lacks column(s) {missing}; expected "
                               f"{list(COLUMNS)}")
    table = pred.loc[:, list(COLUMNS)].copy()
    table["video"] = table["video"].astype(str)
    table["frame"] = table["frame"].astype(np.int64)
    table["valence"] = table["valence"].astype(np.float64)
    table["arousal"] = table["arousal"].astype(np.float64)
    if not np.isfinite(table[["valence", "arousal"]].to_numpy()).all():
        raise AffectTrackError(f"{name}: prediction table holds NaN or infinite valence/arousal")
    duplicated = table.duplicated(["video", "frame"])
    if duplicated.any():
        first = table[duplicated].iloc[0]
        raise AffectTrackError(f"{name}: video {first['video']} frame {first['frame']} has more "
                               "than one prediction")
    return table.sort_values(["video", "frame"], kind="stable").reset_index(drop=True)
