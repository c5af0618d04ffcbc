"""The generator's CK+, CK+48 and JAFFE layouts: opt-in, deterministic, with the real quirks."""

import hashlib
import re
import sys
from pathlib import Path

import cv2
import pytest
from conftest import PHOTO_SYNTH
from PIL import Image

from affecttrack.cli import main
from affecttrack.data.images import FaceFinder
from affecttrack.errors import AffectTrackError
from affecttrack.synth import SynthConfig, synthesize
from affecttrack.synth.photos import PhotoCounts, write_photo_layouts

TINY = {"train_videos": 1, "val_videos": 1, "frames_per_video": 2, "full_frame_videos": 0}


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_layouts_are_opt_in_and_leave_the_affwild2_tree_alone(synthetic_layouts, tmp_path):
    out, summary = synthetic_layouts
    plain = synthesize(tmp_path / "plain", SynthConfig(**{**PHOTO_SYNTH, "layouts": ()}),
                       progress=False)
    assert "photo_layouts" not in plain
    assert not any((tmp_path / "plain" / name).exists() for name in ("ckplus", "CK+48", "jaffe"))
    assert _digests(tmp_path / "plain" / "affwild2") == _digests(out / "affwild2")
    assert set(summary["photo_layouts"]) == {"ckplus", "ckplus48", "jaffe"}


def test_same_seed_same_files(tmp_path):
    counts = PhotoCounts(2, 2, 1, 1)
    for name in ("one", "two"):
        write_photo_layouts(tmp_path / name, ("ckplus", "ckplus48", "jaffe"), 5, counts)
    assert _digests(tmp_path / "one") == _digests(tmp_path / "two")


def test_ckplus_tree_has_the_real_layout_and_quirks(synthetic_layouts):
    out, summary = synthetic_layouts
    made = summary["photo_layouts"]["ckplus"]
    root = out / "ckplus"
    sequences = sorted(p for p in (root / "cohn-kanade-images").glob("S*/*") if p.is_dir())
    assert len(sequences) == made["sequences"]
    shapes, modes = set(), set()
    for sequence in sequences:
        frames = sorted(sequence.iterdir())
        assert 10 <= len(frames) <= 20
        assert [f.name for f in frames] == [f"{sequence.parent.name}_{sequence.name}_{k:08d}.png"
                                            for k in range(1, len(frames) + 1)]
        image = cv2.imread(str(frames[0]), cv2.IMREAD_UNCHANGED)
        shapes.add(image.shape[:2])
        modes.add(image.ndim)
    assert shapes <= {(490, 640), (480, 640), (480, 720)} and modes == {2, 3}  # grey and colour
    emotions = sorted((root / "Emotion").glob("*/*/*_emotion.txt"))
    assert len(emotions) == made["labelled_sequences"] < made["sequences"]
    for path in emotions:
        assert re.fullmatch(r"   [1-7]\.0000000e\+00\n", path.read_text())
        last = max((root / "cohn-kanade-images" / path.parent.parent.name /
                    path.parent.name).iterdir())
        assert path.name == last.name.replace(".png", "_emotion.txt")
    empty = [p for p in (root / "Emotion").glob("*/*") if p.is_dir() and not any(p.iterdir())]
    assert empty                                    # unlabelled sequences with an empty folder
    assert sum(made["label_counts"].values()) == made["labelled_sequences"]


def test_ck48_and_jaffe_files(synthetic_layouts):
    out, summary = synthetic_layouts
    ck48 = sorted((out / "CK+48").glob("*/*.png"))
    assert len(ck48) == summary["photo_layouts"]["ckplus48"]["images"]
    assert {p.parent.name for p in ck48} <= {"anger", "contempt", "disgust", "fear", "happy",
                                              "sadness", "surprise"}
    assert all(cv2.imread(str(p), cv2.IMREAD_UNCHANGED).shape == (48, 48) for p in ck48)
    assert all(re.fullmatch(r"S\d{3}_\d{3}_\d{8}\.png", p.name) for p in ck48)
    jaffe = sorted((out / "jaffe").iterdir())
    assert all(re.fullmatch(r"(KA|KL)\.(NE|HA|SA|SU|AN|DI|FE)1\.\d+\.tiff", p.name) for p in jaffe)
    images = [Image.open(p) for p in jaffe]
    assert {image.size for image in images} == {(256, 256)}
    assert sum(image.mode == "P" for image in images) == len(jaffe) // 3 > 0


def test_haar_finds_the_drawn_faces(synthetic_layouts):
    out, _ = synthetic_layouts
    finder = FaceFinder()
    frames = sorted((out / "ckplus" / "cohn-kanade-images").glob("*/*/*.png"))[::3]
    photos = sorted((out / "jaffe").glob("*.tiff"))
    for files in (frames, photos):
        found = [not hasattr(finder(path), "reason") for path in files]
        assert sum(found) >= 0.85 * len(files)


def test_unknown_layout_is_a_clear_config_error():
    with pytest.raises(AffectTrackError,
                       match="layouts: .*'affectnet'.* one of ckplus, ckplus48, jaffe"):
        SynthConfig(layouts=("affectnet",))


def test_cli_adds_layouts(tmp_path, monkeypatch, capsys):
    sets = [arg for key, value in TINY.items() for arg in ("--set", f"synth.{key}={value}")]
    monkeypatch.setattr(sys, "argv", ["affecttrack", "synth", str(tmp_path / "out"), *sets,
                                      "--set", "synth.jaffe_subjects=1", "--layout", "jaffe"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code in (0, None)
    assert len(list((tmp_path / "out" / "jaffe").glob("*.tiff"))) == 7 * 2
