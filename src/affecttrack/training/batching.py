"""Datasets that build a whole batch at once.

Reading 128 faces from a memory-mapped store, or gathering 256 windows of features, is far cheaper
as one fancy index than as 128 separate reads followed by a collate that copies everything again.
The DataLoader calls `__getitems__` with the sampler's batch of indices (also inside workers and
under Lightning's distributed samplers), so the collate function only has to pass the batch on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from affecttrack.training.resume import ResumableLoader, ShuffleSampler

Batch = tuple[torch.Tensor, torch.Tensor]


def keep_batch(batch: Batch) -> Batch:
    """Collate function for datasets whose `__getitems__` already returns a stacked batch."""
    return batch


class BatchDataset(Dataset, ABC):
    """A map-style dataset whose natural unit of work is a batch of indices."""

    @abstractmethod
    def batch(self, indices: np.ndarray) -> Batch:
        """Inputs and targets for `indices`, stacked along a new first dimension."""

    @abstractmethod
    def __len__(self) -> int: ...

    def __getitems__(self, indices: list[int]) -> Batch:
        return self.batch(np.asarray(indices, dtype=np.int64))

    def __getitem__(self, index: int) -> Batch:
        x, y = self.batch(np.asarray([index], dtype=np.int64))
        return x[0], y[0]

    def state_dict(self) -> dict[str, Any]:
        """The dataset's own randomness (none here), saved with a training checkpoint."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict()`, when an interrupted run resumes."""

    def loader(self, batch_size: int, *, train: bool, num_workers: int = 0) -> DataLoader:
        """Shuffled batches for training (a last batch too small to score is dropped), else ordered.

        CCC over a batch of one or two samples is meaningless, hence dropping the ragged last
        training batch whenever there is more than one batch. The training loader is resumable
        (`affecttrack.training.resume`); its batches are those of `shuffle=True`.
        """
        options = {"batch_size": batch_size, "num_workers": num_workers, "collate_fn": keep_batch,
                   "persistent_workers": num_workers > 0}
        if not train:
            return DataLoader(self, **options)
        return ResumableLoader(self, sampler=ShuffleSampler(self),
                               drop_last=len(self) > batch_size, **options)


class TrainValDataModule(L.LightningDataModule):
    """Shuffled training batches and ordered validation batches of two batch datasets."""

    def __init__(self, train_set: BatchDataset, val_set: BatchDataset, *, batch_size: int,
                 num_workers: int = 0) -> None:
        super().__init__()
        self.train_set, self.val_set = train_set, val_set
        self.batch_size = batch_size
        self.num_workers = num_workers

    def train_dataloader(self) -> DataLoader:
        return self.train_set.loader(self.batch_size, train=True, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self.val_set.loader(self.batch_size, train=False, num_workers=self.num_workers)
