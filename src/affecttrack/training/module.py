"""The training step logic shared by the frame and the sequence model.

Subclasses only say how a batch's inputs become the task's outputs; the loss, validation metric
(accumulated over the whole validation split, as the challenges score it), logging and optimiser are
the same for both stages.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import lightning as L
import torch

from affecttrack.errors import AffectTrackError
from affecttrack.training.batching import Batch
from affecttrack.training.optim import OPTIMIZERS, optimizer_config
from affecttrack.training.tasks import Task
from affecttrack.training.trainer import RESTART_HINT


class TaskModule(L.LightningModule):
    """A model trained on one task; subclasses build `self.model` after `super().__init__`."""

    def __init__(self, task: Task, *, optimizer: str, lr: float, momentum: float,
                 weight_decay: float, keras_decay: float, warmup_steps: int = 0,
                 schedule: str = "step_decay") -> None:
        super().__init__()
        if optimizer not in OPTIMIZERS:   # fail before training starts, not when fit begins
            raise AffectTrackError(f"unknown optimizer {optimizer!r}; expected one of "
                                   f"{', '.join(OPTIMIZERS)}")
        self.task = task
        self.metric = task.make_metric()
        self._optim = {"name": optimizer, "lr": lr, "momentum": momentum,
                       "weight_decay": weight_decay, "decay": keras_decay,
                       "warmup_steps": warmup_steps, "schedule": schedule}

    @abstractmethod
    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        """The task head's output for a batch of inputs, shaped like the batch's targets."""

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = self.task.loss(self.outputs(x), y)
        self._check_finite(loss)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True,
                 batch_size=len(y), sync_dist=True)
        return loss

    def _check_finite(self, loss: torch.Tensor) -> None:
        """Stop at the first non-finite loss: the weights are lost from there on, and a run that
        went on would export (and bundle) a broken model."""
        if not torch.isfinite(loss):
            raise AffectTrackError(
                f"{self.trainer.default_root_dir}: the training loss is {loss.item()} at step "
                f"{self.global_step + 1}, so training stopped without writing a model; lower lr "
                f"(now {self._optim['lr']}) and {RESTART_HINT}")

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        x, y = batch
        output = self.outputs(x)
        self.log("val/loss", self.task.loss(output, y), on_epoch=True, batch_size=len(y),
                 sync_dist=True)
        self.task.update(self.metric, output, y)

    def on_validation_epoch_end(self) -> None:
        scores = self.task.scores(self.metric.compute())
        self.log_dict(scores, prog_bar=True, sync_dist=True)
        self.metric.reset()

    def configure_optimizers(self) -> dict[str, Any]:
        return optimizer_config(self.parameters(), self._optim["name"], lr=self._optim["lr"],
                                momentum=self._optim["momentum"],
                                weight_decay=self._optim["weight_decay"],
                                decay=self._optim["decay"],
                                warmup_steps=self._optim["warmup_steps"],
                                schedule=self._optim["schedule"],
                                total_steps=self._total_steps())

    def _total_steps(self) -> float | None:
        """The run's step budget, which only the cosine schedule needs (and only a Trainer that
        has the data attached can tell)."""
        if self._optim["schedule"] != "cosine":
            return None
        return float(self.trainer.estimated_stepping_batches)
