"""The `affecttrack` command: a thin layer over the Python API, one sub-command per stage."""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from affecttrack.data.sources.registry import (
    DETECTOR,
    MAX_PIXELS,
    SOURCES,
    DataSource,
    SourceOption,
    prepare,
)
from affecttrack.errors import AffectTrackError

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

# The commands in the order a user meets them, in three panels of `affecttrack --help`.
COMMANDS: dict[str, tuple[str, ...]] = {
    "Use a model": ("demo", "predict", "explain", "report"),
    "Data and training": ("synth", "prepare", "train", "extract", "evaluate", "run"),
    "Tools": ("bundle", "export", "extend", "models"),
}


class _InFlowOrder(TyperGroup):
    """Lists commands as COMMANDS orders them, not in the order the code defines them."""

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return [name for names in COMMANDS.values() for name in names if name in self.commands]


def _panel(name: str) -> str:
    return next(panel for panel, names in COMMANDS.items() if name in names)


# Help texts are read as markdown, not rich markup, so "affecttrack[onnx]" keeps its brackets
# instead of being taken for a rich style tag, and docstrings reflow to the terminal's width.
app = typer.Typer(cls=_InFlowOrder, add_completion=False, no_args_is_help=True,
                  pretty_exceptions_enable=False, rich_markup_mode="markdown",
                  help="Valence, arousal and expression of faces in videos: data, training, "
                       "evaluation.")
prepare_app = typer.Typer(no_args_is_help=True, rich_markup_mode="markdown",
                          help="Build a face store from a dataset.")
train_app = typer.Typer(no_args_is_help=True, rich_markup_mode="markdown",
                        help="Train the frame or the sequence model.")
app.add_typer(prepare_app, name="prepare", rich_help_panel=_panel("prepare"))
app.add_typer(train_app, name="train", rich_help_panel=_panel("train"))
console = Console()


def _command(name: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register a top-level command under its name, in its help panel."""
    return app.command(name, rich_help_panel=_panel(name))

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML experiment config.")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a config value: section.field=value (repeatable).")]
RestartOpt = Annotated[bool, typer.Option(
    "--restart", help="Discard unfinished training (checkpoints and logs) and start it over, "
                      "e.g. after a damaged checkpoint; finished runs are kept.")]


def _sections(config: Path | None, overrides: list[str] | None, *names: str) -> dict[str, Any]:
    """The config's sections; a --set of a section other than `names` is refused, not ignored."""
    from affecttrack.config import load_sections
    return load_sections(config, overrides, names)


def _out_folder(out: Path) -> Path:
    """The callback of every folder a command writes into: one line, before any work, when the
    path names a file."""
    from affecttrack.runinfo import check_out_folder
    return check_out_folder(out)


@_command("synth")
def synth(out: Annotated[Path, typer.Argument(help="Folder to write the generated dataset to.",
                                              callback=_out_folder)],
          config: ConfigOpt = None, set_: SetOpt = None,
          layout: Annotated[list[str] | None, typer.Option(
              help="Also write a photo dataset: ckplus, ckplus48 or jaffe (repeatable).")] = None
          ) -> None:
    """Generate synthetic face videos in the Aff-Wild2 layout (plus full-frame videos, and CK+,
    CK+48 and JAFFE photo datasets on request)."""
    from affecttrack.config import configure
    from affecttrack.synth import SynthConfig, synthesize
    cfg = configure(SynthConfig(), _sections(config, set_, "synth").get("synth"),
                    section="synth")
    if layout:
        cfg = dataclasses.replace(cfg, layouts=tuple(dict.fromkeys((*cfg.layouts, *layout))))
    summary = synthesize(out, cfg)
    console.print(summary)


def _option(option: SourceOption) -> Any:
    """A source option as a typer `--option` annotation (type and help text)."""
    return Annotated[option.type, typer.Option(help=option.help)]


DetectorOpt = _option(DETECTOR)
MaxPixelsOpt = _option(MAX_PIXELS)


def _print_store(summary: dict[str, Any]) -> None:
    """The store's counts and skipped items, and which label names became which class."""
    from affecttrack.data.store import describe_store
    mapping = summary.get("label_mapping", {})
    for k, name in enumerate(summary.get("expressions", []) if mapping else []):
        raws = ", ".join(repr(raw) for raw, mapped in mapping.items() if mapped == name)
        console.print(f"  class {k} {name} <- {raws}", highlight=False, soft_wrap=True)
    for line in describe_store(summary):
        console.print(line, highlight=False, soft_wrap=True)


def _prepare_command(source: DataSource) -> Callable[..., None]:
    """The `prepare NAME` command of one data source: --root, --out and the source's options.

    typer reads a command's options from its signature, so the one function serves every
    source through a signature built from the table.
    """
    def command(root: Path, out: Path, **options: Any) -> None:
        _print_store(prepare(source.name, root, out, **options))

    def keyword(name: str, annotation: Any,
                default: Any = inspect.Parameter.empty) -> inspect.Parameter:
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                 annotation=annotation)

    command.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
        keyword("root", Annotated[Path, typer.Option(help=source.root_help)]),
        keyword("out", Annotated[Path, typer.Option(help="Face store folder to write.",
                                                    callback=_out_folder)]),
        *(keyword(option.name, _option(option), option.default) for option in source.options),
    ], return_annotation=None)
    return command


for _source in SOURCES.values():
    prepare_app.command(_source.name, help=_source.description)(_prepare_command(_source))


@train_app.command("frame")
def train_frame(store: Annotated[Path, typer.Option(help="Face store folder.")],
                out: Annotated[Path, typer.Option(help="Run folder to write.",
                                                  callback=_out_folder)],
                config: ConfigOpt = None, set_: SetOpt = None,
                restart: RestartOpt = False) -> None:
    """Train the paper's CNN on single face frames (config section `frame`)."""
    from affecttrack.config import configure
    from affecttrack.data.store import FaceStore
    from affecttrack.training.frame import FrameTrainConfig, train_frame_model
    cfg = configure(FrameTrainConfig(), _sections(config, set_, "frame").get("frame"),
                    section="frame")
    result = train_frame_model(FaceStore.open(store), out, cfg, restart=restart)
    _print_trained("frame", result)


@_command("extract")
def extract(store: Annotated[Path, typer.Option(help="Face store folder.")],
            model: Annotated[Path, typer.Option(help="Frame model file (frame_model.pt).")],
            out: Annotated[Path, typer.Option(help="Feature store folder to write.",
                                              callback=_out_folder)],
            batch_size: int = 256) -> None:
    """Extract the 300-d feature of every stored face. Resumable."""
    from affecttrack.data.store import FaceStore
    from affecttrack.features.extract import extract_features
    extract_features(FaceStore.open(store), model, out, batch_size=batch_size)


@_command("extend")
def extend(store: Annotated[Path, typer.Argument(help="Face store to label (CK+, JAFFE, ...).")],
           out: Annotated[Path, typer.Option(help="Folder for labels.csv, labels.json and "
                                                  "images/.", callback=_out_folder)],
           model: Annotated[Path | None, typer.Option(
               help="Frame model file with a valence/arousal head (default: each face's "
                    "expression centroid).")] = None) -> None:
    """Give a categorical store's faces valence/arousal and export them as PNG crops + a CSV
    that `prepare folder --no-detect` reads. Resumable."""
    from affecttrack.pipeline.extend import EXTENDED_CSV, extend_with_va
    record = extend_with_va(store, out, model=model)
    sources = ", ".join(f"{count} from {name}" for name, count in record["va_source"].items())
    left_out = ", ".join(f"{count} {why}" for why, count in record["left_out"].items() if count)
    _print_line(f"wrote {out / EXTENDED_CSV}: {record['faces']} faces ({sources})"
                + (f"; left out: {left_out}" if left_out else ""))
    _print_line(f"build a store from it: affecttrack prepare folder --root {out} --out STORE "
                "--no-detect")


@train_app.command("sequence")
def train_sequence(store: Annotated[Path, typer.Option(help="Face store folder.")],
                   features: Annotated[Path, typer.Option(help="Feature store folder.")],
                   out: Annotated[Path, typer.Option(help="Run folder to write.",
                                                     callback=_out_folder)],
                   config: ConfigOpt = None, set_: SetOpt = None,
                   restart: RestartOpt = False) -> None:
    """Train the recurrent model on sequences of frame features (config section `sequence`)."""
    from affecttrack.config import configure
    from affecttrack.data.store import FaceStore
    from affecttrack.features.store import FeatureStore
    from affecttrack.training.sequence import SequenceTrainConfig, train_sequence_model
    cfg = configure(SequenceTrainConfig(), _sections(config, set_, "sequence").get("sequence"),
                    section="sequence")
    result = train_sequence_model(FaceStore.open(store), FeatureStore.open(features), out, cfg,
                                  restart=restart)
    _print_trained("sequence", result)


@_command("evaluate")
def evaluate(store: Annotated[Path, typer.Option(help="Face store folder.")],
             features: Annotated[Path, typer.Option(help="Feature store folder.")],
             model: Annotated[Path, typer.Option(
                 help="Sequence model file (sequence_model.pt).")],
             out: Annotated[Path, typer.Option(help="Folder for metrics.json, table.md, plots.",
                                               callback=_out_folder)],
             split: str = "val", smoothing_window: int = 15) -> None:
    """CCC, PCC and RMSE of the frame model, its smoothed output and the sequence model."""
    from affecttrack.data.store import FaceStore
    from affecttrack.evaluation.tables import metrics_table
    from affecttrack.features.store import FeatureStore
    from affecttrack.pipeline.experiment import EvaluationConfig, evaluate_va
    config = EvaluationConfig(split=split, smoothing_window=smoothing_window)
    metrics = evaluate_va(FaceStore.open(store), FeatureStore.open(features), model, out, config)
    console.print(metrics_table(metrics))


@_command("demo")
def demo(out: Annotated[Path, typer.Option(help="Folder for everything the demo writes.",
                                           callback=_out_folder)] = Path("affecttrack-demo"),
         config: ConfigOpt = None, set_: SetOpt = None, restart: RestartOpt = False) -> None:
    """Generate data, train CNN + GRU, evaluate: the whole method in minutes on a CPU."""
    from affecttrack.config import configure
    from affecttrack.evaluation.tables import metrics_table
    from affecttrack.pipeline.demo import DemoConfig, run_demo
    names = ("synth", "frame", "sequence", "evaluation")
    sections = _sections(config, set_, *names)
    defaults = DemoConfig()
    cfg = DemoConfig(**{name: configure(getattr(defaults, name), sections.get(name), section=name)
                        for name in names})
    metrics = run_demo(out, cfg, console=console, restart=restart)
    console.print(metrics_table(metrics))


@_command("run")
def run_config(config: Annotated[Path, typer.Argument(
                   help="YAML config whose key `experiment:` is classification or va.")],
               out: Annotated[Path | None, typer.Option(
                   help="Folder for the run (default runs/<config name>).")] = None,
               set_: SetOpt = None, restart: RestartOpt = False) -> None:
    """Run (or resume) the experiment a config file describes; prints its results table."""
    from rich.markdown import Markdown

    from affecttrack.pipeline.run import run_experiment
    console.print(Markdown(run_experiment(config, out, set_ or [], console=console,
                                          restart=restart)))


@_command("bundle")
def bundle_cmd(
        frame: Annotated[Path, typer.Option(help="Frame model file (frame_model.pt).")],
        out: Annotated[Path, typer.Option(help="Bundle file to write.")],
        sequence: Annotated[Path | None, typer.Option(
            help="Sequence model file (sequence_model.pt).")] = None,
        labels: Annotated[str | None, typer.Option(
            help="Expression class names, comma-separated in class order (default: the "
                 "training store's, as the model file records them; else for 7 or 8 classes "
                 "Aff-Wild2's or CK+'s).")] = None,
        detector: Annotated[str | None, typer.Option(
            help="Face detector the training faces were found with (default: as the frame "
                 "model's training store recorded, else the project's); none for faces that "
                 "came already cropped.")] = None,
        margin: Annotated[float | None, typer.Option(
            help="Margin around a detected face, as a fraction of its size (default: as the "
                 "training store recorded, else 0.1).")] = None,
        align: Annotated[bool | None, typer.Option(
            help="Align faces by the eyes as `prepare --align` did (default: as the training "
                 "store recorded, else not).")] = None) -> None:
    """Pack the frame model, optional sequence model, labels and preprocessing into one file."""
    from affecttrack.inference.bundle import make_bundle, preprocessing_for
    preprocessing, origin = preprocessing_for(frame, detector=detector, margin=margin,
                                              align=align)
    made = make_bundle(frame, sequence, out=out, preprocessing=preprocessing,
                       labels=[name.strip() for name in labels.split(",")] if labels else None)
    console.print(f"bundle: {out} ({made.summary()})", highlight=False, soft_wrap=True)
    console.print(f"  {origin}", highlight=False, soft_wrap=True)


@_command("export")
def export_cmd(
        bundle: Annotated[Path, typer.Argument(help="Bundle file (affecttrack bundle).")],
        out: Annotated[Path, typer.Option(
            help="Folder for frame.onnx, sequence.onnx and onnx.json.",
            callback=_out_folder)]) -> None:
    """Export a bundle's networks to ONNX, checked against PyTorch (needs affecttrack[onnx])."""
    from affecttrack.inference.export import export_onnx
    info = export_onnx(bundle, out)
    for part in ("frame", "sequence"):
        if info[part] is not None:
            console.print(f"{out / info[part]['file']}: max |ONNX Runtime - PyTorch| "
                          f"{info[part]['max_abs_diff_vs_torch']:.2g}", highlight=False)


def _print_line(line: str) -> None:
    console.print(line, highlight=False, soft_wrap=True)


def _print_trained(kind: str, result: Any) -> None:
    """Where a training command left its model, and the validation score it was chosen on (CCC,
    macro-F1 or the combined score: whatever its task monitored)."""
    score = result.monitor.removeprefix("val/")
    _print_line(f"{kind} model: {result.model_path} (best validation {score} "
                f"{result.best_score:.3f})")


@_command("predict")
def predict(
        paths: Annotated[list[str] | None, typer.Argument(
            help="Videos (mp4, avi, mov, webm, ...), folders of videos, of frames or of "
                 "photos, images, glob patterns.")] = None,
        out: Annotated[Path, typer.Option(help="Folder for the per-input files and "
                                               "summary.json.", callback=_out_folder)]
        = Path("predictions"),
        model: Annotated[Path | None, typer.Option(
            help="Model bundle (default: the shipped expression model).")] = None,
        annotate: Annotated[bool, typer.Option(
            help="Also write <name>.annotated.mp4 with boxes, values and labels drawn.")] = False,
        source: Annotated[str | None, typer.Option(
            help="Live input instead of PATHS: a camera index (0) or a stream URL.")] = None,
        max_frames: Annotated[int | None, typer.Option(
            help="Stop a live source after this many frames.")] = None,
        detector: DetectorOpt = None,
        detect_every: Annotated[int, typer.Option(
            help="Run the face detector on every n-th frame, track faces in between.")] = 5,
        max_gap: Annotated[int, typer.Option(
            help="Interpolate a face's track over gaps of up to this many frames.")] = 15,
        fps: Annotated[float | None, typer.Option(
            help="Frame rate of folders of frames (for time_s).")] = None,
        frames: Annotated[bool | None, typer.Option(
            "--frames/--photos",
            help="Read folders of images (and images) as one video's frames / as independent "
                 "photos (default: frames when their names are numbered, e.g. "
                 "frame_0001.png).")] = None,
        max_pixels: MaxPixelsOpt = None) -> None:
    """Valence, arousal and expression per frame and face; exits 1 if any input failed."""
    from affecttrack.data.images import pixel_limit
    from affecttrack.inference.batch import failed_inputs, predict_paths
    from affecttrack.inference.live import predict_live
    from affecttrack.inference.predictor import load_model
    if not paths and source is None:
        raise AffectTrackError("predict: name videos, folders or images, or a live --source")
    affect = load_model(model, detector=detector, detect_every=detect_every, max_gap=max_gap)
    report = _print_line
    report(f"model: {affect.bundle.summary()}; valence/arousal from {affect.va_source}")
    if source is not None:
        predict_live(affect, source, out, max_frames=max_frames, report=report)
        return
    with pixel_limit(max_pixels):
        summary = predict_paths(affect, paths or [], out, annotate=annotate, fps=fps,
                                frames=frames, report=report)
    counts = ", ".join(f"{count} {status}" for status, count in summary["counts"].items())
    report(f"{len(summary['inputs'])} input(s): {counts} -> {out / 'summary.json'}")
    if failed_inputs(summary):
        raise typer.Exit(1)


@_command("models")
def models() -> None:
    """List the named model configurations."""
    from affecttrack.models.registry import list_models
    for name, description in list_models().items():
        console.print(f"{name:12s} {description}")


@_command("explain")
def explain(
        path: Annotated[Path | None, typer.Argument(
            help="Image file, or video file with --frame.")] = None,
        frame: Annotated[int | None, typer.Option(help="Video frame to explain (1-based).")] = None,
        store: Annotated[Path | None, typer.Option(
            help="Face store: mean saliency per class instead of one face.")] = None,
        max_faces: Annotated[int, typer.Option(help="Faces of --store to explain.")] = 64,
        group_by: Annotated[str, typer.Option(
            help="Classes of --store faces: predicted or true (labelled).")] = "predicted",
        model: Annotated[Path | None, typer.Option(
            help="Model bundle (default: the shipped expression model).")] = None,
        target: Annotated[str | None, typer.Option(
            help="Output to explain: an expression class (default: the predicted one), "
                 "valence or arousal.")] = None,
        baseline: Annotated[str, typer.Option(
            help="Integrated Gradients baseline: mean (the face's mean grey) or black.")] = "mean",
        steps: Annotated[int, typer.Option(help="Integrated Gradients steps.")] = 32,
        sequence_window: Annotated[int | None, typer.Option(
            help="Also: importance of the last L frames up to --frame for the bundle's sequence "
                 "network.")] = None,
        out: Annotated[Path, typer.Option(help="Folder for the figures, maps and "
                                               "explain.json.", callback=_out_folder)]
        = Path("explain")) -> None:
    """What the networks look at: saliency maps, per-class saliency, filters, frame importance."""
    from affecttrack.interpret.explain import ExplainConfig, describe_prediction
    from affecttrack.interpret.explain import explain as run_explain
    config = ExplainConfig(target=target, baseline=baseline, n_steps=steps,
                               max_faces=max_faces, group_by=group_by,
                               sequence_window=sequence_window)
    record = run_explain(path, out, frame=frame, store=store, model=model, config=config)
    if "prediction" in record:
        _print_line(f"prediction: {describe_prediction(record['prediction'])}; explained: "
                    f"{record['target']['name']}")
    for name in record["files"].values():
        _print_line(f"wrote {out / name}")
    _print_line(f"wrote {out / 'explain.json'}")


@_command("report")
def report(run_dir: Annotated[Path, typer.Argument(help="A run folder (any command's --out).")],
           out: Annotated[Path | None, typer.Option(
               help="HTML file to write (default RUN_DIR/report.html).")] = None) -> None:
    """One self-contained HTML page of a run: run info, tables, metrics, figures, file list."""
    from affecttrack.reports.html import build_report
    problems: list[str] = []

    def problem(line: str) -> None:
        problems.append(line)
        _print_line(f"cannot show {line}")

    path = build_report(run_dir, out, on_problem=problem)
    skipped = f"; {len(problems)} file(s) could not be shown" if problems else ""
    _print_line(f"report: {path} ({path.stat().st_size / 1000:.0f} KB{skipped})")


def main() -> None:
    """Entry point: user errors are one line on stderr and exit status 2, never a traceback."""
    try:
        app()
    except AffectTrackError as exc:
        print(f"affecttrack: error: {exc}", file=sys.stderr)
        sys.exit(2)
