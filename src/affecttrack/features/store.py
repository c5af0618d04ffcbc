"""The feature store: the frame CNN's 300-d features and its own valence/arousal per face.

Rows are aligned with the face store's `faces.npy`, so a face-store index row's `row` column
addresses both. Arrays are memory-mapped: a sequence model reads only the rows it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from affecttrack.errors import InputError

FEATURES_FILE = "features.npy"
PREDICTIONS_FILE = "frame_predictions.npy"


@dataclass(frozen=True)
class FeatureStore:
    """`features` float32 (N, D) and `frame_predictions` float32 (N, 2), both memory-mapped."""

    path: Path
    features: np.ndarray
    frame_predictions: np.ndarray

    @classmethod
    def open(cls, path: Path) -> FeatureStore:
        """Open a complete feature store; InputError if it is missing, partial or inconsistent."""
        path = Path(path)
        arrays = {}
        for name in (FEATURES_FILE, PREDICTIONS_FILE):
            file = path / name
            if not file.is_file():
                problem = ("extraction was interrupted; run it again to resume"
                           if (path / f"{name}.partial").is_file() else "not found")
                raise InputError(file, f"feature store file {problem}")
            try:
                arrays[name] = np.load(file, mmap_mode="r")
            except (ValueError, OSError) as exc:
                raise InputError(file, f"not a readable .npy array ({exc})") from None
        features, predictions = arrays[FEATURES_FILE], arrays[PREDICTIONS_FILE]
        if features.ndim != 2 or features.dtype != np.float32:
            raise InputError(path / FEATURES_FILE,
                             f"expected float32 (N, D), got {features.dtype} {features.shape}")
        if predictions.shape != (features.shape[0], 2) or predictions.dtype != np.float32:
            raise InputError(path / PREDICTIONS_FILE,
                             f"expected float32 ({features.shape[0]}, 2), got "
                             f"{predictions.dtype} {predictions.shape}")
        return cls(path, features, predictions)

    def __len__(self) -> int:
        return self.features.shape[0]

    def require_rows(self, rows: int, what: object) -> None:
        """Refuse a face store of a different size: the rows would silently misalign."""
        if len(self) != rows:
            raise InputError(self.path, f"holds features of {len(self)} faces but {what} has "
                                        f"{rows}; extract features for this face store")

    def predictions_frame(self, index: pd.DataFrame) -> pd.DataFrame:
        """The frame model's valence/arousal for the face-store `index` rows that have a face."""
        with_face = index[index["row"] >= 0]
        values = self.frame_predictions[with_face["row"].to_numpy(np.int64)]
        return pd.DataFrame({"video": with_face["video"].to_numpy(),
                             "frame": with_face["frame"].to_numpy(),
                             "valence": values[:, 0], "arousal": values[:, 1]})
