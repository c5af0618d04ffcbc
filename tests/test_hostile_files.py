"""Hostile files (issue 12, case 3): a PNG of 69 bytes whose header claims 30000 x 30000 pixels,
images over `--max-pixels`, label texts and names at the edges of what parsers take. Each is one
Problem (or one-line error) naming the file, and the run goes on."""

from __future__ import annotations

import json
import struct
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from cli_runner import run_cli
from PIL import Image

from affecttrack.data import images as images_module
from affecttrack.data.groups import MAX_FRAME, Problem, numbered_stem
from affecttrack.data.images import (
    MAX_PIXELS,
    FaceFinder,
    checked_max_pixels,
    cropped_loader,
    pixel_limit,
    read_grey,
)
from affecttrack.data.sources.affwild2 import prepare_affwild2
from affecttrack.data.sources.ckplus import read_emotion_file
from affecttrack.data.sources.folder import prepare_folder, scan_folder
from affecttrack.data.sources.jaffe import jaffe_photo
from affecttrack.data.sources.registry import SOURCES
from affecttrack.data.sources.videos import read_frame_labels
from affecttrack.data.store import FaceStore
from affecttrack.data.video_frames import decode_frames, probe_video
from affecttrack.errors import AffectTrackError


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A valid PNG header claiming `width` x `height` grey pixels, with almost no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 11, 9)) + chunk(b"IEND", b""))


def _no_decoding(monkeypatch) -> list[str]:
    """Records every OpenCV decode; the header check must come before any."""
    calls: list[str] = []
    monkeypatch.setattr(images_module.cv2, "imread", lambda path, flags: calls.append(path))
    return calls


def _grey(path: Path, side: int, level: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((side, side), level, np.uint8))
    return path


def test_a_69_byte_bomb_is_skipped_unread(tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png())
    calls = _no_decoding(monkeypatch)
    problem = read_grey(bomb)
    assert len(bomb.read_bytes()) < 100 and calls == []
    assert isinstance(problem, Problem) and problem.reason == "too_large"
    assert problem.path == bomb and "\n" not in str(problem)
    assert "900.0 megapixels, over the limit of 50 (--max-pixels 50000000)" in problem.detail


def test_the_limit_is_read_from_the_header_and_can_be_raised(tmp_path, monkeypatch):
    big = tmp_path / "big.png"
    big.write_bytes(bomb_png(8000, 7000))                      # 56 megapixels
    calls = _no_decoding(monkeypatch)
    problem = read_grey(big)
    assert problem.reason == "too_large" and calls == []
    assert problem.detail.startswith("8000 x 7000 = 56.0 megapixels, over the limit of 50")
    with pixel_limit(60_000_000):
        assert read_grey(big).reason == "corrupt_image"        # decoded: its data is missing
        assert read_grey(big, max_pixels=1000).reason == "too_large"
    assert calls == [str(big)] and read_grey(big).reason == "too_large"   # default restored
    assert read_grey(_grey(tmp_path / "small.png", 40), max_pixels=1599).detail.startswith(
        "40 x 40 = 0.0 megapixels, over the limit of 0.001599 (--max-pixels 1599)")


def test_pillows_own_bomb_warning_is_a_skipped_image_too(tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(bomb_png(10000, 9000))                    # over Pillow's 89.5 megapixels
    with pytest.warns(Image.DecompressionBombWarning):
        assert read_grey(big).reason == "too_large"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        problem = read_grey(big)
    assert problem.reason == "too_large" and "90.0 megapixels" in problem.detail


@pytest.mark.parametrize("value", [0, -5, True, 2.5, "many", 10**9])
def test_a_bad_pixel_limit_is_one_line_before_any_image(value):
    for make in (checked_max_pixels, cropped_loader, lambda v: FaceFinder(max_pixels=v),
                 lambda v: pixel_limit(v).__enter__()):
        with pytest.raises(AffectTrackError, match="max_pixels") as caught:
            make(value)
        assert "\n" not in str(caught.value)


def test_the_option_help_names_the_default():
    option = next(o for o in SOURCES["folder"].options if o.name == "max_pixels")
    assert str(MAX_PIXELS) in option.help
    assert {name for name, source in SOURCES.items()
            if option in source.options} == {"affwild2", "ckplus", "jaffe", "folder"}


def _photo_tree(root: Path) -> Path:
    _grey(root / "happy" / "ann_0001.png", 40)
    (root / "happy" / "ann_0002.png").write_bytes(bomb_png())
    _grey(root / "happy" / "ann_0003.png", 64, 90)            # 4096 pixels
    _grey(root / "sad" / "bob_0001.png", 40, 200)
    return root


def test_prepare_folder_skips_the_bomb_counts_it_and_builds_the_store(tmp_path):
    root = _photo_tree(tmp_path / "photos")
    summary = prepare_folder(root, tmp_path / "store", detect=False, progress=False)
    assert summary["skipped"]["too_large"] == {"count": 1, "items": [
        {"file": str(root / "happy" / "ann_0002.png"),
         "problem": "900.0 megapixels, over the limit of 50 (--max-pixels 50000000); "
                    "image skipped"}]}
    store = FaceStore.open(tmp_path / "store")
    assert summary["faces"]["all"] == 3 and store.faces.shape[0] == 3


def test_prepare_folder_command_takes_max_pixels(tmp_path, monkeypatch, capsys):
    root = _photo_tree(tmp_path / "photos")
    code, out, err = run_cli(monkeypatch, capsys, "prepare", "folder", "--root", str(root),
                             "--out", str(tmp_path / "store"), "--no-detect", "--max-pixels",
                             "2000", "--workers", "1")
    assert code == 0, err
    summary = json.loads((tmp_path / "store" / "summary.json").read_text())
    assert {item["file"] for item in summary["skipped"]["too_large"]["items"]} == {
        str(root / "happy" / "ann_0002.png"), str(root / "happy" / "ann_0003.png")}
    assert summary["faces"]["all"] == 2 and "too_large x2" in out
    code, _, err = run_cli(monkeypatch, capsys, "prepare", "folder", "--root", str(root),
                           "--out", str(tmp_path / "other"), "--max-pixels", "0")
    assert code == 2 and err.count("\n") == 1 and "max_pixels" in err
    assert not (tmp_path / "other").exists()


def test_prepare_affwild2_skips_a_bomb_frame(affwild2_tree, tmp_path):
    bomb = affwild2_tree / "cropped_aligned" / "train_a" / "00005.jpg"
    bomb.write_bytes(bomb_png())                 # PNG bytes under a .jpg name: read by content
    summary = prepare_affwild2(affwild2_tree, tmp_path / "store", progress=False)
    assert [item["file"] for item in summary["skipped"]["too_large"]["items"]] == [str(bomb)]
    index = FaceStore.open(tmp_path / "store").index.set_index(["video", "frame"])
    assert index.loc[("train_a", 5), "row"] == -1 and index.loc[("train_a", 6), "row"] >= 0


@pytest.fixture(scope="module")
def model():
    pytest.importorskip("skimage.data")
    from affecttrack import load_model
    return load_model()


def _frames_folder(folder: Path) -> Path:
    from video_fixtures import moving_face_frames
    folder.mkdir()
    face = moving_face_frames(1)[0]
    cv2.imwrite(str(folder / "frame_0001.png"), face)
    (folder / "frame_0002.png").write_bytes(bomb_png())
    cv2.imwrite(str(folder / "frame_0003.png"), face)
    return folder


def test_predict_skips_the_bomb_frame_and_writes_the_summary(model, tmp_path):
    from affecttrack.inference.batch import predict_paths
    frames = _frames_folder(tmp_path / "frames")
    lines: list[str] = []
    predict_paths(model, [frames], tmp_path / "out", report=lines.append)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    [entry] = summary["inputs"]
    assert entry["frames"] == 2 and entry["skipped_images"] == 1
    assert any(line.startswith(str(frames / "frame_0002.png")) and "900.0 megapixels" in line
               for line in lines)


def test_predict_command_takes_max_pixels(model, tmp_path, monkeypatch, capsys):
    frames = _frames_folder(tmp_path / "frames")
    code, out, _ = run_cli(monkeypatch, capsys, "predict", str(frames), "--out",
                           str(tmp_path / "out"), "--max-pixels", "1000")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert code == 1 and summary["inputs"][0]["status"] == "failed"
    assert out.count("over the limit of 0.001 (--max-pixels 1000)") == 3
    assert read_grey(frames / "frame_0001.png").shape == (360, 640)   # the limit ends with it


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e999", "3.5", "   "])
def test_ckplus_emotion_files_that_are_no_class_number_are_bad_labels(text, tmp_path):
    path = tmp_path / "S005_001_00000011_emotion.txt"
    path.write_text(text)
    problem = read_emotion_file(path)
    assert isinstance(problem, Problem) and problem.reason == "bad_label"


def test_video_label_csvs_with_extreme_cells_are_bad_lines(tmp_path):
    path = tmp_path / "clip.csv"
    path.write_text("frame,valence,arousal,expression\n"
                    "0005,0.1,0.2,3\n\u00b2,0.1,0.2,1\n" + "9" * 5000 + ",0.1,0.2,1\n"
                    f"{MAX_FRAME + 1},0.1,0.2,1\n7,0.1,0.2,inf\n8,0.1,0.2,nan\n")
    labels, problems = read_frame_labels(path)
    assert labels.frames.tolist() == [5, 7, 8] and labels.names == ["Fear", None, None]
    assert {problem.reason: problem.detail.split(" (")[0] for problem in problems} == {
        "bad_lines": "3 line(s)", "unknown_label": "2 line(s)"}


def test_frame_numbers_too_large_for_the_store_are_no_numbers(tmp_path, affwild2_tree):
    assert numbered_stem(f"ann_{MAX_FRAME + 1}") == (f"ann_{MAX_FRAME + 1}", None)
    assert numbered_stem(f"ann_{MAX_FRAME}") == ("ann", MAX_FRAME)
    problem = jaffe_photo(Path(f"KA.AN1.{MAX_FRAME + 1}.tiff"))
    assert isinstance(problem, Problem) and problem.reason == "bad_file_name"
    for name in (f"{MAX_FRAME + 1}.jpg", "\u00b2.jpg"):
        _grey(affwild2_tree / "cropped_aligned" / "train_a" / name, 8)
    summary = prepare_affwild2(affwild2_tree, tmp_path / "store", progress=False)
    assert summary["skipped"]["bad_frame_name"]["count"] == 2


def test_a_csv_naming_a_file_the_system_refuses_is_a_missing_file(tmp_path):
    root = _photo_tree(tmp_path / "photos")
    csv = root / "labels.csv"
    csv.write_text("path,label\nhappy/ann_0001.png,happy\n" + "a" * 300 + ".png,sad\n")
    scan = scan_folder(root, cropped_loader(), csv=csv)
    assert [problem.reason for problem in scan.problems] == ["missing_file"]


def _clip(tmp_path: Path, where: Callable[[bytes], int], put: bytes) -> Path:
    """A small mp4 with `put` written over its bytes from `where(bytes)` on."""
    from video_fixtures import blank_frames, write_video
    path = write_video(tmp_path / "clip.mp4", blank_frames(3, (48, 64)))
    data = path.read_bytes()
    start = where(data)
    path.write_bytes(data[:start] + put + data[start + len(put):])
    return path


def test_video_metadata_that_is_no_utf8_is_read(tmp_path):
    path = _clip(tmp_path, lambda data: data.index(b"ftypisom") + 4, b"\xe9som")  # major brand
    assert probe_video(path).width == 64
    assert len(list(decode_frames(path))) == 3


def test_a_video_codec_without_decoder_is_one_line(tmp_path):
    path = _clip(tmp_path, lambda data: data.index(b"stsd") + 16, b"zzzz")  # the codec's tag
    with pytest.raises(AffectTrackError, match="no decoder for its video codec"):
        probe_video(path)
    with pytest.raises(AffectTrackError, match="no decoder"):
        list(decode_frames(path))


def _jpeg_bytes() -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8)
    return cv2.imencode(".jpg", noise)[1].tobytes()


def test_a_jpeg_cut_short_is_a_corrupt_image_not_grey_rows(tmp_path):
    path = tmp_path / "cut.jpg"
    path.write_bytes(_jpeg_bytes()[:-300])
    problem = read_grey(path)
    assert isinstance(problem, Problem) and problem.reason == "corrupt_image"
    assert problem.detail == "truncated image; image skipped"


def test_a_jpeg_with_data_after_its_end_decodes_as_the_whole_image(tmp_path):
    whole, padded = tmp_path / "whole.jpg", tmp_path / "padded.jpg"
    whole.write_bytes(_jpeg_bytes())
    padded.write_bytes(_jpeg_bytes() + b"\0" * 10 + b"maker notes")
    np.testing.assert_array_equal(read_grey(padded), read_grey(whole))
