"""Photos are photos: independent images get one row per photo and face, no tracking and no
sequence state across them; numbered images are a video's frames; nothing is skipped silently
(issue 12, case 6)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from cli_runner import run_cli
from video_fixtures import blank_frames, moving_face_frames, write_video

from affecttrack import load_model
from affecttrack.inference.batch import predict_paths
from affecttrack.inference.frame_sources import collect_inputs, numbered_frames
from affecttrack.inference.results import FramePredictions

pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.fixture(scope="module")
def gru_bundle(tmp_path_factory) -> Path:
    """A bundle with a valence/arousal frame head and a GRU: state carried over would show."""
    import torch

    from affecttrack.inference.bundle import load_bundle, make_bundle
    from affecttrack.models.registry import create_model, save_model_file
    folder = tmp_path_factory.mktemp("gru")
    torch.manual_seed(0)
    frame = save_model_file(folder / "frame.pt", create_model("frame", "cnn_va_expr7").eval(),
                            kind="frame", name="cnn_va_expr7")
    sequence = create_model("sequence", "gru1", hidden_sizes=(8,)).eval()
    sequence_path = save_model_file(folder / "sequence.pt", sequence, kind="sequence",
                                    name="gru1", overrides={"hidden_sizes": (8,)},
                                    meta={"target": "many_to_one", "window": 100})
    make_bundle(frame, sequence_path, out=folder / "gru.pt",
                preprocessing=load_bundle().preprocessing)
    return folder / "gru.pt"


def _photos(folder: Path, names: dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in names.items():
        cv2.imwrite(str(folder / name), image)
    return folder


def _people(folder: Path) -> Path:
    """Three photos, not numbered: two with the face in different places, one of an empty room."""
    return _photos(folder, {"alice.jpg": moving_face_frames(1)[0],
                            "bob.png": moving_face_frames(1, start=(100, 380))[0],
                            "empty_room.jpg": blank_frames(1)[0]})


@pytest.mark.parametrize("names, frames", [
    (["frame_0001.png", "frame_0002.png", "frame_0010.png"], True),
    (["0001.jpg", "0002.jpg"], True),
    (["img12.png", "img7.png", "IMG3.PNG"], True),
    (["clip_01_frame_0003.png", "clip_01_frame_0004.png"], True),   # the last number counts
    (["alice.jpg", "bob.jpg"], False),                               # no number
    (["frame_0001.png", "frame_0002.jpg"], False),                   # another extension
    (["a1.png", "b2.png"], False),                                   # another prefix
    (["1.png", "01.png"], False),                                    # the same number twice
    (["frame_0001.png"], False),                                     # one image is a photo
    (["KA.AN1.39.tiff", "KM.HA2.5.tiff"], False),                    # JAFFE's photos
])
def test_numbered_names_are_frames(names, frames):
    assert numbered_frames(names) is frames


def test_a_folder_of_photos_is_one_table_with_a_row_per_photo_and_face(model, tmp_path):
    people = _people(tmp_path / "people")
    out = tmp_path / "out"
    lines: list[str] = []
    summary = predict_paths(model, [people], out, report=lines.append)
    entry, = summary["inputs"]
    assert entry["kind"] == "photos" and entry["status"] == "ok"
    assert (entry["frames"], entry["frames_with_face"], entry["faces"]) == (3, 2, 2)
    assert entry["outputs"] == {"csv": "people.csv"}
    assert sorted(path.name for path in out.iterdir() if not path.name.startswith(".")) == [
        "finished.jsonl", "people.csv", "run.json", "summary.json"]   # no plot, no ABAW file
    assert "names not numbered; --frames reads them as one video's frames" in lines[-1]
    table = pd.read_csv(out / "people.csv", keep_default_na=False, na_values=[""])
    assert list(table.columns[:9]) == ["photo", "face", "x", "y", "w", "h", "score", "valence",
                                       "arousal"]
    assert table["photo"].tolist() == [str(people / name)
                                       for name in ("alice.jpg", "bob.png", "empty_room.jpg")]
    assert table["face"].tolist()[:2] == [0, 0]           # no ids carried from photo to photo
    assert table.loc[2, ["face", "valence", "expression"]].isna().all()
    assert (table.loc[:1, "expression"] == "Happiness").all()
    assert table.loc[1, "x"] > table.loc[0, "x"] + 250    # each photo's own detection


def test_photos_are_predicted_each_on_its_own_without_the_sequence_network(gru_bundle,
                                                                            tmp_path):
    """With a GRU in the bundle, a photo's values are the same alone as after other photos,
    and come from the frame network; numbered frames of the same images do go through it."""
    model = load_model(gru_bundle)
    people = _people(tmp_path / "people")
    alone = _photos(tmp_path / "alone", {"bob.png": cv2.imread(str(people / "bob.png"))})
    out = tmp_path / "out"
    summary = predict_paths(model, [people, alone], out, report=lambda line: None)
    assert [entry["va_source"] for entry in summary["inputs"]] == ["frame model"] * 2
    together = pd.read_csv(out / "people.csv").set_index("photo")
    single = pd.read_csv(out / "alone.csv").set_index("photo")
    values = ["valence", "arousal", "happiness"]
    assert np.allclose(together.loc[str(people / "bob.png"), values].to_numpy(float),
                       single.loc[str(alone / "bob.png"), values].to_numpy(float), atol=1e-4)

    frames = _photos(tmp_path / "frames", {f"frame_{i:04d}.png": image for i, image in
                                           enumerate(moving_face_frames(3, step=20), start=1)})
    summary = predict_paths(model, [frames], out, fps=10, report=lambda line: None)
    assert summary["inputs"][0]["kind"] == "frames" and model.va_source == "sequence model"
    table = FramePredictions.read_csv(out / "frames.csv")
    assert table["face_id"].tolist() == [0, 0, 0]          # one tracked face
    assert (out / "frames.timeline.png").is_file() and (out / "frames.txt").is_file()


def test_frames_and_photos_can_be_forced(model, tmp_path, monkeypatch, capsys):
    people = _people(tmp_path / "people")
    numbered = _photos(tmp_path / "numbered", {f"{i:04d}.jpg": image for i, image in
                                               enumerate(moving_face_frames(2), start=1)})
    collected = collect_inputs([people, numbered])
    assert [item.kind for item in collected.inputs] == ["photos", "frames"]
    assert [item.kind for item in collect_inputs([people, numbered], True).inputs] == [
        "frames", "frames"]
    assert [item.kind for item in collect_inputs([people, numbered], False).inputs] == [
        "photos", "photos"]
    code, out, _ = run_cli(monkeypatch, capsys, "predict", str(people), "--frames",
                           "--out", str(tmp_path / "as_frames"))
    assert code == 0, out
    summary = json.loads((tmp_path / "as_frames" / "summary.json").read_text())
    assert summary["inputs"][0]["kind"] == "frames" and summary["inputs"][0]["read_as"] == (
        "--frames")
    code, out, _ = run_cli(monkeypatch, capsys, "predict", str(numbered), "--photos",
                           "--out", str(tmp_path / "as_photos"))
    assert code == 0, out
    assert (tmp_path / "as_photos" / "numbered.csv").read_text().startswith("photo,face,")


def test_images_given_by_name_are_each_a_photo(model, tmp_path):
    people = _people(tmp_path / "people")
    out = tmp_path / "out"
    summary = predict_paths(model, [people / "alice.jpg", people / "empty_room.jpg"], out,
                            report=lambda line: None)
    assert [(entry["name"], entry["kind"], entry["status"]) for entry in summary["inputs"]] == [
        ("alice", "photos", "ok"), ("empty_room", "photos", "no_face")]
    assert pd.read_csv(out / "alice.csv")["photo"].tolist() == [str(people / "alice.jpg")]


def test_a_folder_mixing_videos_and_other_files_lists_every_file_it_skips(model, tmp_path,
                                                                          monkeypatch, capsys):
    folder = tmp_path / "mixed"
    write_video(_photos(folder, {"poster.jpg": moving_face_frames(1)[0]}) / "clip.mp4",
                moving_face_frames(4))
    (folder / "notes.txt").write_text("about the clip")
    (folder / "extras").mkdir()
    (folder / ".DS_Store").write_bytes(b"")
    code, out, _ = run_cli(monkeypatch, capsys, "predict", str(folder), "--out",
                           str(tmp_path / "out"))
    assert code == 0, out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [entry["name"] for entry in summary["inputs"]] == ["clip"]
    assert {(Path(item["file"]).name, item["reason"]) for item in summary["skipped"]} == {
        ("poster.jpg", "image_beside_videos"), ("notes.txt", "not_media"),
        ("extras", "subfolder")}
    for name in ("poster.jpg", "notes.txt", "extras"):
        assert f"{folder / name}: skipped: " in out
    for _ in range(2):   # predicted into itself: its own outputs are not news the second time
        summary = predict_paths(model, [folder], folder, report=lambda line: None)
    assert {Path(item["file"]).name for item in summary["skipped"]} == {
        "poster.jpg", "notes.txt", "extras"}
    assert (folder / "clip.timeline.png").is_file()


def test_a_corrupt_frame_is_counted_and_makes_the_folder_incomplete(model, tmp_path,
                                                                    monkeypatch, capsys):
    frames = _photos(tmp_path / "frames", {f"frame_{i:04d}.png": image for i, image in
                                           enumerate(moving_face_frames(5), start=1)})
    (frames / "frame_0003.png").write_bytes(b"\x89PNG broken")
    code, out, _ = run_cli(monkeypatch, capsys, "predict", str(frames), "--out",
                           str(tmp_path / "out"))
    assert code == 1
    entry, = json.loads((tmp_path / "out" / "summary.json").read_text())["inputs"]
    assert entry["status"] == "incomplete"
    assert (entry["frames"], entry["skipped_images"], entry["frames_with_face"]) == (4, 1, 4)
    assert entry["unreadable"] == [{"file": str(frames / "frame_0003.png"),
                                    "problem": entry["unreadable"][0]["problem"]}]
    assert entry["message"] == (f"{frames}: 1 of 5 images unreadable (listed above); 4 frames "
                                "read, 4 with a face")
    assert f"{frames / 'frame_0003.png'}: " in out
    table = FramePredictions.read_csv(tmp_path / "out" / "frames.csv")
    assert table.loc[table["frame"] == 3, "interpolated"].tolist() == [True]   # flagged


def test_photos_with_an_unreadable_one_are_incomplete(model, tmp_path):
    people = _people(tmp_path / "people")
    (people / "broken.jpg").write_bytes(b"not a jpeg")
    summary = predict_paths(model, [people], tmp_path / "out", report=lambda line: None)
    entry, = summary["inputs"]
    assert entry["status"] == "incomplete" and entry["frames"] == 3
    assert [Path(item["file"]).name for item in entry["unreadable"]] == ["broken.jpg"]
    table = pd.read_csv(tmp_path / "out" / "people.csv")
    assert str(people / "broken.jpg") not in table["photo"].tolist()
