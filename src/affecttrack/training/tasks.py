"""What a model is trained to predict: its head, loss, validation metric and the score to monitor.

Keeping this apart from the Lightning modules lets the frame CNN train either target with the same
step logic, and lets the sequence model reuse the valence/arousal task unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.regression import ConcordanceCorrCoef

from ..errors import AffectTrackError
from ..models.losses import VA_LOSSES

TASKS = ("va", "expression")


@dataclass(frozen=True)
class VATask:
    """Valence/arousal regression scored by CCC (validation CCC is over the whole split)."""

    loss_name: str = "ccc"
    head: str = "va"
    monitor: str = "val/ccc"

    def __post_init__(self) -> None:
        if self.loss_name not in VA_LOSSES:
            raise AffectTrackError(f"unknown loss {self.loss_name!r}; expected one of "
                                   f"{', '.join(VA_LOSSES)}")

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return VA_LOSSES[self.loss_name](output, target)

    def make_metric(self) -> Metric:
        return ConcordanceCorrCoef(num_outputs=2)

    def update(self, metric: Metric, output: torch.Tensor, target: torch.Tensor) -> None:
        metric.update(output.float().reshape(-1, 2), target.float().reshape(-1, 2))

    def scores(self, value: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"val/ccc_valence": value[0], "val/ccc_arousal": value[1], "val/ccc": value.mean()}


@dataclass(frozen=True)
class ExpressionTask:
    """Basic-expression classification scored by accuracy."""

    num_classes: int
    head: str = "expression"
    monitor: str = "val/accuracy"

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(output.float(), target)

    def make_metric(self) -> Metric:
        return MulticlassAccuracy(num_classes=self.num_classes, average="micro")

    def update(self, metric: Metric, output: torch.Tensor, target: torch.Tensor) -> None:
        metric.update(output.float(), target)

    def scores(self, value: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"val/accuracy": value}


Task = VATask | ExpressionTask


def make_task(name: str, *, loss: str = "ccc", heads: dict[str, int] | None = None) -> Task:
    """The task called `name` for a model with `heads` (expression needs the class count)."""
    heads = heads or {}
    if name not in TASKS:
        raise AffectTrackError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}")
    head = "va" if name == "va" else "expression"
    if head not in heads:
        raise AffectTrackError(f"task {name!r} needs a model with a {head!r} head; this model has "
                               f"{', '.join(heads) or 'none'}")
    return VATask(loss) if name == "va" else ExpressionTask(heads[head])
