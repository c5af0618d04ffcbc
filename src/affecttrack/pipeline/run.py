"""`affecttrack run CONFIG`: one YAML file names an experiment and holds all its settings.

The top-level key `experiment` says which runner the file is for; the other top-level keys are
sections, each mapping onto one settings dataclass, so that a typo is an error, not a default:

    experiment: classification        # or: va
    classification: {store: ..., protocol: holdout, ...}   # ClassificationConfig
    frame: {model: cnn_expr8, class_balance: downsample}   # FrameTrainConfig

    experiment: va
    va: {root: path/to/affwild2}      # an Aff-Wild2-layout tree, prepared into OUT/store
    frame: {...}
    sequence: {...}
    evaluation: {...}

Relative paths are taken from the current directory, like every other path on the command line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from affecttrack.config import (
    apply_overrides,
    check_settings,
    configure,
    read_config_file,
)
from affecttrack.errors import AffectTrackError, InputError
from affecttrack.evaluation.tables import metrics_table
from affecttrack.pipeline.classification import ClassificationConfig, run_classification
from affecttrack.pipeline.experiment import VAExperimentConfig, run_va_experiment
from affecttrack.pipeline.multitask import MultitaskConfig, run_multitask
from affecttrack.runinfo import check_out_folder
from affecttrack.training.trainer import discard_unfinished_runs


@dataclass
class VADataConfig:
    """Where a valence/arousal experiment's data lies: an Aff-Wild2-layout tree."""

    root: str | None = None

    def __post_init__(self) -> None:
        check_settings(self)


Sections = dict[str, Any]


@dataclass
class VARunConfig:
    """A valence/arousal experiment: where its data lies and every stage's settings."""

    data: VADataConfig
    experiment: VAExperimentConfig


def _with_models(sections: Sections, name: str, config: Any,
                 models: tuple[str, ...] = ("frame",)) -> Any:
    """`config` (an experiment's own section `name`) with its models' settings taken from the
    top-level sections `models`, where they belong rather than nested in `name`."""
    nested = sorted(set(models) & set(sections.get(name) or {}))
    if nested:
        raise AffectTrackError(f"config section {name!r}: put the models' settings in the "
                               f"top-level section(s) {', '.join(map(repr, nested))}")
    config = configure(config, sections.get(name), section=name)
    return replace(config, **{model: configure(getattr(config, model), sections.get(model),
                                               section=model) for model in models})


def _classification_config(sections: Sections) -> ClassificationConfig:
    return _with_models(sections, "classification", ClassificationConfig())


def _run_classification(config: ClassificationConfig, out: Path, console: Console) -> str:
    run_classification(out, config, console=console)
    return (out / "table.md").read_text()


def _multitask_config(sections: Sections) -> MultitaskConfig:
    return _with_models(sections, "multitask", MultitaskConfig(), ("frame", "sequence"))


def _run_multitask(config: MultitaskConfig, out: Path, console: Console) -> str:
    run_multitask(out, config, console=console)
    return (out / "table.md").read_text()


def _va_config(sections: Sections) -> VARunConfig:
    data = configure(VADataConfig(), sections.get("va"), section="va")
    if not data.root:
        raise AffectTrackError("config section 'va': root (an Aff-Wild2-layout tree) is required")
    defaults = VAExperimentConfig()
    return VARunConfig(data, VAExperimentConfig(
        frame=configure(defaults.frame, sections.get("frame"), section="frame"),
        sequence=configure(defaults.sequence, sections.get("sequence"), section="sequence"),
        evaluation=configure(defaults.evaluation, sections.get("evaluation"),
                             section="evaluation")))


def _run_va(config: VARunConfig, out: Path, console: Console) -> str:
    return metrics_table(run_va_experiment(Path(config.data.root), out, config.experiment,
                                           console=console))


@dataclass(frozen=True)
class Experiment:
    """One kind of experiment: the sections its files hold, how they become its settings, and
    how those settings are run (returning the results table as markdown)."""

    sections: tuple[str, ...]
    configure: Callable[[Sections], Any]
    run: Callable[[Any, Path, Console], str]


EXPERIMENTS: dict[str, Experiment] = {
    "classification": Experiment(("classification", "frame"), _classification_config,
                                 _run_classification),
    "va": Experiment(("va", "frame", "sequence", "evaluation"), _va_config, _run_va),
    "multitask": Experiment(("multitask", "frame", "sequence"), _multitask_config,
                            _run_multitask),
}


def read_experiment(config_file: Path,
                    overrides: Sequence[str] = ()) -> tuple[str, Sections]:
    """The experiment a config file names and its sections with `section.field=value` overrides
    applied; a one-line error for a missing name, an unknown one, or an unknown section."""
    data = read_config_file(config_file)
    kind = data.pop("experiment", None)
    if kind not in EXPERIMENTS:
        raise InputError(config_file, f"top-level key 'experiment' must be one of "
                                      f"{', '.join(EXPERIMENTS)} (found {kind!r})")
    known = EXPERIMENTS[kind].sections
    for name, values in data.items():
        if name not in known:
            raise InputError(config_file, f"unknown section {name!r} for a {kind} experiment; "
                                          f"known: {', '.join(known)}")
        if values is not None and not isinstance(values, dict):
            raise InputError(config_file, f"section {name!r} must be a mapping of settings")
    sections = apply_overrides(data, list(overrides))
    unknown = sorted(set(sections) - set(known))
    if unknown:
        raise AffectTrackError(f"--set: unknown section(s) {', '.join(unknown)} for a {kind} "
                               f"experiment; known: {', '.join(known)}")
    return kind, sections


def load_experiment(config_file: Path, overrides: Sequence[str] = ()) -> tuple[str, Any]:
    """The experiment a config file names and its settings, checked, without running anything."""
    kind, sections = read_experiment(config_file, overrides)
    return kind, EXPERIMENTS[kind].configure(sections)


def run_experiment(config_file: Path, out: Path | None = None, overrides: Sequence[str] = (),
                   console: Console | None = None, restart: bool = False) -> str:
    """Run (or resume) the experiment a config file describes, under `out` (default
    runs/<config name>); returns its results table as markdown. `restart` discards the
    unfinished training runs under `out` first, to start them over."""
    config_file = Path(config_file)
    kind, config = load_experiment(config_file, overrides)
    out = check_out_folder(Path(out) if out is not None else Path("runs") / config_file.stem)
    console = console or Console()
    if restart:
        for run in discard_unfinished_runs(out):
            console.print(f"discarded the unfinished training in {run}", highlight=False)
    return EXPERIMENTS[kind].run(config, out, console)

