"""What a model is trained to predict: its head, loss, validation metric and the score to monitor.

Keeping this apart from the Lightning modules lets the frame CNN train either target with the same
step logic, and lets the sequence model reuse the valence/arousal task unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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
    """Basic-expression classification scored by accuracy.

    `class_weights` (one per class) weight the cross-entropy, so that rare expressions count as
    much as frequent ones without discarding frames as downsampling does.
    """

    num_classes: int
    class_weights: tuple[float, ...] | None = None
    head: str = "expression"
    monitor: str = "val/accuracy"

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weight = None if self.class_weights is None else torch.tensor(
            self.class_weights, dtype=torch.float32, device=output.device)
        return F.cross_entropy(output.float(), target, weight=weight)

    def make_metric(self) -> Metric:
        return MulticlassAccuracy(num_classes=self.num_classes, average="micro")

    def update(self, metric: Metric, output: torch.Tensor, target: torch.Tensor) -> None:
        metric.update(output.float(), target)

    def scores(self, value: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"val/accuracy": value}


Task = VATask | ExpressionTask


def inverse_frequency_weights(class_counts: list[int] | np.ndarray,
                              num_classes: int) -> tuple[float, ...]:
    """Cross-entropy weights n / (k * n_c) for the k classes present (1 for absent ones): a
    frame's weight is inversely proportional to its class's frequency, and the weights average
    to 1 over the training frames, so the loss keeps its usual scale."""
    counts = np.zeros(num_classes, dtype=np.float64)
    given = np.asarray(class_counts, dtype=np.float64)[:num_classes]
    counts[:len(given)] = given
    present = counts > 0
    weights = np.ones(num_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return tuple(float(w) for w in weights)


def make_task(name: str, *, loss: str = "ccc", heads: dict[str, int] | None = None,
              class_counts: list[int] | None = None) -> Task:
    """The task called `name` for a model with `heads` (expression needs the class count);
    `class_counts` (training frames per class) weight the expression task's loss."""
    heads = heads or {}
    if name not in TASKS:
        raise AffectTrackError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}")
    head = "va" if name == "va" else "expression"
    if head not in heads:
        raise AffectTrackError(f"task {name!r} needs a model with a {head!r} head; this model has "
                               f"{', '.join(heads) or 'none'}")
    if name == "va":
        return VATask(loss)
    weights = (None if class_counts is None
               else inverse_frequency_weights(class_counts, heads[head]))
    return ExpressionTask(heads[head], class_weights=weights)
