"""The paper's categorical experiments on any face store: subject-independent hold-out, k-fold
cross-validation, and cross-dataset testing (train on one store, score on another).

Protocols ignore the store's `split` column: all frames with a face and an expression label are
divided by subject (training/splits.py). Within each fold's training subjects, `val_fraction` of
them are held out again for early stopping and checkpoint choice, so the test subjects never
influence the model; with `val_fraction: 0` the test fold validates, as the paper's public code
did (optimistic, and said so in the report).

With `ensemble` (holdout and cross protocols) the training subjects are split into `folds` parts
and one model ("member") is trained per part, validated on that part and trained on the others;
the test faces are scored by the mean of the members' class probabilities. Every training subject
then trains k - 1 of the models, none is set aside for validation alone, and the members' errors
partly cancel. `test_flip` scores each test face by its and its mirror image's mean probability.

OUT/
  folds/fold_01/model/         the fold's frame-model run (train_frame_model; reused once done)
  folds/fold_01/split.json     the fold's train/validation/test subjects
  folds/fold_01/predictions.parquet, metrics.json   (with `ensemble`: folds/member_01/...)
  predictions.parquet          with `ensemble`: the members' mean probabilities and prediction
  metrics.json                 per fold, mean ± std over folds, and pooled over all test frames
  confusion_counts.png, confusion_percent.png   pooled confusion matrix (Fig. 6/7)
  class_counts.md              frames per class: store / training after balancing / test (Table II)
  table.md, run.json
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

from affecttrack.config import SEED_MAX, check_settings, setting
from affecttrack.data.store import FaceStore
from affecttrack.errors import AffectTrackError, InputError
from affecttrack.evaluation.classification import (
    classification_metrics,
    summarise_folds,
)
from affecttrack.evaluation.classification_tables import (
    class_count_table,
    fold_table,
    recall_table,
)
from affecttrack.evaluation.confusion_plot import plot_confusion_matrix
from affecttrack.features.head_outputs import frame_head_outputs
from affecttrack.labels import map_expressions
from affecttrack.models.registry import frame_head_sizes
from affecttrack.runinfo import (
    atomic_path,
    write_json_atomic,
    write_run_info,
    write_text_atomic,
)
from affecttrack.training.frame import FrameTrainConfig, train_frame_model
from affecttrack.training.splits import Split, subject_holdout, subject_kfold

PROTOCOLS = ("holdout", "kfold", "cross")
SPLIT_FILE = "split.json"
PREDICTIONS_FILE = "predictions.parquet"
PAPER_NOTE = ("For reference, the paper reports 95% accuracy on CK+ (8 classes, subject-independent "
              "hold-out of about 10% of subjects) and 50% on JAFFE for that CK+ model "
              "(cross-dataset); those are the paper's numbers, not this run's.")


def classification_frame_config() -> FrameTrainConfig:
    """The paper's CNN with the 8-class CK+ head, trained as the paper trained it (SGD 0.01,
    batch 128, up to 100 epochs, early stopping), validated once per epoch."""
    return FrameTrainConfig(model="cnn_expr8", task="expression", class_balance="none")


@dataclass
class ClassificationConfig:
    """One categorical experiment.

    `store`: the face store trained on (and tested on, for holdout and kfold); `test_store`: the
    store scored by the `cross` protocol. `holdout_fraction`: share of subjects held out as the
    test set; `folds`: k of k-fold; `val_fraction`: share of each fold's training subjects used
    for early stopping (0: validate on the test fold). `frame.class_balance` chooses the class
    imbalance remedy. `ensemble` (holdout and cross): `folds` members whose mean probabilities
    score the test faces, each validated on one part of the training subjects (in place of
    `val_fraction`); `test_flip`: flip averaging at test time (see the module docstring).
    """

    store: str | None = None
    test_store: str | None = None
    protocol: str = setting("holdout", choices=PROTOCOLS)
    folds: int = setting(10, minimum=2)
    holdout_fraction: float = setting(0.1, above=0, below=1)
    val_fraction: float = setting(0.1, minimum=0, below=1)
    seed: int = setting(0, minimum=0, maximum=SEED_MAX)
    ensemble: bool = False
    test_flip: bool = False
    frame: FrameTrainConfig = field(default_factory=classification_frame_config)

    def __post_init__(self) -> None:
        check_settings(self)
        if (self.protocol == "cross") != (self.test_store is not None):
            raise AffectTrackError("test_store is needed by the cross protocol, and only by it")
        if self.protocol == "cross" and self.val_fraction <= 0:
            raise AffectTrackError("the cross protocol validates on held-out training subjects: "
                                   "set val_fraction above 0")
        if self.ensemble and self.protocol == "kfold":
            raise AffectTrackError("ensemble applies to the holdout and cross protocols: kfold's "
                                   "k models each test their own fold, so none can be averaged")
        if self.frame.task != "expression":
            raise AffectTrackError(f"classification experiments train the expression task, not "
                                   f"{self.frame.task!r}")


@dataclass(frozen=True)
class Fold:
    """A fold's frames: train and validation from the training store, test from the test store."""

    name: str
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame

    def subjects(self) -> dict[str, list[str]]:
        return {part: sorted(getattr(self, part)["subject"].unique())
                for part in ("train", "val", "test")}


def expression_frames(store: FaceStore) -> pd.DataFrame:
    """Index rows with a face and an expression label, whatever their split."""
    index = store.index
    frames = index[(index["row"] >= 0) & (index["expression"] >= 0)]
    names = store.expression_names
    if frames.empty:
        raise InputError(store.path, "no frames with a face and an expression label")
    if frames["expression"].max() >= len(names):
        raise InputError(store.path, f"expression label {frames['expression'].max()} but the "
                                     f"store names {len(names)} classes")
    return frames


def expression_probabilities(store: FaceStore, model: Path, rows: np.ndarray,
                             batch_size: int = 256, flip: bool = False) -> np.ndarray:
    """(len(rows), classes) probabilities that a frame model gives each face row's classes
    (`flip`: averaged with the mirror image's)."""
    outputs = frame_head_outputs(store, model, rows, batch_size, flip)
    if "expression" not in outputs:
        raise InputError(model, "this frame model has no expression head")
    return outputs["expression"]


def protocol_folds(config: ClassificationConfig, frames: pd.DataFrame,
                   test_frames: pd.DataFrame | None = None) -> list[Fold]:
    """The protocol's folds, each with its validation subjects carved from its training ones."""
    if config.protocol == "holdout":
        splits = [subject_holdout(frames, config.holdout_fraction, config.seed)]
    elif config.protocol == "kfold":
        splits = subject_kfold(frames, config.folds, config.seed)
    else:
        splits = [Split(train=frames, test=test_frames)]
    if config.ensemble:
        (split,) = splits
        members = subject_kfold(split.train, config.folds, config.seed + 1)
        return [Fold(f"member_{k:02d}", member.train, member.test, split.test)
                for k, member in enumerate(members, start=1)]
    folds = []
    for k, split in enumerate(splits, start=1):
        if config.val_fraction > 0:
            inner = subject_holdout(split.train, config.val_fraction, config.seed + k)
            train, val = inner.train, inner.test
        else:
            train, val = split.train, split.test
        folds.append(Fold(f"fold_{k:02d}", train, val, split.test))
    return folds


def run_classification(out: Path, config: ClassificationConfig,
                       console: Console | None = None, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the experiment under `out`; returns what metrics.json holds."""
    console = console or Console()
    out = Path(out)
    if config.store is None:
        raise AffectTrackError("a classification experiment needs a face store (store: PATH)")
    store = FaceStore.open(Path(config.store))
    test_store = FaceStore.open(Path(config.test_store)) if config.test_store else store
    names, test_names = store.expression_names, test_store.expression_names
    _check_model(config.frame.model, names, store)
    frames = expression_frames(store)
    folds = protocol_folds(config, frames,
                           expression_frames(test_store) if config.test_store else None)
    results = []
    for fold in folds:
        console.print(f"[bold]{fold.name}[/bold]: train {len(fold.train):,} frames, validation "
                      f"{len(fold.val):,}, test {len(fold.test):,}", highlight=False)
        results.append(_run_fold(out / "folds" / fold.name, fold, store, test_store, config,
                                 progress))
    ensemble = _ensemble(out, results, store, test_store) if config.ensemble else None
    metrics = _report(out, config, folds, results, names, test_names, frames, ensemble)
    write_run_info(out, stage="classification", config=config, seed=config.seed,
                   data_summary={"store": str(store.path), "test_store": str(test_store.path),
                                 "classes": list(names), "test_classes": list(test_names),
                                 "folds": len(folds), "frames": len(frames)})
    return metrics


def _check_model(model: str, names: tuple[str, ...], store: FaceStore) -> None:
    classes = frame_head_sizes(model).get("expression")
    if classes != len(names):
        raise AffectTrackError(f"{store.path} has {len(names)} expression classes "
                               f"({', '.join(names)}) but model {model!r} has "
                               f"{classes or 'no'} expression outputs; set frame.model to "
                               "one that matches (`affecttrack models` lists them)")


def _run_fold(fold_dir: Path, fold: Fold, store: FaceStore, test_store: FaceStore,
              config: ClassificationConfig, progress: bool) -> dict[str, Any]:
    """Train (or reuse) the fold's model, predict its test frames (or reuse them), score them."""
    _claim_fold(fold_dir, fold, store, test_store)
    result = train_frame_model(store, fold_dir / "model", config.frame, progress,
                               train_frames=fold.train, val_frames=fold.val)
    predictions_path = fold_dir / PREDICTIONS_FILE
    predictions = pd.read_parquet(predictions_path) if predictions_path.is_file() else None
    if predictions is None or _settings_of(predictions) != _settings(config):
        probabilities = expression_probabilities(test_store, result.model_path,
                                                 fold.test["row"].to_numpy(),
                                                 flip=config.test_flip)
        predictions = _prediction_table(fold.test, probabilities, config)
        _write_predictions(predictions_path, predictions)
    metrics = _score(predictions, store, test_store)
    write_json_atomic(fold_dir / "metrics.json", metrics)
    return {"metrics": metrics, "predictions": predictions,
            "train_data": json.loads((fold_dir / "model" / "run.json").read_text())["data"]}


def _prediction_table(test: pd.DataFrame, probabilities: np.ndarray,
                      config: ClassificationConfig) -> pd.DataFrame:
    """Test frames with their labels, each class's probability (`p_<k>`) and the predicted
    class; the scoring settings travel in the table's attributes, so that a table scored
    otherwise (another `test_flip`) is redone rather than reused."""
    table = test[["video", "frame", "subject", "expression"]].reset_index(drop=True)
    for k in range(probabilities.shape[1]):
        table[f"p_{k}"] = probabilities[:, k]
    table["predicted"] = probabilities.argmax(axis=1)
    table.attrs["scoring"] = _settings(config)
    return table


def _settings(config: ClassificationConfig) -> dict[str, Any]:
    return {"test_flip": config.test_flip}


def _settings_of(predictions: pd.DataFrame) -> dict[str, Any] | None:
    return predictions.attrs.get("scoring")


def _probabilities(predictions: pd.DataFrame) -> np.ndarray:
    columns = sorted((c for c in predictions.columns if c.startswith("p_")),
                     key=lambda c: int(c[2:]))
    return predictions[columns].to_numpy()


def _write_predictions(path: Path, predictions: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        predictions.to_parquet(tmp)


def _score(predictions: pd.DataFrame, store: FaceStore, test_store: FaceStore) -> dict[str, Any]:
    return classification_metrics(predictions["expression"].to_numpy(),
                                  predictions["predicted"].to_numpy(),
                                  test_store.expression_names, store.expression_names)


def _ensemble(out: Path, results: list[dict[str, Any]], store: FaceStore,
              test_store: FaceStore) -> dict[str, Any]:
    """The members' mean probabilities on the shared test frames, their prediction and its
    scores (OUT/predictions.parquet)."""
    tables = [result["predictions"] for result in results]
    mean = np.mean([_probabilities(table) for table in tables], axis=0)
    predictions = tables[0].drop(columns=[c for c in tables[0].columns if c.startswith("p_")])
    for k in range(mean.shape[1]):
        predictions[f"p_{k}"] = mean[:, k]
    predictions["predicted"] = mean.argmax(axis=1)
    _write_predictions(out / PREDICTIONS_FILE, predictions)
    return _score(predictions, store, test_store)


def _claim_fold(fold_dir: Path, fold: Fold, store: FaceStore, test_store: FaceStore) -> None:
    """Record the fold's subjects; refuse a folder whose fold was drawn differently, so that a
    changed store, protocol, seed or fraction never reuses models trained on other subjects."""
    plan = {"store": str(store.path), "test_store": str(test_store.path), **fold.subjects()}
    path = fold_dir / SPLIT_FILE
    if path.is_file():
        try:
            previous = json.loads(path.read_text())
        except json.JSONDecodeError:
            raise InputError(path, "unreadable fold record; delete the folder to start afresh") \
                from None
        if previous != plan:
            raise AffectTrackError(f"{fold_dir} holds a fold with other subjects or stores "
                                   "(changed store, protocol, seed or fraction?); use another "
                                   "output folder or delete it")
    write_json_atomic(path, plan)


def _report(out: Path, config: ClassificationConfig, folds: list[Fold],
            results: list[dict[str, Any]], names: tuple[str, ...],
            test_names: tuple[str, ...], frames: pd.DataFrame,
            ensemble: dict[str, Any] | None = None) -> dict[str, Any]:
    """metrics.json, table.md, class_counts.md and the pooled confusion matrices (with an
    ensemble, its scores stand in for the pool: the members share their test frames)."""
    fold_metrics = [result["metrics"] for result in results]
    if ensemble is None:
        pooled_predictions = pd.concat([result["predictions"] for result in results])
        pooled = classification_metrics(pooled_predictions["expression"].to_numpy(),
                                        pooled_predictions["predicted"].to_numpy(), test_names,
                                        names)
    else:
        pooled = ensemble
    summary = summarise_folds(fold_metrics)
    metrics = {"protocol": config.protocol, "classes": list(names),
               "test_classes": list(test_names),
               "folds": {fold.name: m for fold, m in zip(folds, fold_metrics)}, **summary,
               "pooled": pooled, **({"ensemble": ensemble} if ensemble is not None else {})}
    write_json_atomic(out / "metrics.json", metrics)
    confusion = pooled["confusion"]
    title = _title(config)
    for percent, name in ((False, "confusion_counts.png"), (True, "confusion_percent.png")):
        plot_confusion_matrix(np.asarray(confusion["counts"]), confusion["rows"],
                              confusion["columns"], out / name, percent=percent, title=title)
    write_text_atomic(out / "class_counts.md",
                      f"# Frames per class: {title}\n\n"
                      + class_count_table(*_class_counts(config, folds, results, names,
                                                         test_names, frames)))
    write_text_atomic(out / "table.md", _table(config, folds, fold_metrics, summary, pooled,
                                               ensemble))
    return metrics


def _title(config: ClassificationConfig) -> str:
    stores = (f"{Path(config.store).name} -> {Path(config.test_store).name}"
              if config.test_store else Path(str(config.store)).name)
    protocol = {"holdout": "subject hold-out", "kfold": f"{config.folds}-fold subject CV",
                "cross": "cross-dataset"}[config.protocol]
    return f"{stores}, {protocol}"


def _table(config: ClassificationConfig, folds: list[Fold], fold_metrics: list[dict[str, Any]],
           summary: dict[str, Any], pooled: dict[str, Any],
           ensemble: dict[str, Any] | None) -> str:
    if config.ensemble:
        selection = f"each member's 1/{config.folds} of the training subjects"
    elif config.val_fraction > 0:
        selection = f"{config.val_fraction:.0%} of each fold's training subjects"
    else:
        selection = "the test fold itself (as the paper's public code did: optimistic)"
    majority = max(pooled["support"].values()) / pooled["n"]
    flip = " Test faces scored with flip averaging." if config.test_flip else ""
    text = (f"# Expression classification: {_title(config)}\n\n"
            f"Model {config.frame.model}, class balance {config.frame.class_balance}; early "
            f"stopping and checkpoint choice on {selection}.{flip} Always predicting the most "
            f"frequent test class would score {majority:.1%} accuracy.\n\n")
    if ensemble is not None:
        text += (f"**Ensemble of the {len(folds)} members** (mean of their class "
                 f"probabilities): accuracy {ensemble['accuracy']:.1%}, macro-F1 "
                 f"{ensemble['macro_f1']:.3f}. Each member alone:\n\n")
        summary = {**summary, "mean": {**summary["mean"], "recall": ensemble["recall"]},
                   "std": {**summary["std"], "recall": dict.fromkeys(ensemble["recall"])}}
    recall_title = "the ensemble's" if ensemble is not None else "mean ± std over folds"
    return (text + fold_table(fold_metrics, summary, [fold.name for fold in folds])
            + f"\n## Recall per class ({recall_title})\n\n" + recall_table(summary)
            + f"\n{PAPER_NOTE}\n")


def _class_counts(config: ClassificationConfig, folds: list[Fold],
                  results: list[dict[str, Any]], names: tuple[str, ...],
                  test_names: tuple[str, ...],
                  frames: pd.DataFrame) -> tuple[list[str], dict[str, dict[str, float]]]:
    """Rows (the training store's classes, then test classes it lacks) and the count columns;
    with several folds, training and validation counts are means per fold."""
    per_fold = " (mean per fold)" if len(folds) > 1 else ""
    as_train_name = map_expressions(test_names, names)
    test_rows = [names[i] if i >= 0 else test_names[k] for k, i in enumerate(as_train_name)]
    rows = list(names) + [name for name in test_rows if name not in names]

    def counts(labels: pd.Series, label_names: list[str] | tuple[str, ...],
               divide: int = 1) -> dict[str, float]:
        found = labels.value_counts()
        return {name: found.get(k, 0) / divide for k, name in enumerate(label_names)}

    trained = np.zeros(len(names))
    for result in results:
        used = result["train_data"]["train_class_counts"]
        trained[:len(used)] += used
    columns = {
        "in store": counts(frames["expression"], names),
        f"training, after balancing{per_fold}": dict(zip(names, trained / len(folds))),
        f"validation{per_fold}": counts(pd.concat([f.val["expression"] for f in folds]), names,
                                        len(folds)),
        "test" + (" store" if config.protocol == "cross" else ""):
            counts(pd.concat([f.test["expression"] for f in folds]), test_rows),
    }
    return rows, columns
