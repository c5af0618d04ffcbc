"""Categorical-only, valence/arousal-only and combined frame models on the same data and seeds.

The follow-up paper trains one network on categories and valence/arousal together and finds that
categorical recognition benefits. This experiment measures exactly that: for every seed, the three
variants train on the same frames with the same settings (only the heads and the loss differ), are
stopped early on the same validation videos, and are scored on the same held-out test videos.

Frames: the store's "train" split, minus `val_fraction` of its videos' subjects held out for early
stopping and checkpoint choice (drawn once with `split_seed`, the same for every variant and
seed); the test frames are the store's `test_split` ("val" for Aff-Wild2, whose test labels are
not public), never seen in training. Each variant trains on the frames that carry its labels (the
combined model on frames with either, its losses masked).

With `sequence_variants`, those variants' frame models also feed a sequence model with the same
heads (valence/arousal for `va`; the frame model's heads, losses masked, for the combined ones),
trained on the same training and early-stopping videos and scored on the same test frames: the
table's `<variant>+sequence` rows.

OUT/
  store/                        the face store (when the config names a `root` tree)
  <variant>/seed_<n>/model/     each frame-model run (resumed / reused when done)
  <variant>/seed_<n>/metrics.json
  <variant>/seed_<n>/features/, sequence/, sequence_metrics.json   with sequence_variants
  results.json, table.md        mean ± std over seeds per variant, and every seed's figures
  mapping.json, category_map.png   the combined model: categories in valence/arousal space
  run.json
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

from affecttrack.config import SEED_MAX, check_settings, setting
from affecttrack.data.sources.registry import prepare
from affecttrack.data.store import SPLITS, FaceStore, describe_store
from affecttrack.errors import AffectTrackError
from affecttrack.evaluation.action_units import action_unit_metrics
from affecttrack.evaluation.classification import classification_metrics, mean_std
from affecttrack.evaluation.metrics import va_metrics
from affecttrack.evaluation.va_mapping import mapping_report
from affecttrack.evaluation.va_mapping_plot import plot_category_maps
from affecttrack.features.extract import extract_features
from affecttrack.features.head_outputs import frame_head_outputs
from affecttrack.models.registry import frame_head_sizes
from affecttrack.predictions.sequence import predict_sequences
from affecttrack.runinfo import write_json_atomic, write_run_info, write_text_atomic
from affecttrack.training.frame import FrameTrainConfig, train_frame_model
from affecttrack.training.sequence import (
    SequenceTrainConfig,
    train_sequence_model,
)
from affecttrack.training.splits import subject_holdout

# variant -> frame model ({k}: the store's classes, {m}: its action units) and task
VARIANTS = {"expression": ("cnn_expr{k}", "expression"), "va": ("cnn_va", "va"),
            "combined": ("cnn_va_expr{k}", "combined"),
            "combined_au": ("cnn_va_expr{k}_au{m}", "combined")}
DEFAULT_VARIANTS = ("expression", "va", "combined")
# Variants whose frame model can feed a sequence model with the same heads (a sequence model
# learns valence/arousal, or two or three heads together).
SEQUENCE_VARIANTS = ("va", "combined", "combined_au")
SCORES = (("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("ccc_valence", "CCC valence"),
          ("ccc_arousal", "CCC arousal"), ("ccc_mean", "mean CCC"), ("au_f1", "AU F1"))


@dataclass
class MultitaskConfig:
    """Data (`root`: an Aff-Wild2-layout tree prepared into OUT/store, or `store`: a face store
    with both kinds of labels), the variants and seeds compared, and the split scored.

    `combined_au` adds the action-unit head (Aff-Wild2's AU_Set) to the combined model, for a
    store that has action units: does a third kind of label help the other two?"""

    root: str | None = None
    store: str | None = None
    variants: list[str] = setting(factory=lambda: list(DEFAULT_VARIANTS), choices=VARIANTS)
    seeds: list[int] = setting(factory=lambda: [0, 1, 2], minimum=0, maximum=SEED_MAX)
    test_split: str = setting("val", choices=SPLITS)
    val_fraction: float = setting(0.1, above=0, below=1)
    split_seed: int = setting(0, minimum=0, maximum=SEED_MAX)
    sequence_variants: list[str] = setting(factory=list, choices=SEQUENCE_VARIANTS)
    frame: FrameTrainConfig = field(default_factory=FrameTrainConfig)
    sequence: SequenceTrainConfig = field(default_factory=SequenceTrainConfig)

    def __post_init__(self) -> None:
        check_settings(self)
        for name in ("variants", "seeds"):
            if not getattr(self, name):
                raise AffectTrackError(f"config section 'multitask': {name} must list at least "
                                       "one")
        wrong = [name for name in self.sequence_variants if name not in self.variants]
        if wrong:
            raise AffectTrackError(f"multitask sequence_variants must be among the variants run; "
                                   f"got {wrong}")


@dataclass(frozen=True)
class Frames:
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame


def run_multitask(out: Path, config: MultitaskConfig,
                  console: Console | None = None) -> dict[str, Any]:
    """Train (or reuse) every variant x seed, score them on the test frames, write the table."""
    console = console or Console()
    out = Path(out)
    store = _open_store(config, out, console)
    if "combined_au" in config.variants and not store.action_units:
        raise AffectTrackError(f"{store.path}: variant combined_au needs action-unit labels "
                               "(Aff-Wild2's AU_Set); this store has none")
    frames = _frames(store, config)
    write_run_info(out, stage="multitask", config=config, seed=config.split_seed,
                   data_summary={"store": str(store.path), **{
                       part: {"frames": len(getattr(frames, part)),
                              "subjects": int(getattr(frames, part)["subject"].nunique())}
                       for part in ("train", "val", "test")}})
    runs, combined_outputs = [], {}
    for variant in config.variants:
        for seed in config.seeds:
            console.rule(f"[bold]{variant}, seed {seed}")
            entry, outputs = _run_one(store, frames, config, variant, seed, out)
            runs.append(entry)
            if variant == "combined":
                combined_outputs[seed] = outputs
            if variant in config.sequence_variants:
                runs.append(_run_sequence(store, frames, config, entry, out))
    results = {"runs": runs, "summary": summarise(runs)}
    if combined_outputs:
        results["mapping"] = _mapping(frames.test, combined_outputs, store.expression_names,
                                      out)
    write_json_atomic(out / "results.json", results)
    write_text_atomic(out / "table.md", results_table(results, config))
    return results


def _open_store(config: MultitaskConfig, out: Path, console: Console) -> FaceStore:
    if (config.root is None) == (config.store is None):
        raise AffectTrackError("config section 'multitask': give either root (an "
                               "Aff-Wild2-layout tree) or store (a face store)")
    if config.store is not None:
        return FaceStore.open(Path(config.store))
    for line in describe_store(prepare("affwild2", Path(config.root), out / "store")):
        console.print(line, highlight=False)
    return FaceStore.open(out / "store")


def _frames(store: FaceStore, config: MultitaskConfig) -> Frames:
    """Training, early-stopping and test frames (faces with any label), the same for all runs."""
    index = store.index
    has_au = (index[list(store.action_units)] >= 0).any(axis=1)
    labelled = index[(index["row"] >= 0) & ((index["expression"] >= 0)
                                           | index["valence"].notna() | has_au)]
    train = labelled[labelled["split"] == "train"]
    test = labelled[labelled["split"] == config.test_split]
    if train.empty or test.empty:
        raise AffectTrackError(f"{store.path}: needs labelled faces in the train split and in "
                               f"the {config.test_split!r} split")
    # Frames without a class count as class 0 in the draw's check that every class keeps
    # training subjects; they are not relabelled anywhere else.
    inner = subject_holdout(train.assign(expression=train["expression"].clip(lower=0)),
                            config.val_fraction, config.split_seed)
    keep = set(inner.test["subject"])
    return Frames(train[~train["subject"].isin(keep)], train[train["subject"].isin(keep)], test)


def _run_one(store: FaceStore, frames: Frames, config: MultitaskConfig, variant: str,
             seed: int, out_dir: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    run_dir = out_dir / variant / f"seed_{seed}"
    name, task = VARIANTS[variant]
    model = name.format(k=len(store.expression_names), m=len(store.action_units))
    frame_config = replace(config.frame, model=model, task=task, seed=seed)
    result = train_frame_model(store, run_dir / "model", frame_config,
                               train_frames=frames.train, val_frames=frames.val)
    test = frames.test
    outputs = frame_head_outputs(store, result.model_path, test["row"].to_numpy())
    scores = test_scores(test, outputs, store.expression_names, store.action_units)
    entry = {"variant": variant, "seed": seed, "model": model, "steps": result.global_step,
             "model_file": str(result.model_path), **scores}
    write_json_atomic(run_dir / "metrics.json", entry)
    return entry, outputs


def _run_sequence(store: FaceStore, frames: Frames, config: MultitaskConfig,
                  frame_entry: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """A sequence model on one variant's frame features, with its heads, on the same videos."""
    variant, seed = frame_entry["variant"], frame_entry["seed"]
    run_dir = out_dir / variant / f"seed_{seed}"
    frame_model = Path(frame_entry["model_file"])
    features = extract_features(store, frame_model, run_dir / "features", progress=False)
    heads = list(frame_head_sizes(frame_entry["model"]))
    sequence_config = replace(config.sequence, task="va" if variant == "va" else "combined",
                              heads=None if variant == "va" else heads, seed=seed)
    resplit = replace(store, index=_split_like(store.index, frames, config.test_split))
    result = train_sequence_model(resplit, features, run_dir / "sequence", sequence_config,
                                  progress=False)
    predictions = predict_sequences(resplit, features, result.model_path, split="test")
    outputs = _sequence_outputs(frames.test, predictions, store)
    entry = {"variant": f"{variant}+sequence", "seed": seed,
             "model": f"{frame_entry['model']} + {config.sequence.model}",
             "steps": result.global_step, "model_file": str(result.model_path),
             **test_scores(frames.test, outputs, store.expression_names, store.action_units)}
    write_json_atomic(run_dir / "sequence_metrics.json", entry)
    return entry


def _split_like(index: pd.DataFrame, frames: Frames, test_split: str) -> pd.DataFrame:
    """The index with its `split` column as the frame models used it: their training subjects
    "train", their early-stopping subjects "val", the scored split "test", anything else
    "unused"; whole videos, so that sequences keep their frames without a face or a label."""
    train = index["split"] == "train"
    split = np.select([train & index["subject"].isin(set(frames.train["subject"])),
                       train & index["subject"].isin(set(frames.val["subject"])),
                       index["split"] == test_split], ["train", "val", "test"], "unused")
    return index.assign(split=split)


def _sequence_outputs(test: pd.DataFrame, predictions: pd.DataFrame,
                      store: FaceStore) -> dict[str, np.ndarray]:
    """The sequence model's heads for the test frames, in their order, as `test_scores` reads
    them (expression as class probabilities, action units as probabilities)."""
    rows = test[["video", "frame"]].astype({"frame": np.int64}).merge(
        predictions, on=["video", "frame"], how="left")
    classes = [name.lower() for name in store.expression_names]
    outputs = {}
    if rows["valence"].notna().any():
        outputs["va"] = rows[["valence", "arousal"]].to_numpy(np.float64)
    if set(classes) <= set(rows.columns):
        outputs["expression"] = rows[classes].to_numpy(np.float64)
    if store.action_units and set(store.action_units) <= set(rows.columns):
        outputs["au"] = rows[list(store.action_units)].to_numpy(np.float64)
    return outputs


def _mapping(test: pd.DataFrame, outputs: dict[int, dict[str, np.ndarray]],
             names: tuple[str, ...], out_dir: Path) -> dict[str, Any]:
    """The combined models' heads through valence/arousal space: per seed `mapping_report`
    (mapping.json), agreement of the heads averaged over seeds, and the first seed's figure of
    the categories' places, labels beside predictions (category_map.png)."""
    va_true = test[["valence", "arousal"]].to_numpy(np.float64)
    classes_true = test["expression"].to_numpy(np.int64)
    reports = {seed: mapping_report(va_true, classes_true, out["va"], out["expression"], names)
               for seed, out in outputs.items()}
    write_json_atomic(out_dir / "mapping.json", reports)
    first = min(outputs)
    plot_category_maps(va_true, classes_true, outputs[first]["va"],
                       outputs[first]["expression"].argmax(axis=1), names,
                       out_dir / "category_map.png",
                       title=f"Test frames: labels vs the combined model (seed {first})")
    agreement = [report["head_agreement"]["agreement"] for report in reports.values()
                 if report["head_agreement"]]
    return {"head_agreement_mean": float(np.mean(agreement)) if agreement else None,
            "file": "mapping.json", "figure": "category_map.png"}


def test_scores(test: pd.DataFrame, outputs: dict[str, np.ndarray], names: tuple[str, ...],
                action_units: tuple[str, ...] = ()) -> dict[str, float | None]:
    """Accuracy and macro-F1 on test frames with a class, CCCs on those with valence/arousal,
    mean F1 over action units where each is known; None for what the model has no head for."""
    scores: dict[str, float | None] = {key: None for key, _ in SCORES}
    has_class = test["expression"].to_numpy() >= 0
    if "expression" in outputs and has_class.any():
        metrics = classification_metrics(test["expression"].to_numpy()[has_class],
                                         outputs["expression"][has_class].argmax(axis=1), names)
        scores.update(accuracy=metrics["accuracy"], macro_f1=metrics["macro_f1"])
    has_va = test[["valence", "arousal"]].notna().all(axis=1).to_numpy()
    if "va" in outputs and has_va.any():
        metrics = va_metrics(test[["valence", "arousal"]].to_numpy()[has_va],
                             outputs["va"][has_va])
        scores.update(ccc_valence=metrics["valence"]["ccc"],
                      ccc_arousal=metrics["arousal"]["ccc"], ccc_mean=metrics["mean_ccc"])
    units = list(action_units)
    if "au" in outputs and (test[units] >= 0).to_numpy().any():
        scores["au_f1"] = action_unit_metrics(test[units].to_numpy(), outputs["au"],
                                              units)["f1_mean"]
    return scores


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per variant: seeds, and mean and sample std over seeds of every score it has."""
    summary: dict[str, dict[str, Any]] = {}
    for variant in dict.fromkeys(run["variant"] for run in runs):
        own = [run for run in runs if run["variant"] == variant]
        entry: dict[str, Any] = {"seeds": [run["seed"] for run in own]}
        for key, _ in SCORES:
            mean, std = mean_std([run[key] for run in own if run[key] is not None])
            entry[key] = None if mean is None else {"mean": mean, "std": std}
        summary[variant] = entry
    return summary


def results_table(results: dict[str, Any], config: MultitaskConfig) -> str:
    """Markdown: mean ± std over seeds per variant, then every run."""
    header = "| variant | seeds | " + " | ".join(title for _, title in SCORES) + " |"
    rule = "|---|---|" + "---|" * len(SCORES)
    lines = [(f"# Categorical, valence/arousal and combined models (test split "
              f"{config.test_split!r}, mean ± std over seeds; `+sequence`: a GRU with the same "
              "heads on that frame model's features)"), "", header, rule]
    for variant, entry in results["summary"].items():
        cells = [_mean_std(entry[key]) for key, _ in SCORES]
        lines.append(f"| {variant} | {len(entry['seeds'])} | " + " | ".join(cells) + " |")
    lines += ["", "Every run:", "", header.replace("seeds", "seed"), rule]
    for run in results["runs"]:
        cells = ["—" if run[key] is None else f"{run[key]:.3f}" for key, _ in SCORES]
        lines.append(f"| {run['variant']} | {run['seed']} | " + " | ".join(cells) + " |")
    agreement = (results.get("mapping") or {}).get("head_agreement_mean")
    if agreement is not None:
        lines += ["", (f"The combined model's two heads agree on {agreement:.1%} of the test "
                      "frames (its expression head's class vs the class whose label centroid is "
                      "nearest its valence/arousal head's point; mean over seeds; per seed in "
                      "mapping.json, the categories' places in category_map.png).")]
    return "\n".join(lines) + "\n"


def _mean_std(value: dict[str, float | None] | None) -> str:
    if value is None:
        return "—"
    if value["std"] is None:
        return f"{value['mean']:.3f}"
    return f"{value['mean']:.3f} ± {value['std']:.3f}"
