"""Temperature scaling: the fit, the calibration error, the rescaled head, training's use of it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from store_fixtures import write_face_store

from affecttrack.errors import AffectTrackError, InputError
from affecttrack.features.head_outputs import frame_head_outputs
from affecttrack.models.cnn import faces_to_input
from affecttrack.models.registry import (
    create_frame_model,
    load_model_file,
    save_model_file,
)
from affecttrack.training.calibration import (
    TEMPERATURE_RANGE,
    calibrate_frame_model,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
)
from affecttrack.training.frame import FrameModule, FrameTrainConfig, train_frame_model

TINY_FRAME = {"batch_size": 8, "max_steps": 2, "optimizer": "adam", "lr": 1e-3,
              "precision": "32-true", "augment": False}
RECORD_KEYS = {"temperature", "faces", "ece_before", "ece_after", "nll_before", "nll_after"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_face_store(tmp_path_factory.mktemp("store"))


def softmax(z: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.as_tensor(z, dtype=torch.float64), dim=-1).numpy()


def sampled(temperature: float, n: int = 5000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits and classes drawn from softmax(logits / temperature): a model whose logits are
    right up to the temperature."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 3.0, (n, 5))
    p = softmax(logits / temperature)
    classes = (rng.random((n, 1)) > np.cumsum(p, axis=1)).sum(axis=1)
    return logits, np.minimum(classes, 4)


@pytest.mark.parametrize("true_temperature", [0.6, 2.5])
def test_fit_temperature_recovers_the_temperature_labels_were_drawn_with(
        true_temperature) -> None:
    logits, classes = sampled(true_temperature)
    assert fit_temperature(logits, classes) == pytest.approx(true_temperature, rel=0.1)
    # log-softmax outputs differ from the logits by a constant per row: the same fit
    log_p = np.log(softmax(logits))
    assert fit_temperature(log_p, classes) == pytest.approx(
        fit_temperature(logits, classes), rel=1e-4)


def test_calibrating_over_confident_logits_lowers_ece_and_nll_on_other_faces() -> None:
    logits, classes = sampled(2.5)
    fit, held_out = slice(0, 2500), slice(2500, None)
    temperature = fit_temperature(logits[fit], classes[fit])
    before, after = softmax(logits[held_out]), softmax(logits[held_out] / temperature)
    ece_before = expected_calibration_error(before, classes[held_out])
    ece_after = expected_calibration_error(after, classes[held_out])
    assert ece_before > 0.1 and ece_after < ece_before / 3
    assert (negative_log_likelihood(after, classes[held_out])
            < negative_log_likelihood(before, classes[held_out]))
    assert np.array_equal(before.argmax(1), after.argmax(1))


def test_perfectly_separated_faces_give_a_small_temperature_within_the_range() -> None:
    """Every face right: the likelihood rises without end as T falls; the fit stays finite."""
    logits = np.array([[2.0, 0.0], [0.0, 2.0]] * 10)
    temperature = fit_temperature(logits, np.array([0, 1] * 10))
    assert TEMPERATURE_RANGE[0] <= temperature < 0.2


def expression_model(path, seed: int = 0):
    """An untrained cnn_expr7 file whose head has large weights and a bias (over-confident)."""
    torch.manual_seed(seed)
    network = create_frame_model("cnn_expr7").eval()
    with torch.no_grad():
        network.heads["expression"].weight.mul_(20)
        network.heads["expression"].bias.normal_(0, 2)
    return save_model_file(path, network, kind="frame", name="cnn_expr7",
                           meta={"task": "expression"}), network


def test_the_rescaled_head_gives_the_logits_divided_by_t(store, tmp_path) -> None:
    path, original = expression_model(tmp_path / "frame_model.pt")
    faces = store.index[store.index["row"] >= 0].iloc[:40]     # one face without a class
    record = calibrate_frame_model(path, store, faces["row"].to_numpy(),
                                   faces["expression"].to_numpy())
    labelled = int((faces["expression"] >= 0).sum())
    assert set(record) == RECORD_KEYS and record["faces"] == labelled < len(faces)
    assert record["nll_after"] < record["nll_before"]
    calibrated, info = load_model_file(path, "frame")
    assert info["meta"] == {"task": "expression", "calibration": record}
    x = faces_to_input(store.faces[:32])
    with torch.no_grad():
        expected = original(x)["expression"] / record["temperature"]
        scaled = calibrated(x)["expression"]
    torch.testing.assert_close(scaled, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(scaled.argmax(1), expected.argmax(1))
    # a second call on the calibrated file changes nothing and returns what was recorded
    written = path.read_bytes()
    assert calibrate_frame_model(path, store, faces["row"].to_numpy()[:5],
                                 np.zeros(5, np.int64)) == record
    assert path.read_bytes() == written


def test_calibration_refuses_models_and_faces_it_cannot_use(store, tmp_path) -> None:
    va = save_model_file(tmp_path / "va.pt", create_frame_model("cnn_va"), kind="frame",
                         name="cnn_va")
    with pytest.raises(InputError, match="has no expression head to calibrate"):
        calibrate_frame_model(va, store, np.arange(4), np.zeros(4, np.int64))
    path, _ = expression_model(tmp_path / "expr.pt")
    with pytest.raises(AffectTrackError, match="no faces with an expression class"):
        calibrate_frame_model(path, store, np.arange(4), np.full(4, -1))
    with pytest.raises(AffectTrackError) as refused:
        FrameTrainConfig(calibrate=True)    # task va: no expression head
    assert "calibrate applies to the expression and combined tasks" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_training_with_calibrate_writes_a_calibrated_model_once(store, tmp_path,
                                                                 capsys) -> None:
    config = FrameTrainConfig(**TINY_FRAME, model="cnn_expr7", task="expression",
                              calibrate=True)
    out = tmp_path / "expr"
    result = train_frame_model(store, out, config, progress=False)
    _, info = load_model_file(result.model_path, "frame")
    record = info["meta"]["calibration"]
    val = store.index[(store.index["split"] == "val") & (store.index["row"] >= 0)
                      & (store.index["expression"] >= 0)]
    assert set(record) == RECORD_KEYS and record["faces"] == len(val)
    line = (f"calibration: temperature {record['temperature']:.2f} on {len(val)} validation "
            f"faces; ECE {record['ece_before']:.3f} -> {record['ece_after']:.3f}")
    assert line in capsys.readouterr().out
    rows = val["row"].to_numpy()
    trained = FrameModule.load_from_checkpoint(result.checkpoint, map_location="cpu").model.eval()
    with torch.no_grad():
        logits = trained(faces_to_input(store.faces[rows]))["expression"].double().numpy()
    np.testing.assert_allclose(frame_head_outputs(store, result.model_path, rows)["expression"],
                               softmax(logits / record["temperature"]), atol=1e-5)
    written = result.model_path.read_bytes()
    assert train_frame_model(store, out, config, progress=False) == result
    assert result.model_path.read_bytes() == written
    assert "calibration:" not in capsys.readouterr().out


def test_combined_training_calibrates_on_the_validation_faces_with_a_class(store,
                                                                          tmp_path) -> None:
    index = store.index
    val = index[index["split"] == "val"].copy()
    val.loc[val.index[::2], "expression"] = -1           # half the faces lack a class
    config = FrameTrainConfig(**TINY_FRAME, model="cnn_va_expr7", task="combined",
                              balance="none", calibrate=True)
    result = train_frame_model(store, tmp_path / "combined", config, progress=False,
                               train_frames=index[index["split"] == "train"], val_frames=val)
    _, info = load_model_file(result.model_path, "frame")
    with_class = int(((val["row"] >= 0) & (val["expression"] >= 0)).sum())
    assert info["meta"]["calibration"]["faces"] == with_class < int((val["row"] >= 0).sum())
