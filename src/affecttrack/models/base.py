"""The contracts every network meets, so that extraction, bundles, export, streaming and
prediction work with any backbone the registry names, not just the paper's.

A frame network maps a batch of grey face crops to a feature vector and named heads on it; a
sequence network maps a sequence of those features to per-step outputs, carrying a state from
one chunk of frames to the next. Code outside `models/` reads a network only through these
members, never through its layers, so a second backbone family is one new module (a subclass)
plus its entries in `models/registry.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn

from affecttrack.data.faces import FACE_SIZE

State = list[Any]


class FrameNetwork(nn.Module, ABC):
    """(B, 1, input_size, input_size) faces in [0, 1] -> features -> named heads.

    `heads` is a ModuleDict of linear layers on the `num_features`-d feature, named "va"
    (valence, arousal), "expression" (class logits) or "au" (action-unit logits).
    """

    input_size: int = FACE_SIZE
    heads: nn.ModuleDict

    @property
    @abstractmethod
    def num_features(self) -> int:
        """Width of the feature vector (the paper's 300)."""

    @abstractmethod
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) images -> (B, num_features) features (the penultimate layer)."""

    @property
    def head_sizes(self) -> dict[str, int]:
        """Output size of each head, e.g. {"va": 2} or {"expression": 7}."""
        return {name: head.out_features for name, head in self.heads.items()}

    def forward_heads(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every head's output for features `z` (inference: no dropout in between)."""
        return {name: head(z) for name, head in self.heads.items()}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.forward_heads(self.forward_features(x))


class SequenceNetwork(nn.Module, ABC):
    """(B, T, input_size) features -> (B, T, num_outputs): one output row per time step.

    `head_sizes` names the outputs as a frame network's heads do; they are concatenated in
    that order, and `split_heads` names the parts. The state is the network's own business;
    `step` carries it across calls, and `state_names` / `flat_state` / `nested_state` give it
    as flat (B, size) tensors for runtimes that know nothing of its layout (ONNX).
    """

    head_sizes: dict[str, int]

    @property
    @abstractmethod
    def input_size(self) -> int:
        """Width of the per-frame features the network reads."""

    @abstractmethod
    def step(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Outputs for the chunk `x` (B, T, input_size) and the state after it; `state` None
        starts afresh. Two chunks in a row give what one pass over both gives."""

    @abstractmethod
    def state_names(self) -> list[tuple[str, int]]:
        """(name, width) of every flat state tensor, in the order `flat_state` gives them."""

    @abstractmethod
    def flat_state(self, state: State) -> list[torch.Tensor]:
        """The state as flat (B, width) tensors, in `state_names` order."""

    @abstractmethod
    def nested_state(self, flat: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> State:
        """The state `step` takes, from flat tensors in `state_names` order."""

    def standardize_inputs(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Training hands over the training features' per-feature mean and standard deviation
        before the first step; a network that scales its inputs keeps them with its weights (so
        prediction uses exactly what training used). Networks that need no scaling ignore them."""

    @property
    def num_outputs(self) -> int:
        """Columns of the output: the heads' sizes added up."""
        return sum(self.head_sizes.values())

    def head_slice(self, name: str) -> slice:
        """Where head `name` lies among the concatenated outputs."""
        start = 0
        for head, size in self.head_sizes.items():
            if head == name:
                return slice(start, start + size)
            start += size
        raise KeyError(f"the sequence model has no {name!r} head (heads: "
                       f"{', '.join(self.head_sizes)})")

    def split_heads(self, output: torch.Tensor) -> dict[str, torch.Tensor]:
        """The outputs (..., num_outputs) as head name -> (..., head size)."""
        return {name: output[..., self.head_slice(name)] for name in self.head_sizes}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.step(x)[0]
