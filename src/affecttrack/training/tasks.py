"""What a model is trained to predict: its head, loss, validation metric and the score to monitor.

Keeping this apart from the Lightning modules lets the frame CNN train either target with the same
step logic, and lets the sequence model reuse the valence/arousal task unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score
from torchmetrics.regression import ConcordanceCorrCoef

from ..errors import AffectTrackError
from ..models.losses import VA_LOSSES

TASKS = ("va", "expression", "combined")
# Columns of a combined task's targets: valence, arousal (NaN = not annotated) and the expression
# class as a float (-1 = not annotated).
COMBINED_TARGETS = ("valence", "arousal", "expression")


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

    def select(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return outputs[self.head]

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
    """Basic-expression classification, checkpointed and stopped early on macro-F1.

    Macro-F1 rather than accuracy: on imbalanced data (expressions in the wild are half Neutral)
    accuracy keeps rising while a model learns only the frequent classes, and the checkpoint it
    picks never recognises the rare ones. Accuracy is still logged. `class_weights` (one per
    class) weight the cross-entropy, so that rare expressions count more without discarding frames
    as downsampling does.
    """

    num_classes: int
    class_weights: tuple[float, ...] | None = None
    head: str = "expression"
    monitor: str = "val/macro_f1"

    def select(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return outputs[self.head]

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weight = None if self.class_weights is None else torch.tensor(
            self.class_weights, dtype=torch.float32, device=output.device)
        return F.cross_entropy(output.float(), target, weight=weight)

    def make_metric(self) -> MetricCollection:
        return MetricCollection({
            "accuracy": MulticlassAccuracy(num_classes=self.num_classes, average="micro"),
            "macro_f1": MulticlassF1Score(num_classes=self.num_classes, average="macro")})

    def update(self, metric: Metric, output: torch.Tensor, target: torch.Tensor) -> None:
        metric.update(output.float(), target)

    def scores(self, value: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {f"val/{name}": score for name, score in value.items()}


@dataclass(frozen=True)
class CombinedTask:
    """Valence/arousal and expression from one network, on frames where either label may be
    missing (the follow-up paper's joint training).

    The loss is `va_weight` x the valence/arousal loss over the batch's frames that have
    valence/arousal, plus `expression_weight` x the cross-entropy over those with an expression:
    a missing label adds nothing, so a dataset labelled one way only still trains the other head
    on the frames that have it. Checkpoints and early stopping follow `val/score`, the mean of
    the mean CCC and the macro-F1, so neither head is sacrificed for the other.
    """

    va: VATask
    expression: ExpressionTask
    va_weight: float = 1.0
    expression_weight: float = 1.0
    head: str = "va+expression"
    monitor: str = "val/score"

    def select(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"va": outputs["va"], "expression": outputs["expression"]}

    def loss(self, output: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        has_va, has_expression = _labelled(target)
        total = output["va"].float().sum() * 0.0   # keeps the graph when a batch has no label
        if int(has_va.sum()) >= 2:               # CCC needs a spread: two frames at least
            total = total + self.va_weight * self.va.loss(output["va"][has_va],
                                                          target[has_va, :2])
        if bool(has_expression.any()):
            total = total + self.expression_weight * self.expression.loss(
                output["expression"][has_expression], target[has_expression, 2].long())
        return total

    def make_metric(self) -> MetricCollection:
        return MetricCollection({"ccc": self.va.make_metric(),
                                 **self.expression.make_metric()}, compute_groups=False)

    def update(self, metric: MetricCollection, output: dict[str, torch.Tensor],
               target: torch.Tensor) -> None:
        has_va, has_expression = _labelled(target)
        if bool(has_va.any()):
            self.va.update(metric["ccc"], output["va"][has_va], target[has_va, :2])
        if bool(has_expression.any()):
            for name in ("accuracy", "macro_f1"):
                metric[name].update(output["expression"][has_expression].float(),
                                    target[has_expression, 2].long())

    def scores(self, value: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        va = self.va.scores(value["ccc"])
        expression = self.expression.scores({name: value[name]
                                             for name in ("accuracy", "macro_f1")})
        return {**va, **expression, "val/score": (va["val/ccc"] + expression["val/macro_f1"]) / 2}


def _labelled(target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Which rows of (B, 3) combined targets carry valence/arousal, and which an expression."""
    return torch.isfinite(target[:, :2]).all(dim=1), target[:, 2] >= 0


Task = VATask | ExpressionTask | CombinedTask


def inverse_frequency_weights(class_counts: list[int] | np.ndarray, num_classes: int,
                              power: float = 1.0) -> tuple[float, ...]:
    """Cross-entropy weights proportional to (1 / n_c) ** power for the classes present (1 for
    absent ones), scaled to average 1 over the training frames so the loss keeps its usual scale.

    power 1 makes every class weigh the same in total; on data as skewed as photos in the wild
    (Contempt ~150x rarer than Neutral) that drowns the gradient in a few noisy rare faces, and
    power 0.5 (square root) is the usual softened compromise.
    """
    counts = np.zeros(num_classes, dtype=np.float64)
    given = np.asarray(class_counts, dtype=np.float64)[:num_classes]
    counts[:len(given)] = given
    present = counts > 0
    weights = np.ones(num_classes)
    raw = counts[present] ** -power
    weights[present] = raw * counts.sum() / (raw * counts[present]).sum()
    return tuple(float(w) for w in weights)


def make_task(name: str, *, loss: str = "ccc", heads: dict[str, int] | None = None,
              class_counts: list[int] | None = None, weight_power: float = 1.0,
              va_weight: float = 1.0, expression_weight: float = 1.0) -> Task:
    """The task called `name` for a model with `heads` (expression needs the class count);
    `class_counts` (training frames per class) weight the expression loss, with `weight_power`
    (see `inverse_frequency_weights`); the combined task weighs its two losses by `va_weight`
    and `expression_weight`."""
    heads = heads or {}
    if name not in TASKS:
        raise AffectTrackError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}")
    needed = {"va": ["va"], "expression": ["expression"], "combined": ["va", "expression"]}[name]
    missing = [head for head in needed if head not in heads]
    if missing:
        wanted = " and ".join(map(repr, needed)) + (" heads" if len(needed) > 1 else " head")
        raise AffectTrackError(f"task {name!r} needs a model with a {wanted}; this model has "
                               f"{', '.join(heads) or 'none'}")
    if name == "va":
        return VATask(loss)
    weights = (None if class_counts is None
               else inverse_frequency_weights(class_counts, heads["expression"], weight_power))
    expression = ExpressionTask(heads["expression"], class_weights=weights)
    if name == "expression":
        return expression
    return CombinedTask(VATask(loss), expression, va_weight, expression_weight)
