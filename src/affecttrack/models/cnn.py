"""The paper's frame CNN: a small network on 96x96 grey faces whose 300-d layer is the feature.

Layer for layer the public Keras model (`simple_cnn_ccc_loss`): batch normalisation of the raw
input, three 5x5 convolutions without bias, "quadrant" average pooling to 2x2 per filter, a 300-unit
linear layer (no activation: the reference feeds it straight into dropout), dropout and one linear
head per task. Keras defaults are kept where they change the numbers: BatchNorm eps 1e-3, Glorot-uniform
weights, zero biases; the input BatchNorm's running statistics are a cumulative average (see
below) rather than Keras' slow exponential one.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from affecttrack.models.base import FrameNetwork

FEATURE_DIM = 300
# uint8 grey levels are divided by this (to [0, 1]) before the input BatchNorm; training, feature
# extraction and exported models must all scale the same way, so the divisor lives here once.
INPUT_DIVISOR = 255.0


def faces_to_input(faces: np.ndarray, divisor: float = INPUT_DIVISOR) -> torch.Tensor:
    """(n, h, w) uint8 grey faces -> the (n, 1, h, w) float32 tensor a frame network takes."""
    # np.array copies: a read-only memory map (a face store) cannot back a torch tensor.
    return torch.from_numpy(np.array(faces)).unsqueeze(1).float().div_(divisor)


def head_probabilities(outputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Heads as a user reads them: expression logits as class probabilities (softmax),
    action-unit logits as each unit's probability (sigmoid), valence/arousal as they are."""
    readers = {"expression": lambda logits: torch.softmax(logits, dim=-1), "au": torch.sigmoid}
    return {name: readers.get(name, lambda value: value)(value.float())
            for name, value in outputs.items()}


class FrameCNN(FrameNetwork):
    """Frame regressor/classifier with named heads ("va" -> 2 outputs, "expression" -> logits)."""

    def __init__(self, heads: Mapping[str, int] | None = None, feature_dim: int = FEATURE_DIM,
                 dropout: float = 0.5) -> None:
        super().__init__()
        heads = dict(heads) if heads is not None else {"va": 2}
        if not heads:
            raise ValueError("FrameCNN needs at least one head")
        # Running statistics as the plain average over every training batch (momentum None): the
        # input's distribution does not drift during training, so this is its best estimate from
        # the first step on, whereas Keras' momentum 0.99 leaves evaluation using half-updated
        # statistics for hundreds of steps (seen: validation CCC near 0 after 100 steps).
        self.input_norm = nn.BatchNorm2d(1, eps=1e-3, momentum=None)
        self.trunk = nn.Sequential(
            nn.Conv2d(1, 64, 5, padding=2, bias=False), nn.ReLU(), nn.MaxPool2d(2),    # 96 -> 48
            nn.Conv2d(64, 128, 5, bias=False), nn.ReLU(), nn.MaxPool2d(2),             # 44 -> 22
            nn.Conv2d(128, 256, 5, bias=False), nn.ReLU(),                             # 18
            nn.AvgPool2d(9, stride=9),                                                 # 2 x 2
            nn.Flatten(),
        )
        self.embedding = nn.Linear(256 * 2 * 2, feature_dim)
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({name: nn.Linear(feature_dim, size)
                                    for name, size in heads.items()})
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform weights and zero biases, as Keras initialises Conv2D and Dense."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    @property
    def num_features(self) -> int:
        return self.embedding.out_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 96, 96) images in [0, 1] -> (B, 300) features (the penultimate layer)."""
        return self.embedding(self.trunk(self.input_norm(x)))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.forward_heads(self.dropout(self.forward_features(x)))
