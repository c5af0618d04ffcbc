"""Categorical experiments: class-imbalance remedies, scores, reports, and the protocol runner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from store_fixtures import write_face_store

from affecttrack.data.store import FaceStore
from affecttrack.errors import AffectTrackError
from affecttrack.evaluation.classification import (
    classification_metrics,
    summarise_folds,
)
from affecttrack.evaluation.classification_tables import class_count_table
from affecttrack.evaluation.confusion_plot import plot_confusion_matrix, row_percentages
from affecttrack.labels import CKPLUS_EXPRESSIONS, JAFFE_EXPRESSIONS
from affecttrack.pipeline.classification import ClassificationConfig, run_classification
from affecttrack.training.frame import FrameModule, FrameTrainConfig, train_frame_model
from affecttrack.training.frame_data import FrameSet, balanced_classes
from affecttrack.training.tasks import ExpressionTask, inverse_frequency_weights

TINY = {"model": "cnn_expr7", "task": "expression", "batch_size": 8, "max_steps": 2,
        "optimizer": "adam", "lr": 1e-3, "precision": "32-true", "augment": False}


def subjects_store(path: Path, subjects: int = 12, names: tuple[str, ...] | None = None
                   ) -> FaceStore:
    """A store of `subjects` one-video subjects, all in split "train" (as datasets without an
    official split are stored), labels 0-6 cycling; `names` become the summary's class names."""
    write_face_store(path, videos={f"s{i:02d}": "train" for i in range(subjects)}, frames=15)
    if names is not None:
        summary = json.loads((path / "summary.json").read_text())
        (path / "summary.json").write_text(json.dumps({**summary, "expressions": list(names)}))
    return FaceStore.open(path)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> FaceStore:
    return subjects_store(tmp_path_factory.mktemp("subjects"))


def test_downsampling_cuts_every_class_to_the_rarest_seeded() -> None:
    targets = np.array([0] * 50 + [1] * 7 + [2] * 20 + [4] * 9)
    frames = FrameSet(np.arange(len(targets)) * 3, targets)
    kept = balanced_classes(frames, seed=1)
    assert np.bincount(kept.targets).tolist() == [7, 7, 7, 0, 7]
    assert np.all(np.diff(kept.rows) > 0)                      # store order, cheap reads
    assert np.array_equal(balanced_classes(frames, seed=1).rows, kept.rows)
    assert not np.array_equal(balanced_classes(frames, seed=2).rows, kept.rows)


def test_class_weights_are_inverse_frequency_and_change_the_loss() -> None:
    counts = [60, 20, 0, 20]
    weights = np.array(inverse_frequency_weights(counts, 4))
    assert weights[1] == pytest.approx(3 * weights[0]) and weights[2] == 1.0
    assert np.dot(weights, counts) / sum(counts) == pytest.approx(1.0)   # loss keeps its scale
    logits, target = torch.randn(16, 4, generator=torch.Generator().manual_seed(0)), \
        torch.tensor([0, 1, 3, 0] * 4)
    plain = ExpressionTask(4).loss(logits, target)
    weighted = ExpressionTask(4, class_weights=tuple(weights)).loss(logits, target)
    assert not torch.isclose(plain, weighted)
    module = FrameModule("cnn_expr7", "expression", class_counts=[5, 1, 1, 1, 1, 1, 1])
    assert module.task.class_weights[0] == pytest.approx(module.task.class_weights[1] / 5)


def test_square_root_weights_soften_the_ratio_and_keep_the_scale() -> None:
    counts = [100, 25, 0, 4]
    weights = np.array(inverse_frequency_weights(counts, 4, power=0.5))
    assert weights[1] == pytest.approx(2 * weights[0]) and weights[3] == pytest.approx(
        5 * weights[0])
    assert np.dot(weights, counts) / sum(counts) == pytest.approx(1.0)
    module = FrameModule("cnn_expr7", "expression", class_counts=[4, 1, 1, 1, 1, 1, 1],
                         weight_power=0.5)
    assert module.task.class_weights[1] == pytest.approx(2 * module.task.class_weights[0])


def test_class_balance_is_checked_when_configured() -> None:
    with pytest.raises(AffectTrackError, match="class_balance: 'oversample' is not allowed; "
                                               "expected one of none, downsample"):
        FrameTrainConfig(task="expression", class_balance="oversample")
    with pytest.raises(AffectTrackError, match="expression and combined tasks only"):
        FrameTrainConfig(task="va", class_balance="weights")


def test_frame_training_takes_explicit_frame_tables(store, tmp_path) -> None:
    index = store.index
    train, val = index[index["subject"] < "s08"], index[index["subject"] >= "s10"]
    config = FrameTrainConfig(**TINY, class_balance="downsample")
    train_frame_model(store, tmp_path / "run", config, progress=False, train_frames=train,
                      val_frames=val)
    data = json.loads((tmp_path / "run" / "run.json").read_text())["data"]
    labelled = (train["row"] >= 0) & (train["expression"] >= 0)
    assert data["frames_from"] == "given frame tables"
    assert data["train_frames"] == labelled.sum()
    assert len(set(data["train_class_counts"])) == 1          # downsampled to equal classes
    assert data["val_frames"] == ((val["row"] >= 0) & (val["expression"] >= 0)).sum()


def test_predicting_a_class_the_test_set_lacks_counts_as_an_error() -> None:
    contempt, fear = CKPLUS_EXPRESSIONS.index("Contempt"), CKPLUS_EXPRESSIONS.index("Fear")
    y_true = np.array([JAFFE_EXPRESSIONS.index("Fear")] * 4)
    y_pred = np.array([fear, fear, contempt, contempt])       # CK+ model's classes
    scores = classification_metrics(y_true, y_pred, JAFFE_EXPRESSIONS, CKPLUS_EXPRESSIONS)
    assert scores["accuracy"] == 0.5 and scores["unmapped_fraction"] == 0.5
    assert scores["confusion"]["columns"] == [*JAFFE_EXPRESSIONS, "Contempt"]
    fear_row = scores["confusion"]["counts"][JAFFE_EXPRESSIONS.index("Fear")]
    assert fear_row[JAFFE_EXPRESSIONS.index("Fear")] == 2 and fear_row[-1] == 2
    assert scores["recall"]["Fear"] == 0.5 and scores["recall"]["Anger"] is None
    assert scores["macro_f1"] == pytest.approx(2 / 3)         # Fear: precision 1, recall 0.5


def test_fold_summary_is_mean_and_sample_std() -> None:
    names = ("a", "b")
    folds = [classification_metrics(np.array([0, 1]), np.array(pred), names)
             for pred in ([0, 1], [0, 0], [1, 0])]
    summary = summarise_folds(folds)
    assert summary["mean"]["accuracy"] == pytest.approx(0.5)
    assert summary["std"]["accuracy"] == pytest.approx(0.5)
    assert summarise_folds(folds[:1])["std"]["accuracy"] is None


def test_confusion_figures_and_count_table_are_written(tmp_path) -> None:
    counts = np.array([[8, 2, 0], [1, 3, 1]])
    assert row_percentages(counts)[0].tolist() == [80.0, 20.0, 0.0]
    for percent in (False, True):
        path = plot_confusion_matrix(counts, ["Neutral", "Fear"], ["Neutral", "Fear", "Contempt"],
                                     tmp_path / f"c{percent}.png", percent=percent, title="t")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(AffectTrackError, match="does not match"):
        plot_confusion_matrix(counts, ["a"], ["a", "b", "c"], tmp_path / "bad.png")
    table = class_count_table(["Neutral", "Fear"], {"in store": {"Neutral": 10, "Fear": 4},
                                                    "test": {"Neutral": 2.5}})
    assert "| Neutral | 10 | 2.5 |" in table and "| Fear | 4 | – |" in table
    assert "| **total** | 14 | 2.5 |" in table


def test_holdout_experiment_writes_its_report_and_resumes(store, tmp_path) -> None:
    config = ClassificationConfig(store=str(store.path), protocol="holdout",
                                  holdout_fraction=0.25, val_fraction=0.2,
                                  frame=FrameTrainConfig(**TINY, class_balance="weights"))
    out = tmp_path / "holdout"
    metrics = run_classification(out, config, progress=False)
    for name in ("metrics.json", "table.md", "class_counts.md", "run.json",
                 "confusion_counts.png", "confusion_percent.png"):
        assert (out / name).is_file(), name
    fold = out / "folds" / "fold_01"
    split = json.loads((fold / "split.json").read_text())
    assert len(split["test"]) == 3 and not set(split["test"]) & set(split["train"] + split["val"])
    assert metrics["pooled"]["n"] == metrics["folds"]["fold_01"]["n"]
    assert 0.0 <= metrics["mean"]["accuracy"] <= 1.0
    table = (out / "table.md").read_text()
    assert "| **mean ± std** |" in table and "most frequent test class would score" in table
    assert "training, after balancing" in (out / "class_counts.md").read_text()
    model = fold / "model" / "frame_model.pt"
    trained_at = model.stat().st_mtime_ns
    assert run_classification(out, config, progress=False) == metrics
    assert model.stat().st_mtime_ns == trained_at, "a finished fold was trained again"
    with pytest.raises(AffectTrackError, match="other subjects"):
        run_classification(out, ClassificationConfig(**{**config.__dict__, "seed": 5}),
                           progress=False)


def test_cross_dataset_scores_classes_the_test_store_lacks_as_errors(tmp_path) -> None:
    ckplus = subjects_store(tmp_path / "ckplus", subjects=6, names=CKPLUS_EXPRESSIONS)
    jaffe = subjects_store(tmp_path / "jaffe", subjects=3, names=JAFFE_EXPRESSIONS)
    assert ckplus.expression_names == CKPLUS_EXPRESSIONS
    config = ClassificationConfig(store=str(ckplus.path), test_store=str(jaffe.path),
                                  protocol="cross", val_fraction=0.2,
                                  frame=FrameTrainConfig(**{**TINY, "model": "cnn_expr8"}))
    metrics = run_classification(tmp_path / "cross", config, progress=False)
    predictions = pd.read_parquet(tmp_path / "cross" / "folds" / "fold_01" / "predictions.parquet")
    said_contempt = predictions["predicted"] == CKPLUS_EXPRESSIONS.index("Contempt")
    assert metrics["pooled"]["unmapped_fraction"] == pytest.approx(said_contempt.mean())
    assert metrics["pooled"]["n"] == ((jaffe.index["row"] >= 0)
                                      & (jaffe.index["expression"] >= 0)).sum()
    assert metrics["pooled"]["confusion"]["columns"][-1] == "Contempt"


def test_an_ensemble_scores_the_test_faces_by_its_members_mean_probability(store,
                                                                         tmp_path) -> None:
    config = ClassificationConfig(store=str(store.path), protocol="holdout",
                                  holdout_fraction=0.25, folds=3, ensemble=True, test_flip=True,
                                  frame=FrameTrainConfig(**TINY))
    out = tmp_path / "ensemble"
    metrics = run_classification(out, config, progress=False)
    members = [pd.read_parquet(out / "folds" / f"member_{k:02d}" / "predictions.parquet")
               for k in (1, 2, 3)]
    splits = [json.loads((out / "folds" / f"member_{k:02d}" / "split.json").read_text())
              for k in (1, 2, 3)]
    # Each member validates on its own third of the 9 training subjects and trains on the rest;
    # all test the same 3 held-out subjects.
    assert sorted(sum((split["val"] for split in splits), [])) == sorted(
        splits[0]["train"] + splits[0]["val"])
    assert all(split["test"] == splits[0]["test"] for split in splits)
    columns = [f"p_{k}" for k in range(7)]
    mean = np.mean([member[columns].to_numpy() for member in members], axis=0)
    ensemble = pd.read_parquet(out / "predictions.parquet")
    np.testing.assert_allclose(ensemble[columns].to_numpy(), mean, rtol=1e-6)
    assert (ensemble["predicted"] == mean.argmax(axis=1)).all()
    expected = (ensemble["predicted"] == ensemble["expression"]).mean()
    assert metrics["ensemble"]["accuracy"] == pytest.approx(expected)
    assert metrics["pooled"] == metrics["ensemble"]
    table = (out / "table.md").read_text()
    assert "Ensemble of the 3 members" in table and "flip averaging" in table
    with pytest.raises(AffectTrackError, match="ensemble applies to the holdout and cross"):
        ClassificationConfig(store="s", protocol="kfold", ensemble=True)


def test_flip_averaging_is_the_mean_of_a_face_and_its_mirror(store, tmp_path) -> None:
    from affecttrack.features.head_outputs import frame_head_outputs
    from affecttrack.models.cnn import faces_to_input, head_probabilities
    from affecttrack.models.registry import load_model_file
    frames = store.index[store.index["row"] >= 0]
    result = train_frame_model(store, tmp_path / "m", FrameTrainConfig(**TINY), progress=False,
                               train_frames=frames[:100], val_frames=frames[100:])
    rows = np.array([4, 0, 9])
    flipped = frame_head_outputs(store, result.model_path, rows, flip=True)["expression"]
    network, _ = load_model_file(result.model_path, "frame")
    with torch.inference_mode():
        x = faces_to_input(store.faces[rows])
        plain = head_probabilities(network(x))["expression"]
        mirror = head_probabilities(network(x.flip(-1)))["expression"]
    np.testing.assert_allclose(flipped, ((plain + mirror) / 2).numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(flipped, plain.numpy())


def test_a_model_whose_classes_do_not_match_the_store_is_refused(tmp_path) -> None:
    ckplus = subjects_store(tmp_path / "ckplus", subjects=4, names=CKPLUS_EXPRESSIONS)
    config = ClassificationConfig(store=str(ckplus.path), frame=FrameTrainConfig(**TINY))
    with pytest.raises(AffectTrackError, match="8 expression classes.*cnn_expr7"):
        run_classification(tmp_path / "out", config, progress=False)
    with pytest.raises(AffectTrackError, match="test_store"):
        ClassificationConfig(store="s", protocol="cross")


@pytest.mark.slow
def test_kfold_on_a_prepared_synthetic_store_tests_every_frame_once(tmp_path) -> None:
    from affecttrack.data.sources.affwild2 import prepare_affwild2
    from affecttrack.synth import SynthConfig, synthesize
    synthesize(tmp_path / "synth", SynthConfig(train_videos=6, val_videos=2, frames_per_video=60,
                                               full_frame_videos=0), progress=False)
    prepare_affwild2(tmp_path / "synth" / "affwild2", tmp_path / "store", progress=False)
    store = FaceStore.open(tmp_path / "store")
    config = ClassificationConfig(store=str(store.path), protocol="kfold", folds=3,
                                  frame=FrameTrainConfig(**{**TINY, "max_steps": 4},
                                                         class_balance="downsample"))
    metrics = run_classification(tmp_path / "kfold", config, progress=False)
    labelled = store.index[(store.index["row"] >= 0) & (store.index["expression"] >= 0)]
    assert metrics["pooled"]["n"] == len(labelled)
    tested = [subject for name in metrics["folds"] for subject in json.loads(
        (tmp_path / "kfold" / "folds" / name / "split.json").read_text())["test"]]
    assert sorted(tested) == sorted(labelled["subject"].unique())
    assert metrics["classes"] == list(store.expression_names)
