"""Training the sequence model on frame features, and predicting whole videos with it.

Training sees windows of `window` consecutive frames that all have a face and a label (DESIGN:
no gaps). many_to_many scores every step of a window; many_to_one (the public code) scores only
the frame right after the window. Adam at 1e-3 is the default here: it trains the GRU within a
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
from .tasks import VATask
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


@dataclass
class SequenceTrainConfig(RunConfig):
    """Settings of one sequence-model training run."""

    model: str = "gru3"
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
                 input_dropout: float = 0.3, input_dim: int = 300) -> None:
        if target not in TARGETS:
            raise AffectTrackError(f"unknown sequence target {target!r}; expected one of "
                                   f"{', '.join(TARGETS)}")
        super().__init__(VATask(loss), optimizer=optimizer, lr=lr, momentum=momentum,
                         weight_decay=weight_decay, keras_decay=keras_decay,
                         warmup_steps=warmup_steps)
        self.save_hyperparameters()
        self.model = create_sequence_model(model, input_dim=input_dim,
                                           input_dropout=input_dropout)
        self.many_to_one = target == "many_to_one"

    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out[:, -1] if self.many_to_one else out


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
    datamodule, summary = _sequence_data(face_store, feature_store, config)
    input_dim = feature_store.features.shape[1]
    module = SequenceModule(config.model, config.target, config.loss, config.optimizer, config.lr,
                            config.momentum, config.weight_decay, config.keras_decay,
                            config.warmup_steps, config.input_dropout, input_dim)
    module.model.standardize_inputs(*_train_feature_statistics(face_store, feature_store))
    trainer = build_trainer(out_dir, monitor=module.task.monitor, config=config,
                            precision=precision, progress=progress)
    write_run_info(out_dir, stage="sequence", config=config, seed=config.seed,
                   data_summary={**summary, "precision_used": precision})

    def export(checkpoint: Path) -> Path:
        trained = SequenceModule.load_from_checkpoint(checkpoint, map_location="cpu")
        return save_model_file(out_dir / MODEL_FILE, trained.model, kind="sequence",
                               name=config.model, overrides={"input_dim": input_dim},
                               meta={"target": config.target, "window": config.window,
                                     "checkpoint": str(checkpoint)})

    return fit_and_finish(trainer, module, datamodule, out_dir, export)


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
        table = SplitTable.build(face_store.index, split)
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
    """Per-frame valence/arousal (video, frame, valence, arousal) for every frame with a face.

    One pass of the model over each gap-free run of frames with a face (labels are not needed).
    A many_to_many model's output at step t is frame t's prediction. A many_to_one model was trained
    to predict the frame after its inputs, so its output at step t is its prediction for frame t+1:
    outputs are shifted by one, and the first frame of a run, with no earlier frame to predict it
    from, takes the output after seeing itself. Frames without a face get no row; fill them with
    `affecttrack.data.sequences.fill_missing`.
    """
    feature_store.require_rows(face_store.faces.shape[0], face_store.path)
    model, info = load_model_file(model_path, "sequence")
    many_to_one = info["meta"].get("target") == "many_to_one"
    table = SplitTable.build(face_store.index, split)
    parts: list[pd.DataFrame] = []
    with torch.inference_mode():
        for start, stop in table.runs(table.has_face):
            x = torch.from_numpy(np.asarray(feature_store.features[table.rows[start:stop]]))
            out = model(x.unsqueeze(0))[0].float().numpy()
            if many_to_one:
                out = np.concatenate([out[:1], out[:-1]])
            parts.append(pd.DataFrame({"video": table.videos[start:stop],
                                       "frame": table.frames[start:stop],
                                       "valence": out[:, 0], "arousal": out[:, 1]}))
    if not parts:
        return pd.DataFrame({"video": pd.Series(dtype=object), "frame": pd.Series(dtype=np.int64),
                             "valence": pd.Series(dtype=np.float32),
                             "arousal": pd.Series(dtype=np.float32)})
    return pd.concat(parts, ignore_index=True)
