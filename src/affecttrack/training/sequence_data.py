"""Windows of consecutive frame features for the sequence model.

A split's frames are laid out in (video, frame) order with their features gathered once into RAM;
a window is then just a start position, and a batch of windows is one fancy index. This is what
makes sequence training cheap: no image is decoded and no CNN runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd
import torch

from affecttrack.data.sequences import gap_free_runs, window_starts
from affecttrack.training.batching import Batch, BatchDataset


@dataclass(frozen=True)
class SplitTable:
    """One split's frames in (video, frame) order: face-store rows (-1: no face) and targets.

    `targets` is (P, 2) valence/arousal, NaN where unlabelled, or for a combined model (P, 3 +
    units): valence, arousal, the class (-1 = none) and each action unit (-1 = unknown).
    """

    videos: np.ndarray
    frames: np.ndarray
    rows: np.ndarray
    targets: torch.Tensor

    @classmethod
    def build(cls, index: pd.DataFrame, split: str | None, *, combined: bool = False,
              action_units: tuple[str, ...] = ()) -> SplitTable:
        """The frames of `split` (all splits for None), with combined targets if asked."""
        table = index if split is None else index[index["split"] == split]
        table = table.sort_values(["video", "frame"], kind="stable")
        columns = ["valence", "arousal", *(["expression", *action_units] if combined else [])]
        targets = table[columns].to_numpy(np.float32, copy=True)
        return cls(videos=table["video"].to_numpy(), frames=table["frame"].to_numpy(np.int64),
                   rows=table["row"].to_numpy(np.int64), targets=torch.from_numpy(targets))

    @property
    def has_face(self) -> np.ndarray:
        return self.rows >= 0

    @property
    def labelled(self) -> np.ndarray:
        """Frames with valence/arousal, or with any label at all for combined targets."""
        labelled = ~torch.isnan(self.targets[:, :2]).any(dim=1)
        if self.targets.shape[1] > 2:
            labelled |= (self.targets[:, 2:] >= 0).any(dim=1)
        return labelled.numpy()

    def gather(self, features: np.ndarray) -> torch.Tensor:
        """(P, D) features of the table's frames in RAM (zeros where there is no face)."""
        gathered = np.zeros((len(self), features.shape[1]), dtype=np.float32)
        gathered[self.has_face] = features[self.rows[self.has_face]]
        return torch.from_numpy(gathered)

    def __len__(self) -> int:
        return len(self.frames)

    def runs(self, valid: np.ndarray) -> list[tuple[int, int]]:
        """[start, stop) positions of gap-free runs of `valid` frames, never crossing videos."""
        runs: list[tuple[int, int]] = []
        for start, stop in self.video_bounds():
            runs += [(start + a, start + b)
                     for a, b in gap_free_runs(self.frames[start:stop], valid[start:stop])]
        return runs

    def video_bounds(self) -> list[tuple[int, int]]:
        """[start, stop) positions of each video's frames."""
        if len(self) == 0:
            return []
        changes = np.flatnonzero(self.videos[1:] != self.videos[:-1]) + 1
        edges = [0, *changes.tolist(), len(self)]
        return list(pairwise(edges))

    def training_windows(self, length: int, stride: int, target: str) -> np.ndarray:
        """Start positions of windows whose frames (and target frame) have a face and a label."""
        return window_starts(self.runs(self.has_face & self.labelled), length, stride, target)


class SequenceWindows(BatchDataset):
    """Windows of (P, D) `features` with their (P, C) `targets` per step (many_to_many) or the
    frame after the window (many_to_one); `starts` are window start positions."""

    def __init__(self, features: torch.Tensor, targets: torch.Tensor, starts: np.ndarray,
                 length: int, target: str) -> None:
        self.features = features
        self.targets = targets
        self.starts = torch.from_numpy(np.asarray(starts, dtype=np.int64))
        self.length = length
        self.many_to_one = target == "many_to_one"

    def __len__(self) -> int:
        return len(self.starts)

    def batch(self, indices: np.ndarray) -> Batch:
        starts = self.starts[torch.from_numpy(indices)]
        positions = starts[:, None] + torch.arange(self.length)
        x = self.features[positions]
        y = self.targets[starts + self.length] if self.many_to_one else self.targets[positions]
        return x, y
