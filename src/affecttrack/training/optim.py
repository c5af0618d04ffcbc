"""Optimisers and the learning-rate schedule of the public code.

The reference compiled SGD(lr=0.01, momentum=0.9, decay=1e-5); Keras' legacy `decay` divides the
learning rate by (1 + decay * step) after every batch, reproduced here with a per-step LambdaLR.
`weight_decay` is the L2 penalty that PyTorch's SGD and Adam add to the gradient (AdamW decouples
it); the paper names weight decay without a value, so the frame model defaults to 1e-4, a common
value for SGD-trained CNNs of this size.

`schedule: cosine` (the recommended recipes') lowers the rate along half a cosine from its peak to
zero at the run's last step, after the warm-up: a small dataset is seen many times, and the last
epochs at a small rate settle the weights instead of leaving them where the last noisy step threw
them. It needs a step or epoch budget to know where the last step is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from affecttrack.errors import AffectTrackError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("step_decay", "cosine")


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


def step_schedule(optimizer: torch.optim.Optimizer, decay: float, warmup_steps: int,
                  cosine_steps: int | None = None) -> torch.optim.lr_scheduler.LRScheduler:
    """lr / (1 + decay * step), stepped once per batch, after an optional linear warm-up; with
    `cosine_steps`, also times a half cosine from 1 after the warm-up to 0 at that step.

    The warm-up lets Adam take a learning rate that would blow up a freshly initialised network's
    outputs in its first few steps, where 1 - CCC saturates and the gradient vanishes.
    """
    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
        if cosine_steps is not None:
            done = min(1.0, max(0, step - warmup_steps) / max(1, cosine_steps - warmup_steps))
            warm *= 0.5 * (1.0 + math.cos(math.pi * done))
        return warm / (1.0 + decay * step)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def optimizer_config(params: Iterable[torch.nn.Parameter], name: str, *, lr: float,
                     momentum: float, weight_decay: float, decay: float,
                     warmup_steps: int = 0, schedule: str = "step_decay",
                     total_steps: float | None = None) -> dict[str, Any]:
    """What a LightningModule's configure_optimizers returns: optimiser plus per-step schedule.

    `total_steps` (the run's step budget) is needed by the cosine schedule only."""
    if schedule not in SCHEDULES:
        raise AffectTrackError(f"unknown schedule {schedule!r}; expected one of "
                               f"{', '.join(SCHEDULES)}")
    optimizer = make_optimizer(params, name, lr=lr, momentum=momentum, weight_decay=weight_decay)
    cosine_steps = None
    if schedule == "cosine":
        if total_steps is None or not math.isfinite(total_steps):
            raise AffectTrackError("schedule cosine needs a step budget: set max_steps or "
                                   "max_epochs")
        cosine_steps = int(total_steps)
    if decay <= 0 and warmup_steps <= 0 and cosine_steps is None:
        return {"optimizer": optimizer}
    scheduler = step_schedule(optimizer, decay, warmup_steps, cosine_steps)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
