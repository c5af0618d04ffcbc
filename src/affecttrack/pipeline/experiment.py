"""A valence/arousal experiment from an Aff-Wild2-layout tree to the paper's Table III.

Stages run in data-flow order, each in its own folder under the run directory; a stage whose
outputs are complete is reused, so an interrupted experiment resumes where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from ..data.store import FaceStore, prepare_affwild2
from ..evaluation.report import write_evaluation
from ..evaluation.smoothing import moving_average
from ..features.extract import extract_features
from ..runinfo import write_json_atomic
from ..training.frame import FrameTrainConfig, train_frame_model
from ..training.sequence import SequenceTrainConfig, predict_sequences, train_sequence_model


@dataclass
class EvaluationConfig:
    """How predictions are compared: the split, and the smoothing baseline's window in frames."""

    split: str = "val"
    smoothing_window: int = 15


@dataclass
class VAExperimentConfig:
    """Every stage's settings of one valence/arousal experiment."""

    frame: FrameTrainConfig = field(default_factory=FrameTrainConfig)
    sequence: SequenceTrainConfig = field(default_factory=SequenceTrainConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)


class StageTimer:
    """Wall time per stage, printed as it goes and saved with the run."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.console.rule(f"[bold]{name}")
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 1)
        self.console.print(f"[dim]{name}: {self.seconds[name]:.1f} s[/dim]")


def run_va_experiment(root: Path, out_dir: Path, config: VAExperimentConfig,
                      console: Console | None = None,
                      timer: StageTimer | None = None) -> dict[str, Any]:
    """prepare -> frame model -> features -> sequence model -> evaluation; returns the metrics."""
    console = console or Console()
    timer = timer or StageTimer(console)
    out_dir = Path(out_dir)
    with timer.stage("prepare: face store"):
        prepare_affwild2(root, out_dir / "store")
        store = FaceStore.open(out_dir / "store")
    with timer.stage("frame model"):
        frame = train_frame_model(store, out_dir / "frame", config.frame)
    with timer.stage("features"):
        features = extract_features(store, frame.model_path, out_dir / "features")
    with timer.stage("sequence model"):
        sequence = train_sequence_model(store, features, out_dir / "sequence", config.sequence)
    with timer.stage("evaluate"):
        metrics = evaluate_va(store, features, sequence.model_path, out_dir, config.evaluation)
    write_json_atomic(out_dir / "timings.json", timer.seconds)
    return metrics


def evaluate_va(store: FaceStore, features: Any, sequence_model: Path, out_dir: Path,
              config: EvaluationConfig) -> dict[str, Any]:
    """Frame model, frame model smoothed, and frame + sequence model on the same frames."""
    split_index = store.index[store.index["split"] == config.split]
    frame_pred = features.predictions_frame(split_index)
    predictions: dict[str, Any] = {
        "frame_model": frame_pred,
        "frame_model_smoothed": moving_average(frame_pred, window=config.smoothing_window),
        "sequence_model": predict_sequences(store, features, sequence_model, split=config.split),
    }
    return write_evaluation(out_dir, store.index, predictions, split=config.split)

