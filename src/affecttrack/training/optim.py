"""Optimisers and the learning-rate schedule of the public code.

The reference compiled SGD(lr=0.01, momentum=0.9, decay=1e-5); Keras' legacy `decay` divides the
learning rate by (1 + decay * step) after every batch, reproduced here with a per-step LambdaLR.
`weight_decay` is the L2 penalty that PyTorch's SGD and Adam add to the gradient (AdamW decouples
it); the paper names weight decay without a value, so the frame model defaults to 1e-4, a common
value for SGD-trained CNNs of this size.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ..errors import AffectTrackError

OPTIMIZERS = ("sgd", "adam", "adamw")


def make_optimizer(params: Iterable[torch.nn.Parameter], name: str, *, lr: float,
                   momentum: float = 0.9, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """SGD with momentum, Adam or AdamW by name."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise AffectTrackError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")


def keras_decay(optimizer: torch.optim.Optimizer,
                decay: float) -> torch.optim.lr_scheduler.LRScheduler:
    """lr / (1 + decay * step), stepped once per batch."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1.0 + decay * step))


def optimizer_config(params: Iterable[torch.nn.Parameter], name: str, *, lr: float,
                     momentum: float, weight_decay: float, decay: float) -> dict[str, Any]:
    """What a LightningModule's configure_optimizers returns: optimiser plus per-step decay."""
    optimizer = make_optimizer(params, name, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if decay <= 0:
        return {"optimizer": optimizer}
    return {"optimizer": optimizer,
            "lr_scheduler": {"scheduler": keras_decay(optimizer, decay), "interval": "step"}}
