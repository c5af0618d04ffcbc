"""Face frames for the frame CNN: which frames train and validate it, and how batches are read.

Training uses the train split's labelled frames that have a face (or the frames a protocol names),
downsampled once by the paper's balancing with the run's seed (valence/arousal bins for the VA
task, classes for expressions); validation uses the val split's labelled frames with a face,
optionally capped to a fixed, seeded random subset so that frequent validation stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from affecttrack.data.augment import (
    augmentation_state,
    make_augmentation,
    set_augmentation_state,
)
from affecttrack.data.balance import balance_mask
from affecttrack.errors import AffectTrackError
from affecttrack.models.cnn import faces_to_input
from affecttrack.training.batching import Batch, BatchDataset, TrainValDataModule


@dataclass(frozen=True)
class FrameSet:
    """Face-store rows and their targets: (n, 2) float32 valence/arousal, (n,) int64 classes or
    (n, 3 + units) float32 combined targets (see `frame_set`)."""

    rows: np.ndarray
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, mask_or_index: np.ndarray) -> FrameSet:
        return FrameSet(self.rows[mask_or_index], self.targets[mask_or_index])


def labelled_frames(index: pd.DataFrame, split: str, task: str,
                    action_units: tuple[str, ...] = ()) -> FrameSet:
    """Frames of `split` that have a face and a label for `task` (see `frame_set`)."""
    return frame_set(index[index["split"] == split], task, action_units)


def frame_set(frames: pd.DataFrame, task: str, action_units: tuple[str, ...] = ()) -> FrameSet:
    """Those of `frames` (rows of a face-store index, e.g. one side of a protocol's split) that
    have a face and a label for `task`: "va" -> (n, 2) valence/arousal, "expression" -> (n,)
    classes, "combined" -> (n, 3 + units) valence, arousal (NaN = none), class (-1 = none) and
    the `action_units` columns (-1 = unknown), for frames with any of these labels."""
    has_va = frames["valence"].notna() & frames["arousal"].notna()
    has_expression = frames["expression"] >= 0
    has_au = (frames[list(action_units)] >= 0).any(axis=1)
    labelled = {"va": has_va, "expression": has_expression,
                "combined": has_va | has_expression | has_au}[task]
    frames = frames[(frames["row"] >= 0) & labelled]
    if task == "va":
        targets = frames[["valence", "arousal"]].to_numpy(np.float32)
    elif task == "expression":
        targets = frames["expression"].to_numpy(np.int64)
    else:
        targets = np.column_stack([
            frames["valence"].where(has_va).to_numpy(np.float32),
            frames["arousal"].where(has_va).to_numpy(np.float32),
            frames["expression"].to_numpy(np.float32),
            frames[list(action_units)].to_numpy(np.float32)])
    return FrameSet(frames["row"].to_numpy(np.int64), targets)


def action_unit_counts(frames: FrameSet, units: int) -> dict[str, list[int]]:
    """Per action unit, the frames where it is active and where it is known (combined targets
    whose last `units` columns are action units)."""
    au = frames.targets[:, frames.targets.shape[1] - units:] if units else np.zeros((0, 0))
    return {"active": (au == 1).sum(axis=0).astype(int).tolist(),
            "known": (au >= 0).sum(axis=0).astype(int).tolist()}


def balanced(frames: FrameSet, subset: str, seed: int) -> FrameSet:
    """The paper's downsampling of over-represented valence/arousal bins (once, seeded); frames
    without valence/arousal (combined targets) are all kept."""
    va = frames.targets[:, :2]
    annotated = np.isfinite(va).all(axis=1)
    keep = ~annotated
    keep[annotated] = balance_mask(va[annotated, 0], va[annotated, 1], subset,
                                   np.random.default_rng(seed))
    return frames.subset(keep)


def expression_targets(frames: FrameSet) -> np.ndarray:
    """Each frame's class (-1 = none), from expression or combined targets."""
    targets = frames.targets
    return (targets[:, 2] if targets.ndim == 2 else targets).astype(np.int64)


def balanced_classes(frames: FrameSet, seed: int) -> FrameSet:
    """The paper's class balancing: every class downsampled (once, seeded) to the size of the
    rarest class present, kept in store order (frames without a class are dropped)."""
    if len(frames) == 0:
        return frames
    classes = expression_targets(frames)
    counts = np.bincount(classes[classes >= 0])
    smallest = counts[counts > 0].min()
    rng = np.random.default_rng(seed)
    keep = [rng.choice(np.flatnonzero(classes == label), smallest, replace=False)
            for label in np.flatnonzero(counts)]
    return frames.subset(np.sort(np.concatenate(keep)))


def capped(frames: FrameSet, max_frames: int | None, seed: int) -> FrameSet:
    """At most `max_frames` frames: a fixed random subset, in store order for cheap reads."""
    if max_frames is None or len(frames) <= max_frames:
        return frames
    keep = np.sort(np.random.default_rng(seed).choice(len(frames), max_frames, replace=False))
    return frames.subset(keep)


class FaceFrames(BatchDataset):
    """Faces as float (1, 96, 96) in [0, 1], augmented per image by the pipeline that `augment`
    names (`affecttrack.data.augment.AUGMENTATIONS`; None: as stored).

    The face memmap is opened lazily in each process, so the dataset pickles cheaply into
    DataLoader workers and spawned DDP processes instead of copying the whole array.
    """

    def __init__(self, faces_path: Path, frames: FrameSet, augment: str | None = None) -> None:
        self.faces_path = Path(faces_path)
        self.frames = frames
        self.augment = augment
        self._faces: np.ndarray | None = None
        self._augmentation: Any = None

    def __len__(self) -> int:
        return len(self.frames)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_faces": None, "_augmentation": None}

    def batch(self, indices: np.ndarray) -> Batch:
        rows = self.frames.rows[indices]
        order = np.argsort(rows, kind="stable")
        images = self._memmap()[rows[order]]
        if self.augment:
            augmentation = self._augment()
            images = np.stack([augmentation(image=image)["image"] for image in images])
        x = faces_to_input(images)
        y = torch.from_numpy(self.frames.targets[indices[order]])
        return x, y

    def state_dict(self) -> dict[str, Any]:
        """Where the augmentations had got to, once any was drawn."""
        if self._augmentation is None:
            return {}
        return {"augmentation": augmentation_state(self._augmentation)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "augmentation" in state:
            set_augmentation_state(self._augment(), state["augmentation"])

    def _memmap(self) -> np.ndarray:
        if self._faces is None:
            self._faces = np.load(self.faces_path, mmap_mode="r")
        return self._faces

    def _augment(self) -> Any:
        if self._augmentation is None:
            # Seeded from torch's per-process seed, which seed_everything and the DataLoader set
            # per worker: reproducible runs, different augmentations in each worker.
            self._augmentation = make_augmentation(self.augment,
                                                   seed=torch.initial_seed() % 2**32)
        return self._augmentation


class FrameDataModule(TrainValDataModule):
    """Train and validation loaders over one face store's frames."""

    def __init__(self, faces_path: Path, train: FrameSet, val: FrameSet, *, batch_size: int,
                 augment: str | None, num_workers: int = 0) -> None:
        if len(train) == 0:
            raise AffectTrackError(f"{faces_path.parent}: no labelled training frames with a face")
        if len(val) == 0:
            raise AffectTrackError(f"{faces_path.parent}: no labelled validation frames with a "
                                   "face")
        super().__init__(FaceFrames(faces_path, train, augment=augment),
                         FaceFrames(faces_path, val), batch_size=batch_size,
                         num_workers=num_workers)
