"""Categories in valence/arousal space: the two maps, per-category statistics, the report that
compares a two-headed model's heads, the category figure, and extending a categorical store."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from cli_runner import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st
from store_fixtures import write_face_store

from affecttrack.data.sources.folder import prepare_folder
from affecttrack.data.store import FaceStore
from affecttrack.errors import AffectTrackError, InputError
from affecttrack.evaluation.va_mapping import (
    category_centroids,
    category_statistics,
    mapping_report,
    nearest_centroid,
    probabilities_to_va,
)
from affecttrack.evaluation.va_mapping_plot import plot_category_map, plot_category_maps
from affecttrack.features.head_outputs import frame_head_outputs
from affecttrack.labels import AFFWILD2_EXPRESSIONS, EXPRESSION_CENTROIDS, EXPRESSION_VA
from affecttrack.models.registry import create_frame_model, save_model_file
from affecttrack.pipeline.extend import extend_with_va

unit = st.floats(-1.0, 1.0, allow_nan=False)
# Centroids on a 0.001 grid: distinct ones are then far enough apart for distances to tell them
# apart (two that differ by a subnormal number are one point to any float distance).
grid = st.integers(-1000, 1000).map(lambda i: i / 1000)
centroid_sets = st.lists(st.tuples(grid, grid), min_size=1, max_size=8, unique=True).map(
    lambda points: np.array(points, dtype=np.float64))
NAMES = AFFWILD2_EXPRESSIONS


# --- the two maps ---------------------------------------------------------------------------

@given(centroid_sets)
def test_a_point_at_a_centroid_maps_to_that_centroid(centroids):
    assert nearest_centroid(centroids[:, 0], centroids[:, 1], centroids).tolist() == list(
        range(len(centroids)))


@given(centroid_sets, st.data())
def test_one_hot_probabilities_give_the_centroid(centroids, data):
    k = data.draw(st.integers(0, len(centroids) - 1))
    assert np.allclose(probabilities_to_va(np.eye(len(centroids))[k], centroids), centroids[k])


@given(centroid_sets, st.data())
def test_probabilities_stay_within_the_centroids_box(centroids, data):
    weights = np.array(data.draw(st.lists(st.floats(0, 1), min_size=len(centroids),
                                          max_size=len(centroids))))
    probabilities = weights / weights.sum() if weights.sum() > 0 else np.eye(len(centroids))[0]
    va = probabilities_to_va(probabilities, centroids)
    assert np.all(va >= centroids.min(axis=0) - 1e-9) and np.all(va <= centroids.max(axis=0) + 1e-9)


def test_a_class_without_centroid_is_never_chosen_and_its_probability_is_left_out():
    centroids = np.array([[0.0, 0.0], [np.nan, np.nan], [0.5, 0.5]])
    assert nearest_centroid(np.array([0.1, 0.4, np.nan]), np.array([0.0, 0.4, 0.0]),
                            centroids).tolist() == [0, 2, -1]
    assert np.allclose(probabilities_to_va(np.array([0.25, 0.5, 0.25]), centroids), [0.25, 0.25])
    with pytest.raises(AffectTrackError, match="no centroid"):
        nearest_centroid(0.0, 0.0, np.full((2, 2), np.nan))


# --- statistics -----------------------------------------------------------------------------

def test_statistics_per_category():
    stats = category_statistics(np.array([0.0, 0.4, -0.5]), np.array([0.0, 0.3, 0.5]),
                                np.array([4, 4, 1]), NAMES)
    assert stats["category"].tolist() == list(NAMES)
    happy = stats.set_index("category").loc["Happiness"]
    assert happy["n"] == 2 and np.allclose(happy[["valence_mean", "arousal_mean"]], [0.2, 0.15])
    assert np.allclose(happy[["valence_std", "arousal_std", "distance_mean"]], [0.2, 0.15, 0.25])
    assert stats.set_index("category").loc["Anger", "valence_std"] == 0
    assert stats.set_index("category").loc["Fear", "n"] == 0
    assert np.isnan(category_centroids(stats)[3]).all()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(unit, unit, st.integers(0, 6)), min_size=1, max_size=30),
       st.lists(st.tuples(st.sampled_from([np.nan, 0.3]), st.sampled_from([np.nan, -0.2]),
                          st.integers(-1, 6)), max_size=10))
def test_statistics_ignore_nan_and_unlabelled_points(points, noise):
    noise = [(v, a, c) for v, a, c in noise if np.isnan(v) or np.isnan(a) or c == -1]
    clean = np.array(points, dtype=np.float64)
    both = np.array(points + noise, dtype=np.float64)
    expected = category_statistics(clean[:, 0], clean[:, 1], clean[:, 2], NAMES)
    got = category_statistics(both[:, 0], both[:, 1], both[:, 2], NAMES)
    pd.testing.assert_frame_equal(got, expected)


def test_a_class_index_beyond_the_names_is_an_error():
    with pytest.raises(AffectTrackError, match="below 7"):
        category_statistics(np.zeros(2), np.zeros(2), np.array([0, 7]), NAMES)


# --- the report -----------------------------------------------------------------------------

def _labelled_frames(n_per_class: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    classes = np.repeat(np.arange(len(NAMES)), n_per_class)
    return EXPRESSION_CENTROIDS[classes] + rng.normal(0, 0.03, (len(classes), 2)), classes


def test_report_when_both_heads_agree_with_the_labels():
    va, classes = _labelled_frames()
    probabilities = np.eye(len(NAMES))[classes]
    report = mapping_report(va, classes, va, probabilities, NAMES)
    json.dumps(report, allow_nan=False)
    assert report["head_agreement"]["agreement"] == 1.0
    assert report["head_agreement"]["cohen_kappa"] == pytest.approx(1.0)
    mapped = report["va_to_category"]
    assert mapped["expression_head"]["accuracy"] == mapped["va_head_via_centroids"]["accuracy"] == 1
    assert report["category_to_va"]["va_head"]["mean_ccc"] == 1.0
    assert report["category_to_va"]["expression_head_via_centroids"]["mean_ccc"] > 0.95
    labels = {row["category"]: row for row in report["centroids"]["labels"]}
    assert labels["Sadness"]["valence_mean"] == pytest.approx(EXPRESSION_VA["Sadness"][0], abs=0.03)


def test_report_when_the_heads_disagree():
    va, classes = _labelled_frames()
    wrong = (classes + 1) % len(NAMES)
    report = mapping_report(va, classes, va, np.eye(len(NAMES))[wrong], NAMES)
    assert report["head_agreement"]["agreement"] == 0.0
    assert report["head_agreement"]["cohen_kappa"] < 0
    assert report["va_to_category"]["expression_head"]["accuracy"] == 0.0
    assert report["va_to_category"]["va_head_via_centroids"]["accuracy"] == 1.0
    assert report["category_to_va"]["expression_head_via_centroids"]["mean_ccc"] < 0.5


def test_report_parts_without_their_labels_are_none():
    va, classes = _labelled_frames(5)
    probabilities = np.eye(len(NAMES))[classes]
    report = mapping_report(None, None, va, probabilities, NAMES)
    assert report["centroids"]["labels"] is None and report["centroids"]["predictions"]
    assert report["head_agreement"] is report["va_to_category"] is report["category_to_va"] is None
    only_classes = mapping_report(np.full_like(va, np.nan), classes, va, probabilities, NAMES)
    assert only_classes["va_to_category"] is None
    with pytest.raises(AffectTrackError, match="probabilities"):
        mapping_report(va, classes, va, probabilities[:, :3], NAMES)


# --- figures --------------------------------------------------------------------------------

def test_category_figures_are_written(tmp_path):
    va, classes = _labelled_frames(10)
    classes[:3] = -1
    path = plot_category_map(va[:, 0], va[:, 1], classes, NAMES, tmp_path / "map.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    both = plot_category_maps(va, classes, va[::-1], classes, NAMES, tmp_path / "both.png")
    assert both.stat().st_size > 10_000
    with pytest.raises(AffectTrackError, match="no point"):
        plot_category_map(np.full(3, np.nan), np.zeros(3), np.zeros(3), NAMES, tmp_path / "x.png")


# --- extending a categorical store ----------------------------------------------------------

@pytest.fixture
def categorical_store(tmp_path):
    """The tiny store with its valence/arousal removed: expressions only, like CK+."""
    store = write_face_store(tmp_path / "store", frames=14)
    index = store.index.assign(valence=np.float32(np.nan), arousal=np.float32(np.nan))
    index.to_parquet(store.path / "index.parquet")
    return FaceStore.open(store.path)


def _rebuilt(out, tmp_path):
    prepare_folder(out, tmp_path / "extended", csv=out / "labels.csv", detect=False,
                   progress=False)
    return FaceStore.open(tmp_path / "extended")


def _by_face(store: FaceStore) -> pd.DataFrame:
    """Labelled faces keyed by (subject, frame), the pixels summarised by their sum."""
    faces = store.index[store.index["row"] >= 0].copy()
    faces["pixels"] = [int(store.faces[row].sum(dtype=np.int64)) for row in faces["row"]]
    faces["name"] = [store.expression_names[k] if k >= 0 else "" for k in faces["expression"]]
    return faces.set_index(["subject", "frame"]).sort_index()


def test_extend_round_trip_gives_each_face_its_category_centroid(categorical_store, tmp_path):
    record = extend_with_va(categorical_store.path, tmp_path / "out",
                            progress=False)
    assert record["va_source"] == {"centroid": 36}
    assert record["left_out"] == {"unlabelled_face": 3, "labelled_without_face": 3}
    rebuilt = _by_face(_rebuilt(tmp_path / "out", tmp_path))
    original = _by_face(categorical_store)
    original = original[original["name"] != ""]
    assert rebuilt.index.equals(original.index)
    assert (rebuilt["name"] == original["name"]).all()
    assert (rebuilt["pixels"] == original["pixels"]).all()
    centroids = np.array([EXPRESSION_VA[name] for name in rebuilt["name"]])
    assert np.allclose(rebuilt[["valence", "arousal"]], centroids, atol=1e-6)
    assert (rebuilt["split"] == original["split"]).all()


def test_extend_keeps_annotated_values(tmp_path):
    store = write_face_store(tmp_path / "store", frames=14)
    record = extend_with_va(store.path, tmp_path / "out", progress=False)
    assert record["va_source"] == {"label": 36}
    table = pd.read_csv(tmp_path / "out" / "labels.csv")
    assert set(table.columns) >= {"path", "label", "valence", "arousal", "subject", "va_source"}
    faces = store.index[(store.index["row"] >= 0) & store.index["valence"].notna()]
    assert np.allclose(table["valence"], faces["valence"], atol=1e-6)


def test_extend_with_a_model_uses_its_valence_arousal_head(categorical_store, tmp_path):
    torch.manual_seed(0)
    model = save_model_file(tmp_path / "frame_model.pt", create_frame_model("cnn_va_expr7"),
                            kind="frame", name="cnn_va_expr7")
    record = extend_with_va(categorical_store.path, tmp_path / "out", model=model,
                            progress=False)
    assert record["va_source"] == {"model": 39} and record["left_out"]["unlabelled_face"] == 0
    rows = categorical_store.index["row"][categorical_store.index["row"] >= 0].to_numpy()
    expected = np.clip(frame_head_outputs(categorical_store, model, rows)["va"], -1, 1)
    rebuilt = _rebuilt(tmp_path / "out", tmp_path)
    assert np.allclose(rebuilt.index[["valence", "arousal"]], expected, atol=1e-6)


def test_extend_refuses_a_model_without_valence_arousal_head(categorical_store, tmp_path):
    model = save_model_file(tmp_path / "expr.pt", create_frame_model("cnn_expr7"), kind="frame",
                            name="cnn_expr7")
    with pytest.raises(InputError, match="no valence/arousal head"):
        extend_with_va(categorical_store.path, tmp_path / "out", model=model,
                       progress=False)


def test_extend_command_resumes_and_refuses_another_stores_folder(categorical_store, tmp_path,
                                                                   monkeypatch, capsys):
    out = tmp_path / "out"
    code, stdout, _ = run_cli(monkeypatch, capsys, "extend", str(categorical_store.path),
                              "--out", str(out))
    assert code == 0 and "36 faces (36 from centroid)" in stdout and "prepare folder" in stdout
    (out / "images" / "train_a_00001.png").unlink()
    record = extend_with_va(categorical_store.path, out, progress=False)
    assert record["images_written"] == 1 and record["complete"]
    other = write_face_store(tmp_path / "other", frames=3)
    code, _, stderr = run_cli(monkeypatch, capsys, "extend", str(other.path), "--out", str(out))
    assert code == 2 and "another store" in stderr and len(stderr.strip().splitlines()) == 1
