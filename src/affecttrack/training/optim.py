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

from affecttrack.errors import AffectTrackError

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


def step_schedule(optimizer: torch.optim.Optimizer, decay: float,
                  warmup_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """lr / (1 + decay * step), stepped once per batch, after an optional linear warm-up.

    The warm-up lets Adam take a learning rate that would blow up a freshly initialised network's
    outputs in its first few steps, where 1 - CCC saturates and the gradient vanishes.
    """
    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
        return warm / (1.0 + decay * step)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def optimizer_config(params: Iterable[torch.nn.Parameter], name: str, *, lr: float,
                     momentum: float, weight_decay: float, decay: float,
                     warmup_steps: int = 0) -> dict[str, Any]:
    """What a LightningModule's configure_optimizers returns: optimiser plus per-step schedule."""
    optimizer = make_optimizer(params, name, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if decay <= 0 and warmup_steps <= 0:
        return {"optimizer": optimizer}
    return {"optimizer": optimizer,
            "lr_scheduler": {"scheduler": step_schedule(optimizer, decay, warmup_steps),
                             "interval": "step"}}
