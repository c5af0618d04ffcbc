"""Prediction on videos, frames and images: the API, the files, bad inputs, resuming."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_cli
from video_fixtures import blank_frames, moving_face_frames, truncate, write_video

from affecttrack import load_model
from affecttrack.errors import AffectTrackError, InputError
from affecttrack.inference.batch import failed_inputs, predict_paths
from affecttrack.inference.results import FramePredictions
from affecttrack.labels import va_from_probabilities

pytest.importorskip("skimage.data")
VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.fixture(scope="module")
def face_video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("videos") / "astronaut.mp4",
                       moving_face_frames(30), fps=25)


def test_predict_video_gives_one_tracked_face_per_frame_with_probabilities(model, face_video):
    predictions = model.predict_video(face_video)
    assert isinstance(predictions, FramePredictions) and predictions.fps == 25
    assert predictions["frame"].tolist() == list(range(1, 31))
    assert predictions["face_id"].tolist() == [0] * 30
    assert predictions["time_s"].iloc[:3].tolist() == pytest.approx([0.0, 0.04, 0.08])
    probabilities = predictions[predictions.probability_columns].to_numpy()
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)
    assert (predictions["expression"] == "Happiness").mean() > 0.8     # she smiles
    assert predictions["score"].notna().sum() == 6                     # detected on 1 frame in 5
    # follows the face: boxes move right by about 3 px a frame
    assert np.polyfit(np.arange(30), predictions["x"].to_numpy(float), 1)[0] == pytest.approx(
        3, abs=0.5)


def test_an_expression_only_model_maps_probabilities_to_valence_arousal(model, face_video):
    predictions = model.predict_video(face_video)
    assert model.va_source == "expression mapping"
    probabilities = predictions[predictions.probability_columns].to_numpy()
    expected = va_from_probabilities(probabilities, model.labels)
    assert np.allclose(predictions[["valence", "arousal"]].to_numpy(), expected, atol=1e-6)
    assert (predictions["valence"] > 0).all()          # a smiling face reads as pleasant


def test_predict_frames_takes_arrays_and_keeps_faceless_frames_as_empty_rows(model):
    frames = moving_face_frames(4) + blank_frames(2)
    predictions = model.predict_frames(np.stack(frames), fps=10)
    assert len(predictions) == 6
    assert predictions["face_id"].isna().tolist() == [False] * 4 + [True] * 2
    assert predictions.loc[4:, ["valence", "happiness"]].isna().all().all()
    assert predictions["expression"].isna().tolist() == [False] * 4 + [True] * 2


def test_predict_faces_reads_ready_crops(model):
    from affecttrack.data.detect import create_detector, detect_largest_face
    crop, _ = detect_largest_face(moving_face_frames(1)[0], create_detector())
    table = model.predict_faces(crop[None])
    assert table["expression"].tolist() == ["Happiness"]


def test_settings_are_checked():
    with pytest.raises(AffectTrackError, match="detect_every"):
        load_model(detect_every=0)


def test_a_batch_writes_every_file_reports_bad_inputs_and_resumes(model, face_video, tmp_path):
    videos = tmp_path / "in"
    videos.mkdir()
    write_video(videos / "clip.mp4", moving_face_frames(12))
    write_video(videos / "nobody.mp4", blank_frames(8))
    (videos / "garbage.mp4").write_bytes(b"not a video at all" * 50)
    (videos / "empty.mov").write_bytes(b"")
    truncate(write_video(videos / "cut.avi", moving_face_frames(40)), 0.5)
    out = tmp_path / "out"
    lines: list[str] = []
    summary = predict_paths(model, [videos, tmp_path / "missing.mp4"], out, annotate=True,
                            report=lines.append)
    status = {Path(entry["input"]).name: entry["status"] for entry in summary["inputs"]}
    assert status == {"missing.mp4": "failed", "clip.mp4": "ok", "cut.avi": "truncated",
                      "empty.mov": "failed", "garbage.mp4": "failed", "nobody.mp4": "no_face"}
    assert {entry["input"] for entry in failed_inputs(summary)} == {
        str(videos / name) for name in ("cut.avi", "empty.mov", "garbage.mp4", "nobody.mp4")
    } | {str(tmp_path / "missing.mp4")}
    for name in ("clip.csv", "clip.txt", "clip.timeline.png", "clip.annotated.mp4", "nobody.csv"):
        assert (out / name).is_file(), name
    assert len((out / "clip.txt").read_text().splitlines()) == 13
    assert set((out / "nobody.txt").read_text().splitlines()[1:]) == {"-5,-5"}
    for name in ("garbage.mp4", "empty.mov", "missing.mp4", "cut.avi"):   # one line each
        assert sum(name in line for line in lines) == 1, (name, lines)
    assert json.loads((out / "summary.json").read_text())["counts"] == summary["counts"]
    assert not list(out.glob("*.tmp"))

    lines.clear()
    again = predict_paths(model, [videos / "clip.mp4"], out, annotate=True, report=lines.append)
    assert again["inputs"][0]["reused"] and "earlier run" in lines[0]


def test_a_folder_of_frames_is_one_video_and_an_image_is_one_frame(model, tmp_path):
    import cv2
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, image in enumerate(moving_face_frames(3), start=1):
        cv2.imwrite(str(frames / f"frame{i}.png"), image)
    (frames / "frame10.png").write_bytes(b"broken")
    cv2.imwrite(str(tmp_path / "photo.jpg"), moving_face_frames(1)[0])
    lines: list[str] = []
    summary = predict_paths(model, [frames, tmp_path / "photo.jpg"], tmp_path / "out", fps=5,
                            report=lines.append)
    by_name = {entry["name"]: entry for entry in summary["inputs"]}
    assert by_name["frames"]["frames"] == 3 and by_name["frames"]["skipped_images"] == 1
    assert any("frame10.png" in line for line in lines)
    table = FramePredictions.read_csv(tmp_path / "out" / "frames.csv")
    assert table["time_s"].tolist() == pytest.approx([0.0, 0.2, 0.4])
    assert by_name["photo"]["frames"] == 1 and by_name["photo"]["status"] == "ok"


def test_the_cli_exits_non_zero_when_an_input_failed(face_video, tmp_path, monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "predict", str(face_video),
                           str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "out"))
    assert code == 1 and "nope.mp4: no such file or folder" in out
    code, _, _ = run_cli(monkeypatch, capsys, "predict", str(face_video),
                         "--out", str(tmp_path / "out2"))
    assert code == 0 and (tmp_path / "out2" / "astronaut.csv").is_file()
    code, _, err = run_cli(monkeypatch, capsys, "predict", "--out", str(tmp_path))
    assert code == 2 and err.count("\n") == 1 and "name videos" in err


def test_a_live_source_streams_rows_to_the_csv(face_video, tmp_path, monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "predict", "--source", str(face_video),
                           "--max-frames", "10", "--out", str(tmp_path))
    assert code == 0, out
    table = FramePredictions.read_csv(tmp_path / "live.csv")
    assert 10 <= table["frame"].max() <= 30 and (tmp_path / "live.timeline.png").is_file()
    assert (table["face_id"] == 0).all()


def test_a_bad_model_file_is_a_one_line_error(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"junk")
    with pytest.raises(InputError, match="model.pt"):
        load_model(bad)


@pytest.mark.skipif(not VIDEOS.is_dir(), reason="shared/data/videos not here")
def test_happiness_rises_where_she_smiles_on_a_real_video(model):
    predictions = model.predict_video(VIDEOS / "WolfgangLanger_Pexels.mp4").main_face()
    assert predictions["frame"].nunique() == 472                 # her face in every frame
    happiness = predictions.set_index("frame")["happiness"]
    # frames 60-200: crying, hand at her face; from 300 on: a broad smile (see the README)
    assert happiness.loc[300:].mean() > happiness.loc[60:200].mean() + 0.2


def test_inputs_with_the_same_name_get_distinct_output_names(tmp_path):
    from affecttrack.inference.frame_sources import collect_inputs
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "clip.mp4").write_bytes(b"x")
    (tmp_path / "a" / "clip.jpg").write_bytes(b"x")
    collected = collect_inputs([tmp_path / "a" / "clip.mp4", tmp_path / "a" / "clip.jpg",
                                str(tmp_path / "b" / "*.mp4"), tmp_path / "notes.txt"])
    assert [item.name for item in collected.inputs] == ["a_clip_mp4", "clip_jpg", "b_clip_mp4"]
    assert [problem.reason for problem in collected.missing] == ["missing_input"]


def test_a_model_with_an_action_unit_head_predicts_unit_probabilities(face_video, tmp_path):
    import torch

    from affecttrack.inference.bundle import load_bundle, make_bundle
    from affecttrack.labels import ACTION_UNITS_2020
    from affecttrack.models.registry import create_model, save_model_file
    torch.manual_seed(0)
    frame = create_model("frame", "cnn_va_expr7_au8").eval()
    units = ["AU1", "AU2", "AU4", "AU5", "AU12", "AU15", "AU20", "AU25"]   # as training named them
    path = save_model_file(tmp_path / "frame_model.pt", frame, kind="frame",
                           name="cnn_va_expr7_au8", meta={"action_units": units})
    make_bundle(path, out=tmp_path / "au.bundle.pt", preprocessing=load_bundle().preprocessing)
    assert load_bundle(tmp_path / "au.bundle.pt").action_units == tuple(units)
    model = load_model(tmp_path / "au.bundle.pt")
    predictions = model.predict_video(face_video)
    assert predictions.action_units == tuple(units)
    assert list(predictions.columns[-len(units):]) == units    # last, after `interpolated`
    assert predictions[units].stack().between(0, 1).all()
    assert list(predictions.faces().columns[-len(units):]) == units
    assert predictions.smooth(5).action_units == tuple(units)
    again = FramePredictions.read_csv(predictions.to_csv_file(tmp_path / "p.csv"))
    assert again.action_units == tuple(units)
    assert np.allclose(again[units].to_numpy(), predictions[units].to_numpy(), atol=1e-4)
    faces = model.predict_faces(np.full((2, 96, 96), 128, np.uint8))
    assert list(faces.columns[-len(units):]) == units
    unnamed = save_model_file(tmp_path / "unnamed.pt", frame, kind="frame",
                              name="cnn_va_expr7_au8")
    assert make_bundle(unnamed, out=tmp_path / "b2.pt").action_units == ACTION_UNITS_2020
