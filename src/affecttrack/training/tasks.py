"""What a model is trained to predict: its head, loss, validation metric and the score to monitor.

Keeping this apart from the Lightning modules lets the frame CNN train either target with the same
step logic, and lets the sequence model reuse the valence/arousal task unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassF1Score,
    MultilabelF1Score,
)
from torchmetrics.regression import ConcordanceCorrCoef

from affecttrack.errors import AffectTrackError
from affecttrack.models.losses import VA_LOSSES

TASKS = ("va", "expression", "combined")


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
    label_smoothing: float = 0.0
    head: str = "expression"
    monitor: str = "val/macro_f1"

    def select(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return outputs[self.head]

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weight = None if self.class_weights is None else torch.tensor(
            self.class_weights, dtype=torch.float32, device=output.device)
        return F.cross_entropy(output.float(), target, weight=weight,
                               label_smoothing=self.label_smoothing)

    def make_metric(self) -> MetricCollection:
        return MetricCollection({
            "accuracy": MulticlassAccuracy(num_classes=self.num_classes, average="micro"),
            "macro_f1": MulticlassF1Score(num_classes=self.num_classes, average="macro")})

    def update(self, metric: Metric, output: torch.Tensor, target: torch.Tensor) -> None:
        metric.update(output.float(), target)

    def scores(self, value: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {f"val/{name}": score for name, score in value.items()}


@dataclass(frozen=True)
class ActionUnitTask:
    """Action-unit detection: one independent yes/no output per unit (Aff-Wild2's 8 or 12).

    Binary cross-entropy over the entries that are known (-1 = unknown adds nothing), optionally
    with `pos_weights` (one per unit) that make the rarely active units count more; scored by
    F1 per unit, averaged over units, as the ABAW challenges score AU detection.
    """

    num_units: int
    pos_weights: tuple[float, ...] | None = None
    head: str = "au"
    monitor: str = "val/au_f1"

    def select(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return outputs[self.head]

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        known = target >= 0
        weight = None if self.pos_weights is None else torch.tensor(
            self.pos_weights, dtype=torch.float32, device=output.device).expand_as(output)[known]
        return F.binary_cross_entropy_with_logits(output.float()[known],
                                                  target[known].float(), pos_weight=weight)

    def make_metric(self) -> Metric:
        return MultilabelF1Score(num_labels=self.num_units, average="macro", ignore_index=-1)

    def update(self, metric: Metric, output: torch.Tensor, target: torch.Tensor) -> None:
        metric.update(torch.sigmoid(output.float()), target.long())

    def scores(self, value: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"val/au_f1": value}


@dataclass(frozen=True)
class CombinedTask:
    """Any two or three of valence/arousal, expression and action units from one network, on
    frames where any label may be missing (the follow-up paper's joint training).

    Targets are (B, 3 + units) rows: valence, arousal (NaN = not annotated), the class as a float
    (-1 = none), then each action unit (-1 = unknown); sequences give (B, T, ...) and are scored
    per step. The loss adds each head's loss over the frames (entries, for action units) that have
    its label, times its weight: a missing label adds nothing, so a dataset labelled one way only
    still trains the other heads on the frames that have theirs. Checkpoints and early stopping
    follow `val/score`, the mean of the heads' scores (mean CCC, macro-F1, mean AU F1), so no head
    is sacrificed for another.
    """

    va: VATask | None = None
    expression: ExpressionTask | None = None
    au: ActionUnitTask | None = None
    va_weight: float = 1.0
    expression_weight: float = 1.0
    au_weight: float = 1.0
    monitor: str = "val/score"

    def __post_init__(self) -> None:
        if len(self.parts) < 2:
            raise AffectTrackError("a combined task needs two heads at least (va, expression, "
                                   "au)")

    @property
    def parts(self) -> dict[str, VATask | ExpressionTask | ActionUnitTask]:
        """The heads this task trains, by head name."""
        parts = {"va": self.va, "expression": self.expression, "au": self.au}
        return {name: part for name, part in parts.items() if part is not None}

    @property
    def head(self) -> str:
        return "+".join(self.parts)

    def select(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: outputs[name] for name in self.parts}

    def loss(self, output: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        output, target = _flat(output, target)
        weights = {"va": self.va_weight, "expression": self.expression_weight,
                   "au": self.au_weight}
        total = next(iter(output.values())).float().sum() * 0.0  # keeps the graph: no label
        for name, part in self.parts.items():
            rows, part_target = _labelled(name, target)
            if int(rows.sum()) >= (2 if name == "va" else 1):  # CCC needs two frames at least
                total = total + weights[name] * part.loss(output[name][rows], part_target[rows])
        return total

    def make_metric(self) -> HeadMetrics:
        return HeadMetrics({name: part.make_metric() for name, part in self.parts.items()})

    def update(self, metric: HeadMetrics, output: dict[str, torch.Tensor],
               target: torch.Tensor) -> None:
        output, target = _flat(output, target)
        for name, part in self.parts.items():
            rows, part_target = _labelled(name, target)
            if bool(rows.any()):
                part.update(metric[name], output[name][rows], part_target[rows])

    def scores(self, value: dict[str, Any]) -> dict[str, torch.Tensor]:
        scores: dict[str, torch.Tensor] = {}
        for name, part in self.parts.items():
            scores.update(part.scores(value[name]))
        monitored = [scores[part.monitor] for part in self.parts.values()]
        return {**scores, "val/score": torch.stack(monitored).mean()}


class HeadMetrics(nn.ModuleDict):
    """Each head's own metric (a Metric or a MetricCollection), computed and reset together;
    kept apart rather than merged into one collection, whose names would clash and whose
    nested members it renames."""

    def compute(self) -> dict[str, Any]:
        return {name: metric.compute() for name, metric in self.items()}

    def reset(self) -> None:
        for metric in self.values():
            metric.reset()


def _flat(output: dict[str, torch.Tensor],
          target: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Frames as rows: (B, T, c) sequence outputs and targets flattened to (B * T, c)."""
    return ({name: out.reshape(-1, out.shape[-1]) for name, out in output.items()},
            target.reshape(-1, target.shape[-1]))


def _labelled(head: str, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows of (N, 3 + units) combined targets that carry `head`'s label, and its columns."""
    if head == "va":
        return torch.isfinite(target[:, :2]).all(dim=1), target[:, :2]
    if head == "expression":
        return target[:, 2] >= 0, target[:, 2].long()
    return (target[:, 3:] >= 0).any(dim=1), target[:, 3:]


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


def positive_weights(active: list[int] | np.ndarray, known: list[int] | np.ndarray,
                     power: float = 1.0) -> tuple[float, ...]:
    """Binary cross-entropy weights of each action unit's active frames: (inactive / active) **
    power of the training frames where it is known (1 for a unit never seen active), so that a
    unit active in 5% of frames is not learnt as "never"."""
    active = np.asarray(active, dtype=np.float64)
    inactive = np.asarray(known, dtype=np.float64) - active
    ratio = np.divide(inactive, active, out=np.ones_like(active), where=active > 0)
    return tuple(float(w) for w in np.maximum(ratio, 1e-3) ** power)


def make_task(name: str, *, loss: str = "ccc", heads: dict[str, int] | None = None,
              class_counts: list[int] | None = None, au_counts: dict[str, list[int]] | None = None,
              weight_power: float = 1.0, va_weight: float = 1.0, expression_weight: float = 1.0,
              au_weight: float = 1.0, label_smoothing: float = 0.0) -> Task:
    """The task called `name` for a model with `heads` (head name -> outputs).

    "combined" trains every head the model has among va, expression and au (two at least).
    `class_counts` (training frames per class) weight the expression loss and `au_counts`
    ({"active": [...], "known": [...]} training frames per unit) the action units', both with
    `weight_power` (see `inverse_frequency_weights`, `positive_weights`); the combined task
    weighs its heads' losses by `va_weight`, `expression_weight` and `au_weight`.
    `label_smoothing` softens the expression targets (`F.cross_entropy`'s).
    """
    heads = heads or {}
    if name not in TASKS:
        raise AffectTrackError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}")
    # The single-head tasks are named after their head.
    trained = [head for head in ("va", "expression", "au") if head in heads]
    if (len(trained) < 2) if name == "combined" else (name not in heads):
        wanted = ("two of the 'va', 'expression' and 'au' heads" if name == "combined"
                  else f"a {name!r} head")
        raise AffectTrackError(f"task {name!r} needs a model with {wanted}; this model has "
                               f"{', '.join(heads) or 'none'}")
    va = VATask(loss) if "va" in heads else None
    expression = None
    if "expression" in heads:
        weights = (None if class_counts is None
                   else inverse_frequency_weights(class_counts, heads["expression"],
                                                  weight_power))
        expression = ExpressionTask(heads["expression"], class_weights=weights,
                                    label_smoothing=label_smoothing)
    if name != "combined":
        return va if name == "va" else expression  # type: ignore[return-value]
    au = None
    if "au" in heads:
        au = ActionUnitTask(heads["au"], pos_weights=None if au_counts is None else
                            positive_weights(au_counts["active"], au_counts["known"],
                                             weight_power))
    return CombinedTask(va, expression, au, va_weight, expression_weight, au_weight)
