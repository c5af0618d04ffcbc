"""What an interrupted training run needs to go on exactly as if it had never stopped.

Lightning's checkpoint restores the weights, the optimiser, the learning-rate schedule and the
loops' counters, but neither how far the shuffled epoch had got nor any random generator. A run
resumed mid-epoch therefore used to start a fresh shuffle for the rest of that epoch (some frames
twice, others never), to draw its dropout masks and later shuffles from freshly seeded generators,
and to repeat its first augmentations. `ResumableLoader` closes those gaps through Lightning's own
hook for stateful training loaders (`state_dict` / `load_state_dict`, stored with the fit loop in
every checkpoint): it records the epoch's shuffling seed, the batches consumed, the dataset's own
state (the augmentation generators) and the Python, NumPy, torch (and CUDA) generators.

An uninterrupted run must not change: `ShuffleSampler` draws its per-epoch seed from torch's
generator exactly as `RandomSampler` does, so seeded runs keep their batches to the last digit.
Exactness covers training in one process with `num_workers=0`; with loader workers the
augmentations are drawn inside the workers, and with several devices Lightning replaces the
sampler by its distributed one, so those runs resume at the right step but not on the same draws.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sized
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler

# Stored in every loader state; a checkpoint without it predates exact resumption.
RESUME_FORMAT = 1


def random_states() -> dict[str, Any]:
    """The global generators' states as plain values (a checkpoint is read back with
    `torch.load(weights_only=True)`, which refuses NumPy arrays)."""
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = numpy_state["state"]["key"].tolist()
    states = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_random_states(states: dict[str, Any]) -> None:
    """Put the global generators back to `random_states()`."""
    random.setstate(states["python"])
    numpy_state = dict(states["numpy"])
    numpy_state["state"] = {**numpy_state["state"],
                            "key": np.asarray(numpy_state["state"]["key"], dtype=np.uint32)}
    np.random.set_state(numpy_state)
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class ShuffleSampler(RandomSampler):
    """`RandomSampler`'s shuffle, drawn the same way, that remembers its epoch's seed and can
    begin an epoch part-way through it."""

    def __init__(self, data_source: Sized) -> None:
        super().__init__(data_source)
        self.epoch_seed: int | None = None
        self._resume: tuple[int, int] | None = None

    def resume(self, seed: int, skip: int) -> None:
        """Make the next epoch the one shuffled with `seed`, without its first `skip` items."""
        self._resume = (seed, skip)

    def __iter__(self) -> Iterator[int]:
        if self._resume is None:
            seed, skip = int(torch.empty((), dtype=torch.int64).random_().item()), 0
        else:
            (seed, skip), self._resume = self._resume, None
        self.epoch_seed = seed
        order = torch.randperm(len(self.data_source), generator=torch.Generator().manual_seed(seed))
        yield from order.tolist()[skip:]


class ResumableLoader(DataLoader):
    """A training loader whose state, saved in each checkpoint, resumes the same epoch, batches,
    augmentations and random draws.

    Its dataset provides `state_dict()` / `load_state_dict()` of its own randomness.
    """

    _epoch: Any = None                       # the current epoch's iterator
    _pending: dict[str, Any] | None = None   # a checkpoint's state, applied at the next epoch

    def state_dict(self) -> dict[str, Any]:
        return {"format": RESUME_FORMAT,
                "epoch_seed": getattr(self.sampler, "epoch_seed", None),
                "batches": self._epoch._num_yielded if self._epoch is not None else 0,
                "dataset": self.dataset.state_dict(),
                "random": random_states()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._pending = state

    def __iter__(self) -> Iterator[Any]:
        """The epoch's batches; after `load_state_dict`, the rest of the interrupted epoch.

        Within an epoch, the uninterrupted run had drawn its iterator's and shuffle's seeds at
        the epoch's start, so the generators are restored after this epoch's iterator is made;
        at an epoch's end they are restored before, so that the next epoch draws from them.
        Resuming at an epoch's end, Lightning makes the iterator twice (when it sets up the data
        and when the epoch starts), so the state applies to every iterator until one is used.
        """
        if self._epoch is not None and self._epoch._num_yielded > 0:
            self._pending = None
        state = self._pending
        if state is None:
            self._epoch = super().__iter__()
            return self._epoch
        self.dataset.load_state_dict(state["dataset"])
        within = 0 < state["batches"] < len(self) and isinstance(self.sampler, ShuffleSampler)
        if within:
            self.sampler.resume(state["epoch_seed"], state["batches"] * self.batch_size)
        else:
            set_random_states(state["random"])
        self._epoch = super().__iter__()
        if within:
            set_random_states(state["random"])
        return self._epoch


def resumable_state(checkpoint: Any) -> bool:
    """Whether a loaded Lightning checkpoint holds a `ResumableLoader`'s state."""
    try:
        loaders = checkpoint["loops"]["fit_loop"]["state_dict"]["combined_loader"]
        return any(state.get("format") == RESUME_FORMAT for state in loaders)
    except (KeyError, TypeError, AttributeError):
        return False
