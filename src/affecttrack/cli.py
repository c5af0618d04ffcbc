"""The `affecttrack` command: a thin layer over the Python API, one sub-command per stage."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from .errors import AffectTrackError

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Valence, arousal and expression of faces in videos: data, training, "
                       "evaluation.")
prepare_app = typer.Typer(no_args_is_help=True, help="Build a face store from a dataset.")
train_app = typer.Typer(no_args_is_help=True, help="Train the frame or the sequence model.")
app.add_typer(prepare_app, name="prepare")
app.add_typer(train_app, name="train")
console = Console()

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="YAML experiment config.")]
SetOpt = Annotated[Optional[list[str]], typer.Option(
    "--set", help="Override a config value: section.field=value (repeatable).")]


def _sections(config: Optional[Path], overrides: Optional[list[str]]) -> dict[str, Any]:
    from .config import load_sections
    return load_sections(config, overrides)


@app.command()
def synth(out: Annotated[Path, typer.Argument(help="Folder to write the generated dataset to.")],
          config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Generate synthetic face videos in the Aff-Wild2 layout (plus full-frame videos)."""
    from .config import configure
    from .data.sources.synthetic import SynthConfig, synthesize
    cfg = configure(SynthConfig(), _sections(config, set_).get("synth"), section="synth")
    summary = synthesize(out, cfg)
    console.print(summary)


@prepare_app.command("affwild2")
def prepare_affwild2_cmd(
        root: Annotated[Path, typer.Option(help="Aff-Wild2 root (cropped_aligned/, annotations/).")],
        out: Annotated[Path, typer.Option(help="Face store folder to write.")]) -> None:
    """Aff-Wild2 / ABAW tree -> face store (96x96 grey crops + index). Resumable."""
    from .data.store import describe_store, prepare_affwild2
    for line in describe_store(prepare_affwild2(root, out)):
        console.print(line, highlight=False)


@train_app.command("frame")
def train_frame(store: Annotated[Path, typer.Option(help="Face store folder.")],
                out: Annotated[Path, typer.Option(help="Run folder to write.")],
                config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Train the paper's CNN on single face frames (config section `frame`)."""
    from .config import configure
    from .data.store import FaceStore
    from .training.frame import FrameTrainConfig, train_frame_model
    cfg = configure(FrameTrainConfig(), _sections(config, set_).get("frame"), section="frame")
    result = train_frame_model(FaceStore.open(store), out, cfg)
    console.print(f"frame model: {result.model_path} (best validation CCC {result.best_score:.3f})")


@app.command()
def extract(store: Annotated[Path, typer.Option(help="Face store folder.")],
            model: Annotated[Path, typer.Option(help="Frame model file (frame_model.pt).")],
            out: Annotated[Path, typer.Option(help="Feature store folder to write.")],
            batch_size: int = 256) -> None:
    """Extract the 300-d feature of every stored face. Resumable."""
    from .data.store import FaceStore
    from .features.extract import extract_features
    extract_features(FaceStore.open(store), model, out, batch_size=batch_size)


@train_app.command("sequence")
def train_sequence(store: Annotated[Path, typer.Option(help="Face store folder.")],
                   features: Annotated[Path, typer.Option(help="Feature store folder.")],
                   out: Annotated[Path, typer.Option(help="Run folder to write.")],
                   config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Train the recurrent model on sequences of frame features (config section `sequence`)."""
    from .config import configure
    from .data.store import FaceStore
    from .features.store import FeatureStore
    from .training.sequence import SequenceTrainConfig, train_sequence_model
    cfg = configure(SequenceTrainConfig(), _sections(config, set_).get("sequence"),
                    section="sequence")
    result = train_sequence_model(FaceStore.open(store), FeatureStore.open(features), out, cfg)
    console.print(f"sequence model: {result.model_path} "
                  f"(best validation CCC {result.best_score:.3f})")


@app.command()
def evaluate(store: Annotated[Path, typer.Option(help="Face store folder.")],
             features: Annotated[Path, typer.Option(help="Feature store folder.")],
             sequence_model: Annotated[Path, typer.Option(help="sequence_model.pt")],
             out: Annotated[Path, typer.Option(help="Folder for metrics.json, table.md, plots.")],
             split: str = "val", smoothing_window: int = 15) -> None:
    """CCC, PCC and RMSE of the frame model, its smoothed output and the sequence model."""
    from .data.store import FaceStore
    from .evaluation.tables import metrics_table
    from .features.store import FeatureStore
    from .pipeline.experiment import EvaluationConfig, evaluate_va
    metrics = evaluate_va(FaceStore.open(store), FeatureStore.open(features), sequence_model, out,
                          EvaluationConfig(split=split, smoothing_window=smoothing_window))
    console.print(metrics_table(metrics))


@app.command()
def demo(out: Annotated[Path, typer.Option(help="Folder for everything the demo writes.")]
         = Path("affecttrack-demo"),
         config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Generate data, train CNN + GRU, evaluate: the whole method in minutes on a CPU."""
    from .config import configure
    from .evaluation.tables import metrics_table
    from .pipeline.demo import DemoConfig, run_demo
    sections = _sections(config, set_)
    defaults = DemoConfig()
    cfg = DemoConfig(**{name: configure(getattr(defaults, name), sections.get(name), section=name)
                        for name in ("synth", "frame", "sequence", "evaluation")})
    metrics = run_demo(out, cfg, console=console)
    console.print(metrics_table(metrics))


@app.command()
def models() -> None:
    """List the named model configurations."""
    from .models.registry import list_models
    for name, description in list_models().items():
        console.print(f"{name:12s} {description}")


def main() -> None:
    """Entry point: user errors are one line on stderr and exit status 2, never a traceback."""
    try:
        app()
    except AffectTrackError as exc:
        print(f"affecttrack: error: {exc}", file=sys.stderr)
        sys.exit(2)
