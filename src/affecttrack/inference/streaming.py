"""Per-frame sequence-model predictions for a video that arrives a frame or a chunk at a time.

`SequenceStream` keeps only the recurrent network's hidden state between calls, so a video of any
length costs O(T) time and constant memory, and every pushed frame gets its prediction at once.
Fed a whole gap-free run, it gives exactly what `predictions.sequence.predict_sequences` gives for
it (one forward pass over the run, outputs shifted by one frame for a many-to-one model).

Face lost for a while: the stream is told each face's frame number. A jump over more than
`max_gap` missing frames resets the hidden state, so the frames after the gap start a new run, as
`predict_sequences` does (with the default `max_gap=0` any missing frame resets, which matches it
exactly). Training windows never span a gap, so the network never learnt what a jump looks like;
a larger `max_gap` bridges brief detector misses by feeding the frames after the gap as if they
directly followed those before it, keeping the context the network has built up at the price of
that unseen jump. Frames without a face get no prediction here; fill them afterwards with
`affecttrack.data.sequences.fill_missing`.

Many-to-one networks and the public code's windows: a network trained many-to-one on windows of
L frames (`training/sequence_data.py`: inputs at positions s..s+L-1, target position s+L) learnt to
predict a frame from the L frames before it, and the public code ran one such window per frame:
frame t (1-based within a run) from frames t-L..t-1, for t > L only. The stream instead predicts
frame t from everything it has seen in the run, frames 1..t-1 (frame 1, with nothing before it,
takes the output after seeing itself, as `predict_sequences` does). The two see the same frames,
and so agree exactly, for frame L+1 (the first full window is the whole history) and, for
2 <= t <= L, where the window rule applied to the history available (frames 1..t-1) is what the
stream computes; the public code made no prediction for those frames at all. From frame L+2 on
the stream has seen more than L frames and the window only the last L, so they differ by whatever
the network remembers from earlier than L frames back; that longer memory is the point of running
statefully, and the cost is O(1) per frame instead of O(L).
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import torch

from affecttrack.errors import AffectTrackError
from affecttrack.inference.bundle import Bundle
from affecttrack.models.base import SequenceNetwork, State


class SequenceStream:
    """Feed frame features (`push`), get each frame's prediction back; state carries over."""

    def __init__(self, model: SequenceNetwork, *, many_to_one: bool = False,
                 max_gap: int = 0) -> None:
        if max_gap < 0:
            raise AffectTrackError(f"max_gap must be >= 0 frames, got {max_gap}")
        self.model = model.eval()
        self.many_to_one = many_to_one
        self.max_gap = max_gap
        self._device = next(model.parameters()).device
        self.reset()

    @classmethod
    def from_bundle(cls, bundle: Bundle, *, max_gap: int = 0) -> SequenceStream:
        """A stream over the bundle's sequence network, shifted if it was trained many-to-one."""
        if bundle.sequence is None:
            raise AffectTrackError("the bundle has no sequence model to stream with; make one "
                                   "with `affecttrack bundle --frame F --sequence S --out B`")
        return cls(bundle.sequence, many_to_one=bundle.sequence_target == "many_to_one",
                   max_gap=max_gap)

    def reset(self) -> None:
        """Forget everything: the next frame starts a new run (a new video, a new face)."""
        self._state: State | None = None
        self._pending: torch.Tensor | None = None
        self._last_frame: int | None = None

    @property
    def last_frame(self) -> int | None:
        """Frame number of the last frame pushed since the last reset (None: none yet)."""
        return self._last_frame

    def push(self, features: np.ndarray | torch.Tensor,
             frames: np.ndarray | list[int] | None = None) -> np.ndarray:
        """Predictions (n, outputs) float32 for the n frames whose features (n, D) are given.

        `frames`: the frames' numbers, increasing; None means they directly follow the last frame
        pushed. A single frame may be given as a (D,) vector.
        """
        # A copy: features often come from a read-only memory map (a feature store).
        x = (features if isinstance(features, torch.Tensor)
             else torch.from_numpy(np.array(features, dtype=np.float32)))
        x = x.to(self._device, torch.float32)
        if x.ndim == 1:
            x = x.unsqueeze(0)
        width = self.model.input_size
        if x.ndim != 2 or x.shape[1] != width:
            raise AffectTrackError(f"the sequence model takes ({width},) features per frame, "
                                   f"got an array of shape {tuple(x.shape)}")
        numbers = self._frame_numbers(x.shape[0], frames)
        starts_run = self._run_starts(numbers)
        cuts = np.unique(np.concatenate([[0], np.flatnonzero(starts_run), [numbers.size]]))
        outputs = [torch.zeros((0, self.model.num_outputs), device=self._device)]
        with torch.inference_mode():
            for start, stop in pairwise(cuts):
                if starts_run[start]:
                    self._state, self._pending = None, None
                outputs.append(self._advance(x[start:stop]))
        if numbers.size:
            self._last_frame = int(numbers[-1])
        return torch.cat(outputs).float().cpu().numpy()

    def _frame_numbers(self, count: int, frames: np.ndarray | list[int] | None) -> np.ndarray:
        if frames is None:
            first = 1 if self._last_frame is None else self._last_frame + 1
            return np.arange(first, first + count, dtype=np.int64)
        numbers = np.asarray(frames, dtype=np.int64).reshape(-1)
        if numbers.size != count:
            raise AffectTrackError(f"{count} feature rows but {numbers.size} frame numbers")
        return numbers

    def _run_starts(self, numbers: np.ndarray) -> np.ndarray:
        """Which frames start a new run (more than `max_gap` frames missing before them, or the
        first frame after a reset); refuses frame numbers that do not increase."""
        before = np.empty_like(numbers)
        before[1:] = numbers[:-1]
        if numbers.size:
            before[0] = numbers[0] - 1 if self._last_frame is None else self._last_frame
        if np.any(numbers <= before):
            raise AffectTrackError(f"frame numbers must increase; got {numbers[:8].tolist()} "
                                   f"after frame {self._last_frame}")
        starts = numbers - before - 1 > self.max_gap
        if numbers.size and self._last_frame is None:
            starts[0] = True
        return starts

    def _advance(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs for consecutive frames of one run, carrying the hidden state on.

        A many-to-one network's output after frame t is its prediction for frame t+1: each frame
        gets the output held back from the frame before (the run's first frame its own).
        """
        out, self._state = self.model.step(x.unsqueeze(0), self._state)
        out = out[0]
        if not self.many_to_one:
            return out
        first = self._pending if self._pending is not None else out[:1]
        self._pending = out[-1:]
        return torch.cat([first, out[:-1]])
