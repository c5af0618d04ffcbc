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

from affecttrack.config import check_settings, setting
from affecttrack.data.sources.registry import prepare
from affecttrack.data.store import SPLITS, FaceStore, describe_store
from affecttrack.evaluation.report import write_evaluation
from affecttrack.features.extract import extract_features
from affecttrack.features.store import FeatureStore
from affecttrack.predictions.sequence import predict_sequences
from affecttrack.predictions.smoothing import moving_average
from affecttrack.runinfo import write_json_atomic, write_run_info
from affecttrack.training.frame import FrameTrainConfig, train_frame_model
from affecttrack.training.frame_data import balanced, labelled_frames
from affecttrack.training.sequence import (
    SequenceTrainConfig,
    train_sequence_model,
)


@dataclass
class EvaluationConfig:
    """How predictions are compared: the split, and the smoothing baseline's window in frames."""

    split: str = setting("val", choices=SPLITS)
    smoothing_window: int = setting(15, minimum=1)

    def __post_init__(self) -> None:
        check_settings(self)


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


def run_va_experiment(root: Path, out: Path, config: VAExperimentConfig,
                      console: Console | None = None,
                      timer: StageTimer | None = None) -> dict[str, Any]:
    """prepare -> frame model -> features -> sequence model -> evaluation; returns the metrics."""
    console = console or Console()
    timer = timer or StageTimer(console)
    out = Path(out)
    with timer.stage("prepare: face store"):
        for line in describe_store(prepare("affwild2", root, out / "store")):
            console.print(line, highlight=False)
        store = FaceStore.open(out / "store")
    with timer.stage("frame model"):
        frame = train_frame_model(store, out / "frame", config.frame)
    with timer.stage("features"):
        features = extract_features(store, frame.model_path, out / "features")
    with timer.stage("sequence model"):
        sequence = train_sequence_model(store, features, out / "sequence", config.sequence)
    with timer.stage("evaluate"):
        metrics = evaluate_va(store, features, sequence.model_path, out, config.evaluation,
                              balancing=(config.frame.balance, config.frame.seed))
    write_json_atomic(out / "timings.json", timer.seconds)
    return metrics


def evaluate_va(store: FaceStore, features: FeatureStore, model: Path, out: Path,
                config: EvaluationConfig,
                balancing: tuple[str, int] | None = None) -> dict[str, Any]:
    """Frame model, frame model smoothed, and frame + sequence model on the same frames.

    `balancing` (subset, seed) as the frame model was trained with adds the paper's Fig. 3: the
    training frames' valence/arousal density before and after balancing.
    """
    split_index = store.index[store.index["split"] == config.split]
    frame_pred = features.predictions_frame(split_index)
    predictions = {
        "frame_model": frame_pred,
        "frame_model_smoothed": moving_average(frame_pred, window=config.smoothing_window),
        "sequence_model": predict_sequences(store, features, model, split=config.split),
    }
    density = _balance_before_after(store, *balancing) if balancing else None
    metrics = write_evaluation(out, store.index, predictions, balance_before_after=density,
                               split=config.split)
    write_run_info(out / "evaluation", stage="evaluate", config=config, seed=None,
                   data_summary={"store": str(store.path), "features": str(features.path),
                                 "sequence_model": str(model)})
    return metrics


def _balance_before_after(store: FaceStore, subset: str, seed: int) -> tuple[Any, Any]:
    """Training frames' (valence, arousal) before and after the frame model's balancing."""
    train = labelled_frames(store.index, "train", "va")
    kept = balanced(train, subset, seed)
    return (train.targets[:, 0], train.targets[:, 1]), (kept.targets[:, 0], kept.targets[:, 1])
