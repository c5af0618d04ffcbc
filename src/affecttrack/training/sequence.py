"""Training the sequence model on frame features.

Training sees windows of `window` consecutive frames that all have a face and a label (DESIGN:
no gaps). The task is valence/arousal (the paper's), or `combined`: the same heads as a combined
frame model (valence/arousal, expression, action units: those the store labels), losses masked
per frame where a label is missing. many_to_many scores every step of a window; many_to_one
(the public code) scores only the frame right after the window. Adam at 1e-3 is the default here: it trains the GRU within a
minute on a CPU where SGD at 0.01 would need far longer. Precision defaults to float32: CPU
autocast keeps nn.GRU/RNN/LSTM in float32 (only the small linear head would run in bf16), and on
this project's AVX512-BF16 CPU a bf16 run trained no faster than float32 within measuring noise.
Predicting with the trained model is `affecttrack.predictions.sequence.predict_sequences`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import numpy as np
import torch

from affecttrack.config import setting
from affecttrack.data.sequences import TARGETS
from affecttrack.errors import AffectTrackError
from affecttrack.models.losses import VA_LOSSES
from affecttrack.models.precision import choose_precision
from affecttrack.models.registry import (
    SEQUENCE_MODELS,
    create_sequence_model,
    save_model_file,
)
from affecttrack.runinfo import write_run_info
from affecttrack.training.batching import TrainValDataModule
from affecttrack.training.module import TaskModule
from affecttrack.training.sequence_data import SequenceWindows, SplitTable
from affecttrack.training.tasks import CombinedTask, make_task
from affecttrack.training.trainer import (
    RunConfig,
    TrainResult,
    build_trainer,
    fit_and_finish,
    prepare_run,
)

if TYPE_CHECKING:
    from affecttrack.data.store import FaceStore
    from affecttrack.features.store import FeatureStore

MODEL_FILE = "sequence_model.pt"
SEQUENCE_TASKS = ("va", "combined")
SEQUENCE_HEADS = ("va", "expression", "au")


@dataclass
class SequenceTrainConfig(RunConfig):
    """Settings of one sequence-model training run.

    `task`: va (the paper's) or combined; `heads` limits a combined model to some of va,
    expression and au (default: every kind of label the store's train split has).
    """

    model: str = setting("gru3", choices=SEQUENCE_MODELS)
    task: str = setting("va", choices=SEQUENCE_TASKS)
    heads: list[str] | None = setting(None, choices=SEQUENCE_HEADS)
    window: int = setting(100, minimum=1)
    stride: int = setting(10, minimum=1)
    target: str = setting("many_to_many", choices=TARGETS)
    loss: str = setting("ccc", choices=VA_LOSSES)
    input_dropout: float = setting(0.3, minimum=0, below=1)
    optimizer: str = "adam"
    lr: float = 1e-3
    batch_size: int = 256
    precision: str = "32-true"


class SequenceModule(TaskModule):
    """A recurrent model on feature windows, scored per step or on the frame after the window."""

    def __init__(self, model: str = "gru3", target: str = "many_to_many", loss: str = "ccc",
                 optimizer: str = "adam", lr: float = 1e-3, momentum: float = 0.9,
                 weight_decay: float = 0.0, keras_decay: float = 0.0, warmup_steps: int = 0,
                 input_dropout: float = 0.3, input_dim: int = 300, task: str = "va",
                 heads: dict[str, int] | None = None, schedule: str = "step_decay") -> None:
        if target not in TARGETS:
            raise AffectTrackError(f"unknown sequence target {target!r}; expected one of "
                                   f"{', '.join(TARGETS)}")
        if task not in SEQUENCE_TASKS:
            raise AffectTrackError(f"unknown sequence task {task!r}; expected one of "
                                   f"{', '.join(SEQUENCE_TASKS)}")
        heads = heads or {"va": 2}
        super().__init__(make_task(task, loss=loss, heads=heads), optimizer=optimizer, lr=lr,
                         momentum=momentum, weight_decay=weight_decay, keras_decay=keras_decay,
                         warmup_steps=warmup_steps, schedule=schedule)
        self.save_hyperparameters()
        self.model = create_sequence_model(model, input_dim=input_dim, heads=heads,
                                           input_dropout=input_dropout)
        self.many_to_one = target == "many_to_one"
        self.combined = isinstance(self.task, CombinedTask)

    def outputs(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        out = self.model(x)
        out = out[:, -1] if self.many_to_one else out
        return self.model.split_heads(out) if self.combined else out


def train_sequence_model(store: FaceStore, features: FeatureStore, out: Path,
                         config: SequenceTrainConfig | None = None,
                         progress: bool = True, *, restart: bool = False) -> TrainResult:
    """Train (or resume, or return the finished) sequence model in `out`; `restart` discards
    an unfinished run there and starts it over."""
    config = config or SequenceTrainConfig()
    out = Path(out)
    finished = TrainResult.read(out)
    if finished is not None:
        return finished
    features.require_rows(store.faces.shape[0], store.path)
    resume = prepare_run(out, config, restart)
    precision = choose_precision(config.precision)
    L.seed_everything(config.seed, workers=True, verbose=False)
    heads = sequence_heads(store, config.task, config.heads)
    datamodule, summary = _sequence_data(store, features, config)
    input_dim = features.features.shape[1]
    module = SequenceModule(config.model, config.target, config.loss, config.optimizer, config.lr,
                            config.momentum, config.weight_decay, config.keras_decay,
                            config.warmup_steps, config.input_dropout, input_dim, config.task,
                            heads, schedule=config.schedule)
    module.model.standardize_inputs(*_train_feature_statistics(store, features))
    trainer = build_trainer(out, monitor=module.task.monitor, config=config,
                            precision=precision, progress=progress)
    write_run_info(out, stage="sequence", config=config, seed=config.seed,
                   data_summary={**summary, "precision_used": precision})

    def export(checkpoint: Path) -> Path:
        trained = SequenceModule.load_from_checkpoint(checkpoint, map_location="cpu")
        return save_model_file(out / MODEL_FILE, trained.model, kind="sequence",
                               name=config.model,
                               overrides={"input_dim": input_dim, "heads": heads},
                               meta={"target": config.target, "window": config.window,
                                     "task": config.task, "checkpoint": str(checkpoint),
                                     **({"expressions": list(store.expression_names),
                                         "action_units": list(store.action_units)}
                                        if config.task == "combined" else {})})

    return fit_and_finish(trainer, module, datamodule, out, export, resume)


def sequence_heads(store: FaceStore, task: str,
                   wanted: list[str] | None = None) -> dict[str, int]:
    """The heads a sequence model of `task` gets: valence/arousal for "va"; for "combined" each
    of valence/arousal, expression and action units (of `wanted`, default all) that the training
    split labels, in that order (a head with no label to learn from would never be scored)."""
    if task != "combined":
        return {"va": 2}
    unknown = sorted(set(wanted or ()) - set(SEQUENCE_HEADS))
    if unknown:
        raise AffectTrackError(f"unknown sequence head(s) {', '.join(unknown)}; expected va, "
                               "expression or au")
    train = store.index[store.index["split"] == "train"]
    units = list(store.action_units)
    labelled = {"va": (2, bool(train["valence"].notna().any())),
                "expression": (len(store.expression_names),
                               bool((train["expression"] >= 0).any())),
                "au": (len(units), bool(units) and bool((train[units] >= 0).to_numpy().any()))}
    heads = {name: size for name, (size, present) in labelled.items()
             if present and (wanted is None or name in wanted)}
    if len(heads) < 2:
        raise AffectTrackError(f"{store.path}: a combined sequence model needs two kinds of "
                               f"label in the train split; it has {', '.join(heads) or 'none'}")
    return heads


def _train_feature_statistics(store: FaceStore,
                              features: FeatureStore) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and standard deviation over the training split's faces."""
    table = SplitTable.build(store.index, "train")
    train = torch.from_numpy(np.asarray(features.features[table.rows[table.has_face]]))
    return train.mean(dim=0), train.std(dim=0)


def _sequence_data(store: FaceStore, features: FeatureStore,
                   config: SequenceTrainConfig) -> tuple[TrainValDataModule, dict[str, Any]]:
    """Train/val windows per the config, and the counts that run.json records."""
    windows, summary = {}, {"face_store": str(store.path),
                            "feature_store": str(features.path)}
    for split in ("train", "val"):
        table = SplitTable.build(store.index, split, combined=config.task == "combined",
                                 action_units=store.action_units)
        starts = table.training_windows(config.window, config.stride, config.target)
        if len(starts) == 0:
            raise AffectTrackError(
                f"{store.path}: the {split} split has no {config.window}-frame window of "
                "consecutive frames with a face and a label; use a shorter window")
        windows[split] = SequenceWindows(table.gather(features.features), table.targets,
                                         starts, config.window, config.target)
        summary[f"{split}_frames"] = len(table)
        summary[f"{split}_windows"] = len(starts)
    datamodule = TrainValDataModule(windows["train"], windows["val"],
                                    batch_size=config.batch_size, num_workers=config.num_workers)
    return datamodule, summary
