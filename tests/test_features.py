"""Feature extraction: the CNN's features and predictions per face, resumable."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from store_fixtures import write_face_store

from affecttrack.errors import InputError
from affecttrack.features.extract import extract_features
from affecttrack.features.store import FeatureStore
from affecttrack.models.cnn import FrameCNN
from affecttrack.models.registry import create_frame_model, save_model_file


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_face_store(tmp_path_factory.mktemp("store"), frames=10)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    model = create_frame_model("cnn_va")
    with torch.no_grad():   # non-trivial normalisation so that eval-mode statistics matter
        model.input_norm.running_mean.fill_(0.4)
        model.input_norm.running_var.fill_(0.05)
    path = tmp_path_factory.mktemp("model") / "frame_model.pt"
    return save_model_file(path, model, kind="frame", name="cnn_va"), model.eval()


def reference(model, store, rows):
    x = torch.from_numpy(store.faces[rows] / 255.0).float().unsqueeze(1)
    with torch.no_grad():
        features = model.forward_features(x)
        return features.numpy(), model.heads["va"](features).numpy()


def test_features_equal_the_models_own(store, model_file, tmp_path) -> None:
    path, model = model_file
    features = extract_features(store, path, tmp_path / "feat", batch_size=16,
                                precision="32-true", progress=False)
    assert features.features.shape == (store.faces.shape[0], 300)
    assert features.frame_predictions.shape == (store.faces.shape[0], 2)
    rows = np.array([0, 5, 13, store.faces.shape[0] - 1])
    want_features, want_va = reference(model, store, rows)
    np.testing.assert_allclose(features.features[rows], want_features, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(features.frame_predictions[rows], want_va, rtol=1e-4, atol=1e-5)
    assert sorted(p.name for p in (tmp_path / "feat").iterdir()) == [
        "features.npy", "frame_predictions.npy", "run.json"]
    run = json.loads((tmp_path / "feat" / "run.json").read_text())
    assert run["stage"] == "features" and run["config"]["precision"] == "32-true"


def test_bf16_features_stay_close(store, model_file, tmp_path) -> None:
    path, model = model_file
    features = extract_features(store, path, tmp_path / "feat", batch_size=32,
                                precision="bf16-mixed", progress=False)
    want, _ = reference(model, store, np.arange(8))
    scale = np.abs(want).max()
    np.testing.assert_allclose(features.features[:8], want, atol=0.05 * scale)


def test_interrupted_extraction_resumes_where_it_stopped(store, model_file, tmp_path,
                                                         monkeypatch) -> None:
    path, _ = model_file
    out = tmp_path / "feat"
    complete = extract_features(store, path, tmp_path / "whole", batch_size=8,
                                precision="32-true", progress=False)
    real_features = FrameCNN.forward_features
    calls: list[int] = []
    fail_after = [2]

    def counting(self, x):
        calls.append(len(x))
        if len(calls) > fail_after[0]:
            raise KeyboardInterrupt
        return real_features(self, x)

    monkeypatch.setattr(FrameCNN, "forward_features", counting)
    with pytest.raises(KeyboardInterrupt):
        extract_features(store, path, out, batch_size=8, precision="32-true", progress=False,
                         chunk_rows=16)
    progress = json.loads((out / "progress.json").read_text())
    assert progress["done_rows"] == 16           # one full chunk of two batches
    with pytest.raises(InputError, match="interrupted"):
        FeatureStore.open(out)
    calls.clear()
    fail_after[0] = 10**6
    resumed = extract_features(store, path, out, batch_size=8, precision="32-true",
                               progress=False, chunk_rows=16)
    np.testing.assert_array_equal(resumed.features, complete.features)
    np.testing.assert_array_equal(resumed.frame_predictions, complete.frame_predictions)
    assert not (out / "progress.json").exists()
    assert sum(calls) == store.faces.shape[0] - 16   # only the rows not done before


def test_finished_store_is_reused_and_predictions_frame(store, model_file, tmp_path) -> None:
    path, _ = model_file
    first = extract_features(store, path, tmp_path / "feat", precision="32-true", progress=False)
    mtime = (tmp_path / "feat" / "features.npy").stat().st_mtime_ns
    again = extract_features(store, path, tmp_path / "feat", precision="32-true", progress=False)
    assert (tmp_path / "feat" / "features.npy").stat().st_mtime_ns == mtime
    val = store.index[store.index["split"] == "val"]
    frame = again.predictions_frame(val)
    assert list(frame.columns) == ["video", "frame", "valence", "arousal"]
    assert len(frame) == (val["row"] >= 0).sum()         # frames without a face are left out
    first_row = val[val["row"] >= 0].iloc[0]
    np.testing.assert_allclose(frame.iloc[0][["valence", "arousal"]].to_numpy(np.float32),
                               first.frame_predictions[first_row["row"]])


def test_expression_model_leaves_nan_predictions(store, tmp_path) -> None:
    path = save_model_file(tmp_path / "expr.pt", create_frame_model("cnn_expr7"), kind="frame",
                           name="cnn_expr7")
    features = extract_features(store, path, tmp_path / "feat", precision="32-true",
                                progress=False)
    assert np.isnan(features.frame_predictions).all() and np.isfinite(features.features).all()


def test_feature_store_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(InputError, match="features.npy: feature store file not found"):
        FeatureStore.open(tmp_path)
    np.save(tmp_path / "features.npy", np.zeros((4, 300), np.float32))
    np.save(tmp_path / "frame_predictions.npy", np.zeros((3, 2), np.float32))
    with pytest.raises(InputError, match="frame_predictions.npy: expected float32 \\(4, 2\\)"):
        FeatureStore.open(tmp_path)
