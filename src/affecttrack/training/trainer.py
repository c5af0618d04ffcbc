"""Trainer set-up shared by both stages: checkpoints, early stopping, logs, resume, results.

A training folder holds `checkpoints/best.ckpt` and `checkpoints/last.ckpt` (Lightning), a plain
model file for the later stages, TensorBoard logs (`tensorboard/`), CSV logs (one
`csv/version_<k>/metrics.csv` per session), `run.json` and, once finished, `done.json`. Calling a
training function again on the same folder returns the finished result at once, or resumes from
`last.ckpt` when the run was interrupted; a folder holding a run with a different configuration is
refused rather than silently mixed. A resumed run ends with the weights the uninterrupted one would
have had (`affecttrack.training.resume`). Checkpoints are written under a temporary name and
renamed, so a killed run keeps its previous one; an unreadable or older-format `last.ckpt` is
refused in one line, and `restart=True` (`--restart`) discards an unfinished run to start it over.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import (
    Callback,
    Checkpoint,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
)
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.plugins import TorchCheckpointIO

from affecttrack.config import SEED_MAX, check_settings, setting
from affecttrack.errors import AffectTrackError, InputError
from affecttrack.models.precision import PRECISIONS
from affecttrack.runinfo import atomic_path, to_jsonable, write_json_atomic
from affecttrack.training.optim import OPTIMIZERS, SCHEDULES
from affecttrack.training.resume import resumable_state

CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
DONE_FILE = "done.json"
# What a run writes while it trains; `restart` discards them (run.json is rewritten at the start).
UNFINISHED_OUTPUTS = (CHECKPOINT_DIR, "tensorboard", "csv")
RESTART_HINT = "start the run over with --restart (restart=True)"
SMOOTHED = "val/smoothed"   # the moving average that early stopping follows (score_smoothing)
# A moving average creeps towards a score that no longer changes by ever smaller steps: a step
# below this is no improvement, so a saturated validation score uses up the patience.
SMOOTHED_MIN_DELTA = 1e-3
# Budgets may grow between an interrupted run and its resumption; nothing else may change (early
# stopping's patience is restored from the checkpoint, so it is not among them).
RESUMABLE_CHANGES = frozenset({"max_epochs", "max_steps", "max_time_s", "num_workers"})


@dataclass
class RunConfig:
    """Optimiser, budget and trainer settings shared by the frame and the sequence stage.

    `val_check_interval`: an int validates every n steps, a float every fraction of an epoch, None
    once per epoch; `patience` counts validations. `max_time_s` is a wall-time budget; every
    budget ends with a validation so that the exported model is the best one seen.
    `schedule`: step_decay (warm-up, then `keras_decay`) or cosine (warm-up, then half a cosine
    to zero at the budget's last step; `training.optim`). `min_epochs`: early stopping waits for
    that many epochs. `score_smoothing` a in [0, 1): early stopping follows the exponential
    moving average s = a * s + (1 - a) * score of the monitored validation score instead of the
    score itself (a small validation set's score jumps from one validation to the next, and a
    single bad one would otherwise count against the patience), where a rise under
    `SMOOTHED_MIN_DELTA` is no improvement; the checkpoint kept is still the one with the best
    raw score.
    """

    optimizer: str = setting("sgd", choices=OPTIMIZERS)
    schedule: str = setting("step_decay", choices=SCHEDULES)
    lr: float = setting(0.01, minimum=0)
    momentum: float = setting(0.9, minimum=0, below=1)
    weight_decay: float = setting(0.0, minimum=0)
    keras_decay: float = setting(0.0, minimum=0)
    warmup_steps: int = setting(0, minimum=0)
    batch_size: int = setting(128, minimum=1)
    max_epochs: int = setting(100, minimum=1, also=(-1,))   # -1: no limit
    max_steps: int = setting(-1, minimum=1, also=(-1,))
    max_time_s: float | None = setting(None, above=0)
    patience: int = setting(10, minimum=0)
    min_epochs: int = setting(0, minimum=0)
    score_smoothing: float = setting(0.0, minimum=0, below=1)
    val_check_interval: int | float | None = setting(
        None, test=lambda v: v >= 1 if isinstance(v, int) else 0 < v <= 1,
        expected="an integer >= 1 (steps), a fraction of an epoch in (0, 1], or null")
    precision: str = setting("auto", choices=("auto", *PRECISIONS))
    seed: int = setting(0, minimum=0, maximum=SEED_MAX)
    num_workers: int = setting(0, minimum=0)
    accelerator: str = "auto"
    devices: int = setting(1, minimum=1, also=(-1,))   # -1: every device
    strategy: str = "auto"

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass(frozen=True)
class TrainResult:
    """Where a finished training run left its model, and how good it got on validation."""

    out_dir: Path
    checkpoint: Path
    model_path: Path
    monitor: str
    best_score: float
    global_step: int
    epochs: int          # epochs begun, the last possibly cut short by a step or time budget
    train_seconds: float

    @property
    def best_val_ccc(self) -> float:
        """Best validation mean CCC (valence/arousal tasks only)."""
        if self.monitor != "val/ccc":
            raise AffectTrackError(f"{self.out_dir}: this run monitored {self.monitor}, not CCC")
        return self.best_score

    @classmethod
    def read(cls, out: Path) -> TrainResult | None:
        """The result recorded in `out_dir/done.json`, or None while the run is unfinished."""
        path = Path(out) / DONE_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            values = {f.name: data[f.name] for f in fields(cls)}
        except (json.JSONDecodeError, KeyError) as exc:
            raise InputError(path, f"unreadable training result ({exc})") from None
        for name in ("out_dir", "checkpoint", "model_path"):
            values[name] = Path(values[name])
        if values["best_score"] is None:
            values["best_score"] = float("nan")
        return cls(**values)

    def write(self) -> None:
        data = asdict(self)
        data["best_score"] = self.best_score if math.isfinite(self.best_score) else None
        write_json_atomic(self.out_dir / DONE_FILE, data)


class ValidateAtTheEnd(Callback):
    """Validate the final weights however the step or epoch budget ends.

    Lightning validates before stopping when something sets `trainer.should_stop` (early stopping,
    the `max_time` budget) but simply ends at `max_steps`, or at `max_epochs` when validation runs
    every n steps; asking it to stop at that batch makes every budget end with a validation, so the
    best checkpoint is chosen among all the weights the run produced.
    """

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        max_epochs = trainer.max_epochs if trainer.max_epochs is not None else -1
        last_epoch = 0 < max_epochs <= trainer.current_epoch + 1
        last_batch = batch_idx + 1 >= trainer.num_training_batches
        if 0 < trainer.max_steps <= trainer.global_step or (last_epoch and last_batch):
            trainer.should_stop = True


class SmoothedScore(Callback):
    """After each validation, puts the exponential moving average of `monitor` among the
    trainer's metrics as `SMOOTHED` (logged too), for early stopping to follow.

    Listed before EarlyStopping, so that its `on_validation_end` sees this validation's average.
    Its state is saved in checkpoints: a resumed run continues the same average.
    """

    def __init__(self, monitor: str, smoothing: float) -> None:
        self.monitor, self.smoothing = monitor, smoothing
        self.average: float | None = None

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        score = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or score is None:
            return
        score = float(score)
        self.average = score if self.average is None else (
            self.smoothing * self.average + (1.0 - self.smoothing) * score)
        trainer.callback_metrics[SMOOTHED] = torch.tensor(self.average)
        for logger in trainer.loggers:
            logger.log_metrics({SMOOTHED: self.average}, step=trainer.global_step)

    def state_dict(self) -> dict[str, Any]:
        return {"average": self.average}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.average = state_dict["average"]


class SaveLast(Checkpoint):
    """Write `last.ckpt` after every validation: an interrupted run resumes from its latest state.

    Lightning 2.6's ModelCheckpoint(save_last=True) refreshes last.ckpt only when the best
    checkpoint changes. Being a Checkpoint, this callback runs after ModelCheckpoint (Lightning
    moves checkpoint callbacks last, keeping their order), so the file also records which
    checkpoint is best after the same validation.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            trainer.save_checkpoint(self.path, weights_only=False)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint files written under a temporary name and renamed: a run killed
    while saving keeps its previous checkpoint instead of a truncated one."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any,
                        storage_options: Any | None = None) -> None:
        with atomic_path(Path(path)) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)


def prepare_run(out: Path, config: RunConfig, restart: bool = False) -> Path | None:
    """The checkpoint an unfinished run in `out` resumes from (None: start afresh), checked
    before any work; with `restart` the unfinished run is discarded instead."""
    if restart:
        discard_unfinished(out)
        return None
    check_resumable(out, config)
    return resume_checkpoint(out)


def resume_checkpoint(out: Path) -> Path | None:
    """`last.ckpt` of the run in `out` if there is one, refused in one line when it cannot be
    read or predates exact resumption (resuming it would silently train on other batches)."""
    last = Path(out) / CHECKPOINT_DIR / LAST_CHECKPOINT
    if not last.is_file():
        return None
    try:
        state = torch.load(last, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch.load fails in many ways on a damaged file
        problem = ("empty" if last.stat().st_size == 0
                   else f"truncated or corrupt: {type(exc).__name__}")
        raise InputError(last, f"unreadable checkpoint ({problem}); {RESTART_HINT}") from None
    if not resumable_state(state):
        raise InputError(last, "checkpoint of an older affecttrack that did not record the data "
                               "order and random state, so it cannot resume exactly; "
                               + RESTART_HINT)
    return last


def discard_unfinished(out: Path) -> None:
    """Delete what an unfinished run in `out` has written while training; a finished one (with
    done.json) is never touched."""
    out = Path(out)
    if (out / DONE_FILE).is_file():
        return
    for name in UNFINISHED_OUTPUTS:
        shutil.rmtree(out / name, ignore_errors=True)


def discard_unfinished_runs(root: Path) -> list[Path]:
    """`discard_unfinished` for every unfinished training run below `root` (the pipelines'
    `--restart`): a folder with run.json and Lightning checkpoints but no done.json. Returns
    their folders."""
    runs = sorted({ckpt.parent.parent for ckpt in Path(root).rglob(f"{CHECKPOINT_DIR}/*.ckpt")
                   if (ckpt.parent.parent / "run.json").is_file()
                   and not (ckpt.parent.parent / DONE_FILE).is_file()})
    for run in runs:
        discard_unfinished(run)
    return runs


def check_resumable(out: Path, config: RunConfig) -> None:
    """Refuse to resume a run in `out` that was started with a different configuration.

    A setting the recorded run lacks was added to affecttrack after it started; that run behaved
    as the setting's default, so it differs only if `config` sets another value.
    """
    path = Path(out) / "run.json"
    if not path.is_file():
        return
    try:
        previous = json.loads(path.read_text()).get("config", {})
    except json.JSONDecodeError:
        raise InputError(path, "unreadable run record; delete the folder to start afresh") from None
    current = to_jsonable(config)
    defaults = to_jsonable(type(config)())
    changed = sorted(key for key in set(previous) | set(current)
                     if key not in RESUMABLE_CHANGES
                     and previous.get(key, defaults.get(key)) != current.get(key))
    if changed:
        raise AffectTrackError(f"{out} holds a run with different settings "
                               f"({', '.join(changed)}); use another folder or delete it")


def build_trainer(out: Path, *, monitor: str, config: RunConfig, precision: str,
                  progress: bool = True) -> L.Trainer:
    """A Trainer that checkpoints and stops early on `monitor` (higher is better) and logs to disk.

    An integer `val_check_interval` counts training steps across epochs (one validation every n
    steps), a float is a fraction of an epoch, None validates once per epoch. Early-stopping
    patience counts validations.
    """
    out = Path(out)
    patience, val_check_interval = config.patience, config.val_check_interval
    smoothing = ([SmoothedScore(monitor, config.score_smoothing)]
                 if config.score_smoothing > 0 else [])
    callbacks = [
        ModelCheckpoint(dirpath=out / CHECKPOINT_DIR, filename="best", monitor=monitor,
                        mode="max", save_top_k=1, auto_insert_metric_name=False,
                        save_on_train_epoch_end=False),
        SaveLast(out / CHECKPOINT_DIR / LAST_CHECKPOINT),
        *smoothing,
        # Checked after each validation, not at epoch end: patience then counts validations, and a
        # run resumed from a checkpoint taken at validation end does not trip over a missing
        # metric at its first epoch end (Lightning issues #13225, #18595).
        EarlyStopping(monitor=SMOOTHED if smoothing else monitor, mode="max", patience=patience,
                      min_delta=SMOOTHED_MIN_DELTA if smoothing else 0.0,
                      check_on_train_epoch_end=False),
        LearningRateMonitor(logging_interval="step"),
        ValidateAtTheEnd(),
    ]
    # Lightning's CSV logger deletes an existing metrics.csv, so each (resumed) session writes its
    # own csv/version_<k>/metrics.csv; TensorBoard appends event files to one folder.
    loggers = [TensorBoardLogger(out, name="tensorboard", version=""),
               CSVLogger(out, name="csv")]
    steps_interval = isinstance(val_check_interval, int)
    quiet_lightning()
    return L.Trainer(
        default_root_dir=out, accelerator=config.accelerator, devices=config.devices,
        strategy=config.strategy, precision=precision, max_epochs=config.max_epochs,
        min_epochs=config.min_epochs or None,
        max_steps=config.max_steps,
        max_time=timedelta(seconds=config.max_time_s) if config.max_time_s else None,
        val_check_interval=val_check_interval,
        check_val_every_n_epoch=None if steps_interval else 1,
        callbacks=callbacks, logger=loggers, log_every_n_steps=10,
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=progress, enable_model_summary=False)


def quiet_lightning() -> None:
    """Keep a run's console to its progress and results: no accelerator banners, tips, or
    deprecation notices from Lightning's internals that a user can do nothing about."""
    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


def fit_and_finish(trainer: L.Trainer, module: L.LightningModule, datamodule: L.LightningDataModule,
                   out_dir: Path, export: Callable[[Path], Path],
                   resume: Path | None = None) -> TrainResult:
    """Fit (resuming from `resume`, see `prepare_run`), export the best model, write done.json.

    `export(checkpoint)` writes the plain model file from a Lightning checkpoint. Should no
    validation have produced a score, the last weights are exported with a NaN score; should
    none have produced a finite one, the weights diverged and nothing is exported.
    """
    out_dir = Path(out_dir)
    last = out_dir / CHECKPOINT_DIR / LAST_CHECKPOINT
    start = time.perf_counter()
    with warnings.catch_warnings():
        # Not actionable here: num_workers=0 is a deliberate choice on small CPUs, the checkpoint
        # folder is meant to exist when resuming, and tiny datasets have fewer batches than the
        # logging interval.
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*exists and is not empty.*")
        warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    seconds = time.perf_counter() - start
    if not last.is_file():
        trainer.save_checkpoint(last, weights_only=False)
    # Read the outcome from the checkpoint rather than the Trainer: with ddp_spawn the Trainer in
    # this process never sees the step count or the best score.
    state = torch.load(last, map_location="cpu", weights_only=True)
    best = next(value for key, value in state["callbacks"].items()
                if key.startswith("ModelCheckpoint"))
    checkpoint = Path(best["best_model_path"]) if best["best_model_path"] else last
    score = best["best_model_score"]
    if score is not None and not math.isfinite(float(score)):
        raise AffectTrackError(f"{out_dir}: the best validation {best['monitor']} is {float(score)}"
                               ": the weights diverged, so no model was written; lower lr and "
                               + RESTART_HINT)
    model_path = export(checkpoint) if trainer.is_global_zero else Path()
    result = TrainResult(out_dir=out_dir, checkpoint=checkpoint, model_path=model_path,
                         monitor=str(best["monitor"]),
                         best_score=float(score) if score is not None else float("nan"),
                         global_step=int(state["global_step"]), epochs=int(state["epoch"]) + 1,
                         train_seconds=round(seconds, 1))
    if trainer.is_global_zero:
        result.write()
    return result
