"""`affecttrack explain`: the attributions are right (completeness, locality, the past step that
matters), the maps lie over the pixels they describe, and the command writes every file."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import run_cli
from store_fixtures import write_face_store
from torch import nn
from video_fixtures import blank_frames, moving_face_frames, write_video

from affecttrack.errors import AffectTrackError
from affecttrack.inference.bundle import load_bundle, save_bundle
from affecttrack.interpret.saliency import (
    Target,
    choose_target,
    class_target,
    grad_cam,
    head_outputs,
    integrated_gradients,
    output_change,
)
from affecttrack.interpret.temporal import temporal_importance
from affecttrack.labels import CKPLUS_EXPRESSIONS
from affecttrack.models.cnn import FrameCNN
from affecttrack.models.registry import create_sequence_model

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
FACE_FILES = {"saliency.png", "maps.npz", "filters.png", "explain.json"}


def frame_cnn(heads: dict[str, int], seed: int = 0) -> FrameCNN:
    torch.manual_seed(seed)
    return FrameCNN(heads).eval()


def textured_faces(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 96, 96), dtype=np.uint8)


@pytest.mark.parametrize("baseline", ["mean", "black"])
def test_integrated_gradients_add_up_to_the_output_change(baseline):
    model, faces = frame_cnn({"expression": 8, "va": 2}), textured_faces(1)
    for target in (class_target(5, CKPLUS_EXPRESSIONS), Target("va", 1, "arousal")):
        ig = integrated_gradients(model, faces, target, baseline=baseline, n_steps=16)
        change = output_change(model, faces, target, baseline)
        assert ig.shape == (1, 96, 96)
        np.testing.assert_allclose(ig.sum(axis=(1, 2)), change, rtol=0.02,
                                   atol=0.02 * np.abs(change).max())


def test_grad_cam_is_non_negative_and_lies_over_the_last_convolutions_cells():
    model, faces = frame_cnn({"expression": 8}), textured_faces(2)
    predicted = head_outputs(model, faces)["expression"].argmax(axis=1)
    cam = grad_cam(model, faces, [class_target(k, None) for k in predicted])
    assert cam.shape == (2, 96, 96) and cam.dtype == np.float32
    assert (cam >= 0).all() and cam.max() > 0
    # the 18 x 18 cells are centred on pixels 13.5 + 4 i: they cover pixels 12-83, nothing else
    outside = np.ones((96, 96), bool)
    outside[12:84, 12:84] = False
    assert not cam[:, outside].any()


def test_saliency_stays_on_the_half_of_the_face_that_drives_the_output():
    model = frame_cnn({"va": 2})
    with torch.no_grad():  # the right column of the 2 x 2 quadrant pooling feeds nothing
        model.embedding.weight.view(300, 256, 2, 2)[..., 1] = 0
    faces = textured_faces(2, seed=1)
    ig = np.abs(integrated_gradients(model, faces, Target("va", 0, "valence"), n_steps=16))
    # the left quadrants' cells see up to pixel column 61 (32-pixel receptive fields), no further
    assert ig[:, :, 62:].max() == 0
    assert ig[:, :, :48].sum() > 0.8 * ig.sum()


def test_targets_are_named_as_users_spell_them():
    heads = {"expression": 8, "va": 2}
    assert choose_target(None, heads, CKPLUS_EXPRESSIONS, predicted=5).name == "Happiness"
    assert choose_target("happy", heads, CKPLUS_EXPRESSIONS) == Target("expression", 5,
                                                                       "Happiness")
    assert choose_target("7", heads, CKPLUS_EXPRESSIONS).name == "Surprise"
    assert choose_target("Arousal", heads, None) == Target("va", 1, "arousal")
    assert choose_target(None, {"va": 2}, None) == Target("va", 0, "valence")
    with pytest.raises(AffectTrackError, match="no valence/arousal head"):
        choose_target("valence", {"expression": 8}, CKPLUS_EXPRESSIONS)
    with pytest.raises(AffectTrackError, match="Neutral, Anger"):
        choose_target("boredom", heads, CKPLUS_EXPRESSIONS)


class DelayLine(nn.Module):
    """A toy sequence network whose output at step t reads only the features of step t - 3."""

    def __init__(self, features: int = 300, delay: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.delay = delay
        self.readout = nn.Linear(features, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shifted = nn.functional.pad(x, (0, 0, self.delay, 0))[:, :x.shape[1]]
        return torch.tanh(self.readout(shifted))


def test_temporal_importance_finds_the_one_past_step_that_matters():
    features = np.random.default_rng(0).normal(size=(10, 300)).astype(np.float32)
    importance = temporal_importance(DelayLine(), features, output=1)
    assert importance.shape == (10,)
    assert importance.argmax() == 6 and importance[6] > 0
    assert np.delete(importance, 6).max() == 0


def test_temporal_importance_of_a_gru_measures_frames_against_the_mean_feature():
    model = create_sequence_model("gru1", hidden_sizes=(8,)).eval()
    features = np.random.default_rng(1).normal(size=(6, 300)).astype(np.float32)
    model.standardize_inputs(torch.from_numpy(features[2]), torch.ones(300))
    importance = temporal_importance(model, features)
    assert importance[2] == 0 and (np.delete(importance, 2) > 0).all()


@pytest.fixture(scope="module")
def astronaut_png(tmp_path_factory) -> Path:
    cv2 = pytest.importorskip("cv2")
    data = pytest.importorskip("skimage.data")
    path = tmp_path_factory.mktemp("images") / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return path


def test_the_cli_explains_the_face_of_an_image(astronaut_png, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    code, stdout, err = run_cli(monkeypatch, capsys, "explain", str(astronaut_png),
                                "--steps", "4", "--out", str(out))
    assert code == 0, err
    assert {path.name for path in out.iterdir()} == FACE_FILES
    record = json.loads((out / "explain.json").read_text())
    assert record["frame"] is None and record["face_box"]["w"] > 50
    assert record["target"]["name"] == record["prediction"]["expression"]
    assert set(record["files"].values()) == FACE_FILES - {"explain.json"}
    maps = np.load(out / "maps.npz")
    assert maps["face"].shape == maps["integrated_gradients"].shape == (96, 96)
    assert f"explained: {record['target']['name']}" in stdout


def test_bad_requests_are_one_line_errors(astronaut_png, tmp_path, monkeypatch, capsys):
    blank = tmp_path / "blank.png"
    import cv2
    cv2.imwrite(str(blank), blank_frames(1)[0])
    cases = [(["explain", str(tmp_path / "nope.jpg")], "nope.jpg: file not found"),
             (["explain", str(blank)], "no face found in the image"),
             (["explain", str(astronaut_png), "--frame", "3"], "apply to videos"),
             (["explain", str(astronaut_png), "--target", "valence"], "no valence/arousal head"),
             (["explain", str(astronaut_png), "--sequence-window", "5"], "apply to videos"),
             (["explain"], "name one image or video"),
             (["explain", "--store", str(tmp_path), "--target", "happy"], "--target")]
    for args, message in cases:
        code, _, err = run_cli(monkeypatch, capsys, *args, "--out", str(tmp_path / "out"))
        assert code == 2 and message in err and err.count("\n") == 1, (args, err)


@pytest.fixture(scope="module")
def sequence_bundle(tmp_path_factory) -> Path:
    """The default expression model with a (random) GRU over its features."""
    bundle = load_bundle()
    meta = {**bundle.meta, "sequence": {"name": "gru1", "overrides": {"hidden_sizes": [8]},
                                        "meta": {}}}
    with_sequence = dataclasses.replace(
        bundle, sequence=create_sequence_model("gru1", hidden_sizes=(8,)).eval(), meta=meta)
    return save_bundle(with_sequence, tmp_path_factory.mktemp("bundle") / "b.pt")


def test_a_video_frame_gets_every_file_and_the_importance_of_its_window(
        sequence_bundle, tmp_path, monkeypatch, capsys):
    video = write_video(tmp_path / "face.mp4", blank_frames(2) + moving_face_frames(8))
    out = tmp_path / "out"
    code, _, err = run_cli(monkeypatch, capsys, "explain", str(video), "--frame", "9",
                           "--sequence-window", "6", "--model", str(sequence_bundle),
                           "--steps", "4", "--out", str(out))
    assert code == 0, err
    assert {path.name for path in out.iterdir()} == FACE_FILES | {"temporal.png"}
    temporal = json.loads((out / "explain.json").read_text())["temporal"]
    assert temporal["frames"] == [4, 5, 6, 7, 8, 9] and len(temporal["importance"]) == 6
    assert temporal["output"] == "valence" and temporal["faceless_frame"] is None

    code, _, err = run_cli(monkeypatch, capsys, "explain", str(video), "--frame", "5",
                           "--sequence-window", "6", "--model", str(sequence_bundle),
                           "--steps", "2", "--out", str(out))
    temporal = json.loads((out / "explain.json").read_text())["temporal"]
    assert code == 0 and temporal["frames"] == [3, 4, 5] and temporal["faceless_frame"] == 2

    for frame, message in (("1", "no face found in frame 1"), ("11", "past the end"),
                           ("0", "start at 1")):
        code, _, err = run_cli(monkeypatch, capsys, "explain", str(video), "--frame", frame,
                               "--out", str(out))
        assert code == 2 and message in err and err.count("\n") == 1, err
    code, _, err = run_cli(monkeypatch, capsys, "explain", str(video), "--frame", "5",
                           "--sequence-window", "3", "--out", str(out))
    assert code == 2 and "no sequence network" in err


@pytest.mark.skipif(not (VIDEOS / "WolfgangLanger_Pexels.mp4").is_file(),
                    reason="shared/data/videos not here")
def test_a_frame_of_a_real_video(sequence_bundle, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    video = VIDEOS / "WolfgangLanger_Pexels.mp4"
    code, _, err = run_cli(monkeypatch, capsys, "explain", str(video), "--frame", "20",
                           "--sequence-window", "3", "--model", str(sequence_bundle),
                           "--steps", "4", "--out", str(out))
    assert code == 0, err
    assert {path.name for path in out.iterdir()} == FACE_FILES | {"temporal.png"}
    record = json.loads((out / "explain.json").read_text())
    assert record["frame"] == 20 and record["temporal"]["frames"] == [18, 19, 20]


def test_a_store_gets_per_class_mean_saliency(tmp_path, monkeypatch, capsys):
    store = write_face_store(tmp_path / "store", videos={"a": "train"}, frames=10)
    out = tmp_path / "out"
    code, _, err = run_cli(monkeypatch, capsys, "explain", "--store", str(store.path),
                           "--max-faces", "5", "--group-by", "true", "--steps", "2",
                           "--out", str(out))
    assert code == 0, err
    assert {path.name for path in out.iterdir()} == {"class_saliency.png", "class_maps.npz",
                                                    "filters.png", "explain.json"}
    record = json.loads((out / "explain.json").read_text())
    assert record["faces"] == 5 and sum(record["classes"].values()) == 5
    assert max(record["classes"].values()) == 1       # one face of each of 5 labelled classes
    assert list(record["classes"]) == list(CKPLUS_EXPRESSIONS) and 0 <= record["accuracy"] <= 1
    maps = np.load(out / "class_maps.npz")
    assert maps["integrated_gradients"].shape == (8, 96, 96)
    assert (maps["counts"] > 0).sum() == (maps["integrated_gradients"].max(axis=(1, 2)) > 0).sum()
