"""Training the sequence model on frame features, and predicting whole videos with it.

Training sees windows of `window` consecutive frames that all have a face and a label (DESIGN:
no gaps). The task is valence/arousal (the paper's), or `combined`: the same heads as a combined
frame model (valence/arousal, expression, action units: those the store labels), losses masked
per frame where a label is missing. many_to_many scores every step of a window; many_to_one
(the public code) scores only the frame right after the window. Adam at 1e-3 is the default here: it trains the GRU within a
minute on a CPU where SGD at 0.01 would need far longer. Precision defaults to float32: CPU
autocast keeps nn.GRU/RNN/LSTM in float32 (only the small linear head would run in bf16), and on
this project's AVX512-BF16 CPU a bf16 run trained no faster than float32 within measuring noise.

Prediction runs the model once over each gap-free run of frames with a face, O(T) per video,
instead of one window per frame as the public code did.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import numpy as np
import pandas as pd
import torch

from ..data.sequences import TARGETS
from ..errors import AffectTrackError
from ..models.registry import create_sequence_model, load_model_file, save_model_file
from ..runinfo import write_run_info
from .batching import TrainValDataModule
from .module import TaskModule
from .precision import choose_precision
from .sequence_data import SequenceWindows, SplitTable
from .tasks import CombinedTask, make_task
from .trainer import (
    RunConfig,
    TrainResult,
    build_trainer,
    check_resumable,
    fit_and_finish,
)

if TYPE_CHECKING:
    from ..data.store import FaceStore
    from ..features.store import FeatureStore

MODEL_FILE = "sequence_model.pt"
SEQUENCE_TASKS = ("va", "combined")


@dataclass
class SequenceTrainConfig(RunConfig):
    """Settings of one sequence-model training run.

    `task`: va (the paper's) or combined; `heads` limits a combined model to some of va,
    expression and au (default: every kind of label the store's train split has).
    """

    model: str = "gru3"
    task: str = "va"
    heads: list[str] | None = None
    window: int = 100
    stride: int = 10
    target: str = "many_to_many"
    loss: str = "ccc"
    input_dropout: float = 0.3
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
                 heads: dict[str, int] | None = None) -> None:
        if target not in TARGETS:
            raise AffectTrackError(f"unknown sequence target {target!r}; expected one of "
                                   f"{', '.join(TARGETS)}")
        if task not in SEQUENCE_TASKS:
            raise AffectTrackError(f"unknown sequence task {task!r}; expected one of "
                                   f"{', '.join(SEQUENCE_TASKS)}")
        heads = heads or {"va": 2}
        super().__init__(make_task(task, loss=loss, heads=heads), optimizer=optimizer, lr=lr,
                         momentum=momentum, weight_decay=weight_decay, keras_decay=keras_decay,
                         warmup_steps=warmup_steps)
        self.save_hyperparameters()
        self.model = create_sequence_model(model, input_dim=input_dim, heads=heads,
                                           input_dropout=input_dropout)
        self.many_to_one = target == "many_to_one"
        self.combined = isinstance(self.task, CombinedTask)

    def outputs(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        out = self.model(x)
        out = out[:, -1] if self.many_to_one else out
        return self.model.split_heads(out) if self.combined else out


def train_sequence_model(face_store: FaceStore, feature_store: FeatureStore, out_dir: Path,
                         config: SequenceTrainConfig | None = None,
                         progress: bool = True) -> TrainResult:
    """Train (or resume, or return the finished) sequence model in `out_dir`."""
    config = config or SequenceTrainConfig()
    out_dir = Path(out_dir)
    finished = TrainResult.read(out_dir)
    if finished is not None:
        return finished
    check_resumable(out_dir, config)
    feature_store.require_rows(face_store.faces.shape[0], face_store.path)
    precision = choose_precision(config.precision)
    L.seed_everything(config.seed, workers=True, verbose=False)
    heads = sequence_heads(face_store, config.task, config.heads)
    datamodule, summary = _sequence_data(face_store, feature_store, config)
    input_dim = feature_store.features.shape[1]
    module = SequenceModule(config.model, config.target, config.loss, config.optimizer, config.lr,
                            config.momentum, config.weight_decay, config.keras_decay,
                            config.warmup_steps, config.input_dropout, input_dim, config.task,
                            heads)
    module.model.standardize_inputs(*_train_feature_statistics(face_store, feature_store))
    trainer = build_trainer(out_dir, monitor=module.task.monitor, config=config,
                            precision=precision, progress=progress)
    write_run_info(out_dir, stage="sequence", config=config, seed=config.seed,
                   data_summary={**summary, "precision_used": precision})

    def export(checkpoint: Path) -> Path:
        trained = SequenceModule.load_from_checkpoint(checkpoint, map_location="cpu")
        return save_model_file(out_dir / MODEL_FILE, trained.model, kind="sequence",
                               name=config.model,
                               overrides={"input_dim": input_dim, "heads": heads},
                               meta={"target": config.target, "window": config.window,
                                     "task": config.task, "checkpoint": str(checkpoint),
                                     **({"expressions": list(face_store.expression_names),
                                         "action_units": list(face_store.action_units)}
                                        if config.task == "combined" else {})})

    return fit_and_finish(trainer, module, datamodule, out_dir, export)


def sequence_heads(face_store: FaceStore, task: str,
                   wanted: list[str] | None = None) -> dict[str, int]:
    """The heads a sequence model of `task` gets: valence/arousal for "va"; for "combined" each
    of valence/arousal, expression and action units (of `wanted`, default all) that the training
    split labels, in that order (a head with no label to learn from would never be scored)."""
    if task != "combined":
        return {"va": 2}
    unknown = sorted(set(wanted or ()) - {"va", "expression", "au"})
    if unknown:
        raise AffectTrackError(f"unknown sequence head(s) {', '.join(unknown)}; expected va, "
                               "expression or au")
    train = face_store.index[face_store.index["split"] == "train"]
    units = list(face_store.action_units)
    labelled = {"va": (2, bool(train["valence"].notna().any())),
                "expression": (len(face_store.expression_names),
                               bool((train["expression"] >= 0).any())),
                "au": (len(units), bool(units) and bool((train[units] >= 0).to_numpy().any()))}
    heads = {name: size for name, (size, present) in labelled.items()
             if present and (wanted is None or name in wanted)}
    if len(heads) < 2:
        raise AffectTrackError(f"{face_store.path}: a combined sequence model needs two kinds of "
                               f"label in the train split; it has {', '.join(heads) or 'none'}")
    return heads


def _train_feature_statistics(face_store: FaceStore,
                              feature_store: FeatureStore) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and standard deviation over the training split's faces."""
    table = SplitTable.build(face_store.index, "train")
    features = torch.from_numpy(np.asarray(feature_store.features[table.rows[table.has_face]]))
    return features.mean(dim=0), features.std(dim=0)


def _sequence_data(face_store: FaceStore, feature_store: FeatureStore,
                   config: SequenceTrainConfig) -> tuple[TrainValDataModule, dict[str, Any]]:
    """Train/val windows per the config, and the counts that run.json records."""
    windows, summary = {}, {"face_store": str(face_store.path),
                            "feature_store": str(feature_store.path)}
    for split in ("train", "val"):
        table = SplitTable.build(face_store.index, split, combined=config.task == "combined",
                                 action_units=face_store.action_units)
        starts = table.training_windows(config.window, config.stride, config.target)
        if len(starts) == 0:
            raise AffectTrackError(
                f"{face_store.path}: the {split} split has no {config.window}-frame window of "
                "consecutive frames with a face and a label; use a shorter window")
        windows[split] = SequenceWindows(table.gather(feature_store.features), table.targets,
                                         starts, config.window, config.target)
        summary[f"{split}_frames"] = len(table)
        summary[f"{split}_windows"] = len(starts)
    datamodule = TrainValDataModule(windows["train"], windows["val"],
                                    batch_size=config.batch_size, num_workers=config.num_workers)
    return datamodule, summary


def predict_sequences(face_store: FaceStore, feature_store: FeatureStore, model_path: Path,
                      split: str | None = "val") -> pd.DataFrame:
    """Per-frame predictions (video, frame, valence, arousal) for every frame with a face.

    One pass of the model over each gap-free run of frames with a face (labels are not needed).
    A many_to_many model's output at step t is frame t's prediction. A many_to_one model was trained
    to predict the frame after its inputs, so its output at step t is its prediction for frame t+1:
    outputs are shifted by one, and the first frame of a run, with no earlier frame to predict it
    from, takes the output after seeing itself. Frames without a face get no row; fill them with
    `affecttrack.data.sequences.fill_missing`. A combined model adds one probability column per
    class (its name lower-cased, as `affecttrack predict` writes them), `expression` (the most
    probable class's name) and one probability column per action unit (its name, e.g. AU12).
    """
    feature_store.require_rows(face_store.faces.shape[0], face_store.path)
    model, info = load_model_file(model_path, "sequence")
    many_to_one = info["meta"].get("target") == "many_to_one"
    units = info["meta"].get("action_units", [])
    classes = info["meta"].get("expressions", [])
    table = SplitTable.build(face_store.index, split)
    parts: list[pd.DataFrame] = [_prediction_frame(np.zeros(0, dtype=object),
                                                   np.zeros(0, dtype=np.int64),
                                                   _empty_outputs(model), classes, units)]
    with torch.inference_mode():
        for start, stop in table.runs(table.has_face):
            x = torch.from_numpy(np.asarray(feature_store.features[table.rows[start:stop]]))
            out = model(x.unsqueeze(0))[0].float()
            if many_to_one:
                out = torch.cat([out[:1], out[:-1]])
            parts.append(_prediction_frame(table.videos[start:stop], table.frames[start:stop],
                                           model.split_heads(out), classes, units))
    return pd.concat(parts, ignore_index=True)


def _empty_outputs(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: torch.zeros((0, size)) for name, size in model.head_sizes.items()}


def _prediction_frame(videos: np.ndarray, frames: np.ndarray, heads: dict[str, torch.Tensor],
                      classes: list[str], units: list[str]) -> pd.DataFrame:
    """One run's rows: valence/arousal (NaN without that head), class probabilities and the most
    probable class, AU probabilities."""
    va = heads["va"].numpy() if "va" in heads else np.full((len(frames), 2), np.nan, np.float32)
    columns: dict[str, np.ndarray] = {"video": videos, "frame": np.asarray(frames, np.int64),
                                      "valence": va[:, 0], "arousal": va[:, 1]}
    if "expression" in heads:
        probabilities = torch.softmax(heads["expression"], dim=-1).numpy()
        columns.update({name.lower(): probabilities[:, k] for k, name in enumerate(classes)})
        columns["expression"] = np.asarray(classes, dtype=object)[probabilities.argmax(axis=-1)]
    if "au" in heads:
        probabilities = torch.sigmoid(heads["au"]).numpy()
        columns.update({name: probabilities[:, k] for k, name in enumerate(units)})
    return pd.DataFrame(columns)
