"""Training the frame CNN on single faces (valence/arousal regression or expression classes).

The defaults are the paper's: SGD with momentum 0.9 at lr 0.01 with the public code's Keras decay,
batch 128, up to 100 epochs with early stopping, CCC loss, balanced subset 3, augmentation. On a
small CPU budget SGD at 0.01 barely starts learning within a few hundred steps (seen in the
project's prototype); Adam at 1e-3 learns much faster, which is why the demo config uses it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from rich.console import Console

from affecttrack.config import setting
from affecttrack.data.augment import AUGMENTATIONS
from affecttrack.data.balance import SUBSETS
from affecttrack.errors import AffectTrackError
from affecttrack.models.losses import VA_LOSSES
from affecttrack.models.precision import channels_last_for, choose_precision
from affecttrack.models.registry import (
    FRAME_MODELS,
    create_frame_model,
    frame_head_sizes,
    save_model_file,
)
from affecttrack.models.transfer import (
    WeightSource,
    initialise_from,
    read_weight_source,
)
from affecttrack.runinfo import write_run_info
from affecttrack.training.calibration import calibrate_frame_model, describe_calibration
from affecttrack.training.frame_data import (
    FrameDataModule,
    FrameSet,
    action_unit_counts,
    balanced,
    balanced_classes,
    capped,
    expression_targets,
    frame_set,
    labelled_frames,
)
from affecttrack.training.module import TaskModule
from affecttrack.training.tasks import (
    TASKS,
    CombinedTask,
    ExpressionTask,
    Task,
    make_task,
)
from affecttrack.training.trainer import (
    RunConfig,
    TrainResult,
    build_trainer,
    fit_and_finish,
    prepare_run,
)

if TYPE_CHECKING:
    from affecttrack.data.store import FaceStore

MODEL_FILE = "frame_model.pt"
# class_balance -> power of the inverse-frequency loss weights (tasks.inverse_frequency_weights).
WEIGHT_POWERS = {"weights": 1.0, "sqrt_weights": 0.5}
CLASS_BALANCES = ("none", "downsample", *WEIGHT_POWERS)


@dataclass
class FrameTrainConfig(RunConfig):
    """Settings of one frame-model training run (see the module docstring for the defaults).

    `task`: va, expression, or combined (every head the model has among valence/arousal,
    expression and action units, masked losses weighted by `va_weight`, `expression_weight` and
    `au_weight`; needs a model with two heads at least, such as cnn_va_expr7 or
    cnn_va_expr7_au8, whose action units are the store's).
    `balance` (none, subset1, subset2, subset3) balances valence/arousal bins (va and combined);
    `class_balance` the classes (expression and combined): none, downsample (the paper's remedy:
    every class cut to the rarest one's size), weights (inverse-frequency weights in the loss) or
    sqrt_weights (their square root, softer on very skewed data); the weights options also weigh
    each action unit's active frames by its inactive/active ratio (or its square root).
    `augment` switches training augmentation on, `augmentation` picks it: paper (the paper's
    affine warps, flip, brightness) or strong (`data.augment`: the recommended recipes').
    `label_smoothing` in [0, 1) softens the expression targets: on small, noisily labelled data
    a network otherwise drives its logits towards certainty on every training face.
    `val_max_frames` caps validation to a fixed, seeded random subset of frames.
    `calibrate` (expression and combined) divides the exported model's expression head by the
    temperature that fits its validation faces best (`training.calibration`): calibrated
    probabilities, the same predicted classes.
    """

    model: str = setting("cnn_va", choices=FRAME_MODELS)
    task: str = setting("va", choices=TASKS)
    loss: str = setting("ccc", choices=VA_LOSSES)
    balance: str = setting("subset3", choices=SUBSETS)
    class_balance: str = setting("none", choices=CLASS_BALANCES)
    augment: bool = True
    augmentation: str = setting("paper", choices=AUGMENTATIONS)
    label_smoothing: float = setting(0.0, minimum=0, below=1)
    val_max_frames: int | None = setting(None, minimum=1)
    va_weight: float = setting(1.0, minimum=0)
    expression_weight: float = setting(1.0, minimum=0)
    au_weight: float = setting(1.0, minimum=0)
    # A frame model file or bundle whose weights start a fresh run (`models.transfer`), or
    # "default", the expression model shipped in the package: the trunk must be this model's
    # architecture; a head of another size or classes keeps its fresh start.
    init_from: str | None = None
    calibrate: bool = False
    optimizer: str = "sgd"
    lr: float = 0.01
    weight_decay: float = 1e-4
    keras_decay: float = 1e-5
    batch_size: int = 128

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.class_balance != "none" and self.task == "va":
            raise AffectTrackError(f"class_balance {self.class_balance!r} applies to the "
                                   "expression and combined tasks only; use balance for "
                                   "valence/arousal")
        if self.calibrate and self.task == "va":
            raise AffectTrackError("calibrate applies to the expression and combined tasks "
                                   "only: it rescales the expression head's probabilities")


class FrameModule(TaskModule):
    """The frame CNN and its task; channels-last inputs when the run uses bf16."""

    def __init__(self, model: str = "cnn_va", task: str = "va", loss: str = "ccc",
                 optimizer: str = "sgd", lr: float = 0.01, momentum: float = 0.9,
                 weight_decay: float = 1e-4, keras_decay: float = 1e-5,
                 warmup_steps: int = 0, channels_last: bool = False,
                 class_counts: list[int] | None = None,
                 au_counts: dict[str, list[int]] | None = None, weight_power: float = 1.0,
                 va_weight: float = 1.0, expression_weight: float = 1.0,
                 au_weight: float = 1.0, label_smoothing: float = 0.0,
                 schedule: str = "step_decay") -> None:
        network = create_frame_model(model)
        super().__init__(make_task(task, loss=loss, heads=network.head_sizes,
                                   class_counts=class_counts, au_counts=au_counts,
                                   weight_power=weight_power, va_weight=va_weight,
                                   expression_weight=expression_weight, au_weight=au_weight,
                                   label_smoothing=label_smoothing),
                         optimizer=optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay,
                         keras_decay=keras_decay, warmup_steps=warmup_steps, schedule=schedule)
        self.save_hyperparameters()
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = network.to(memory_format=self.memory_format)

    def outputs(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        return self.task.select(self.model(x.contiguous(memory_format=self.memory_format)))


def train_frame_model(store: FaceStore, out: Path, config: FrameTrainConfig | None = None,
                      progress: bool = True, *, train_frames: pd.DataFrame | None = None,
                      val_frames: pd.DataFrame | None = None,
                      restart: bool = False) -> TrainResult:
    """Train (or resume, or return the finished) frame model in `out`.

    Training and validation frames come from the store's `split` column ("train", "val") unless
    `train_frames` and `val_frames` (rows of `store.index`, e.g. from a subject-independent
    protocol) are given. `restart` discards an unfinished run in `out` and starts it over.
    """
    config = config or FrameTrainConfig()
    out = Path(out)
    finished = TrainResult.read(out)
    if finished is not None:
        return finished
    resume = prepare_run(out, config, restart)
    source = _weight_source(config, resume)
    precision = choose_precision(config.precision)
    L.seed_everything(config.seed, workers=True, verbose=False)
    datamodule, summary = _frame_data(store, config, train_frames, val_frames)
    weighted = config.class_balance in WEIGHT_POWERS
    class_counts = summary["train_class_counts"] if weighted else None
    au_counts = summary.get("train_au_counts") if weighted else None
    module = FrameModule(config.model, config.task, config.loss, config.optimizer, config.lr,
                         config.momentum, config.weight_decay, config.keras_decay,
                         config.warmup_steps, channels_last=channels_last_for(precision),
                         class_counts=class_counts, au_counts=au_counts,
                         weight_power=WEIGHT_POWERS.get(config.class_balance, 1.0),
                         va_weight=config.va_weight, expression_weight=config.expression_weight,
                         au_weight=config.au_weight, label_smoothing=config.label_smoothing,
                         schedule=config.schedule)
    _check_classes(store, config, datamodule, module.task)
    started = _start_weights(module, source, config, store, summary, out)
    trainer = build_trainer(out, monitor=module.task.monitor, config=config,
                            precision=precision, progress=progress)
    write_run_info(out, stage="frame", config=config, seed=config.seed,
                   data_summary={**summary, "precision_used": precision, **started})

    def export(checkpoint: Path) -> Path:
        trained = FrameModule.load_from_checkpoint(checkpoint, map_location="cpu")
        path = save_model_file(out / MODEL_FILE, trained.model, kind="frame",
                               name=config.model, meta={
                                   "task": config.task, "checkpoint": str(checkpoint),
                                   **({"expressions": list(store.expression_names)}
                                      if config.task != "va" else {}),
                                   **({"action_units": summary["action_units"]}
                                      if "action_units" in summary else {})})
        if config.calibrate:
            # The faces early stopping judged on, which the weights never trained on.
            val = datamodule.val_set.frames
            record = calibrate_frame_model(path, store, val.rows, expression_targets(val))
            Console().print(describe_calibration(record), highlight=False)
        return path

    return fit_and_finish(trainer, module, datamodule, out, export, resume)


def _weight_source(config: FrameTrainConfig, resume: Path | None) -> WeightSource | None:
    """The `init_from` network, read (and a bad file refused) before any work; None without
    one, or when the run resumes: its checkpoint holds the weights then."""
    if config.init_from is None or resume is not None:
        return None
    return read_weight_source(config.init_from)


def _start_weights(module: FrameModule, source: WeightSource | None, config: FrameTrainConfig,
                   store: FaceStore, summary: dict[str, Any], out: Path) -> dict[str, Any]:
    """Copy `source` into a fresh run's network and say once what was copied; run.json's record
    of it (a resumed run keeps the record its start wrote)."""
    if source is None:
        return _recorded_start(out) if config.init_from is not None else {}
    report = initialise_from(module.model, source, name=config.model, classes={
        "expression": store.expression_names, "au": summary.get("action_units", ())})
    Console().print(report.describe(), highlight=False, soft_wrap=True)
    return {"init_from": report.record()}


def _recorded_start(out: Path) -> dict[str, Any]:
    """The `init_from` record of the run that `out` resumes."""
    recorded = json.loads((out / "run.json").read_text()).get("data", {}).get("init_from")
    return {"init_from": recorded} if recorded is not None else {}


def _frame_data(store: FaceStore, config: FrameTrainConfig, train_frames: pd.DataFrame | None,
                val_frames: pd.DataFrame | None) -> tuple[FrameDataModule, dict[str, Any]]:
    """Train/val frames per the config, and the counts that run.json records."""
    if (train_frames is None) != (val_frames is None):
        raise AffectTrackError("train_frame_model: give both train_frames and val_frames, or "
                               "neither")
    explicit = train_frames is not None and val_frames is not None
    units = _action_units(store, config)
    if explicit:
        train = frame_set(train_frames, config.task, units)
        val = frame_set(val_frames, config.task, units)
    else:
        train = labelled_frames(store.index, "train", config.task, units)
        val = labelled_frames(store.index, "val", config.task, units)
    used = _balanced_training(train, config)
    if len(train) and not len(used):
        raise AffectTrackError(f"{store.path}: balancing ({config.balance}) kept none of the "
                               f"{len(train)} training frames; use balance 'none' on data this "
                               "small")
    val_used = capped(val, config.val_max_frames, config.seed)
    summary = {"store": str(store.path), "task": config.task,
               "frames_from": "given frame tables" if explicit else "split column",
               "balance": config.balance if config.task == "va" else config.class_balance,
               "train_frames": len(train), "train_frames_balanced": len(used),
               "val_frames": len(val), "val_frames_used": len(val_used)}
    if config.task != "va":
        classes = expression_targets(used)
        summary["train_class_counts"] = np.bincount(classes[classes >= 0]).tolist()
    if units:
        summary["action_units"] = list(units)
        summary["train_au_counts"] = action_unit_counts(used, len(units))
    datamodule = FrameDataModule(Path(store.path) / "faces.npy", used, val_used,
                                 batch_size=config.batch_size,
                                 augment=config.augmentation if config.augment else None,
                                 num_workers=config.num_workers)
    return datamodule, summary


def _action_units(store: FaceStore, config: FrameTrainConfig) -> tuple[str, ...]:
    """The store's action units when the run trains an action-unit head (refused when the head
    and the store disagree on how many there are), else none."""
    sizes = frame_head_sizes(config.model)
    if config.task != "combined" or "au" not in sizes:
        return ()
    units = store.action_units
    if sizes["au"] != len(units):
        found = f"{len(units)} ({', '.join(units)})" if units else "none"
        raise AffectTrackError(f"{store.path}: model {config.model!r} has {sizes['au']} "
                               f"action-unit outputs but the store annotates {found}; pick a "
                               "model with one output per action unit of the store")
    return units


def _balanced_training(train: FrameSet, config: FrameTrainConfig) -> FrameSet:
    """The training frames after the task's balancing: valence/arousal bins and/or classes."""
    if config.task != "expression":
        train = balanced(train, config.balance, config.seed)
    if config.task != "va" and config.class_balance == "downsample":
        train = balanced_classes(train, config.seed)
    return train


def _check_classes(store: FaceStore, config: FrameTrainConfig, datamodule: FrameDataModule,
                   task: Task) -> None:
    """Refuse expression labels the model has no class for, before training fails on them."""
    expression = task.expression if isinstance(task, CombinedTask) else task
    if not isinstance(expression, ExpressionTask):
        return
    labels = np.concatenate([expression_targets(datamodule.train_set.frames),
                             expression_targets(datamodule.val_set.frames)])
    if labels.max(initial=-1) >= expression.num_classes:
        raise AffectTrackError(f"{store.path}: expression labels go up to {labels.max()} but "
                               f"model {config.model!r} has {expression.num_classes} classes; "
                               "pick a model with one class per expression of the store")
