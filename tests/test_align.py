"""Face alignment by the eyes: level eyes at fixed points of the crop on a real face (upright and
tilted), the box crop kept and counted where there is no face, the setting recorded by the store
and carried by the bundle so that prediction crops exactly as training did, and a one-line
message when the landmark model is not installed."""

from __future__ import annotations

import functools
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from cli_runner import run_cli

from affecttrack.data import align
from affecttrack.data.align import (
    ALIGNMENT,
    MISSING_MODEL,
    EyeAligner,
    Eyes,
    aligner_for,
    checked_alignment,
    crop_face,
)
from affecttrack.data.detect import (
    FaceBox,
    FaceDetector,
    create_detector,
    crop_box,
    to_grey,
)
from affecttrack.data.images import FaceFinder
from affecttrack.data.sources.folder import prepare_folder
from affecttrack.data.store import FaceStore
from affecttrack.errors import AffectTrackError
from affecttrack.inference.bundle import load_bundle, make_bundle, preprocessing_for
from affecttrack.models.registry import create_model, save_model_file
from affecttrack.runinfo import write_run_info

data = pytest.importorskip("skimage.data")

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "expressions-in-the-wild"
WILD = ("Aaron_Eckhart_0001.jpg", "AJ_Cook_0001.jpg", "facial-expressions_2868588k.jpg")
FACE_CENTRE = (225, 110)  # between the astronaut's eyes, roughly
BACKGROUND = FaceBox(380, 20, 107, 107)  # the astronaut photo's upper right: no face


def astronaut(angle: float = 0.0) -> np.ndarray:
    """skimage's astronaut photo (Eileen Collins) in grey, turned `angle` degrees
    anticlockwise about her face."""
    grey = to_grey(np.ascontiguousarray(data.astronaut()[:, :, ::-1]))
    turn = cv2.getRotationMatrix2D(FACE_CENTRE, angle, 1.0)
    return cv2.warpAffine(grey, turn, grey.shape[::-1], borderMode=cv2.BORDER_REPLICATE)


@functools.cache
def default_detector() -> FaceDetector:
    return create_detector()  # about a second to make: made once


def largest_box(grey: np.ndarray) -> FaceBox:
    faces = default_detector().detect(grey)
    assert faces, "the default detector finds the face"
    return faces[0]


def eyes_in_crop(crop: np.ndarray) -> Eyes:
    """The eyes found afresh in a 96-pixel crop, in its pixels: the crop is enlarged 3 times so
    that the detector and the landmark model see a face of the size they know."""
    big = cv2.resize(crop, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    eyes = aligner_for(ALIGNMENT).find_eyes(big, largest_box(big))
    assert isinstance(eyes, Eyes), eyes
    return Eyes(left=(eyes.left + 0.5) / 3 - 0.5, right=(eyes.right + 0.5) / 3 - 0.5)


@pytest.mark.parametrize("angle", [0, 20])
def test_aligned_eyes_are_level_and_at_the_fixed_points(angle):
    grey = astronaut(angle)
    box = largest_box(grey)
    before = aligner_for(ALIGNMENT).find_eyes(grey, box)
    assert isinstance(before, Eyes)
    assert abs(before.roll + angle) < 6  # the photo's own ~3 degrees, plus the turn
    crop, unaligned = crop_face(grey, box, 0.1, 96, ALIGNMENT)
    assert unaligned is None and crop.shape == (96, 96) and crop.dtype == np.uint8
    after = eyes_in_crop(crop)
    assert abs(after.roll) < 3
    half = ALIGNMENT["eye_distance"] / 2
    for eye, x in ((after.left, ALIGNMENT["eyes_x"] - half), (after.right,
                                                              ALIGNMENT["eyes_x"] + half)):
        assert np.allclose(eye, [x * 96 - 0.5, ALIGNMENT["eyes_y"] * 96 - 0.5], atol=3)


def test_a_box_crop_leaves_the_tilt_that_alignment_removes():
    grey = astronaut(20)
    box = largest_box(grey)
    assert eyes_in_crop(crop_box(grey, box, 0.1)).roll < -12


@pytest.mark.parametrize("image, box", [
    (astronaut(), BACKGROUND),
    (np.random.default_rng(0).integers(0, 256, (300, 300), dtype=np.uint8),
     FaceBox(50, 50, 150, 150)),
    (np.full((300, 300), 128, np.uint8), FaceBox(50, 50, 150, 150)),
], ids=["background", "noise", "flat"])
def test_a_box_without_a_face_falls_back_to_the_box_crop(image, box):
    crop, unaligned = crop_face(image, box, 0.1, 96, ALIGNMENT)
    assert unaligned is not None and unaligned.startswith("no landmarks")
    assert np.array_equal(crop, crop_box(image, box, 0.1))


def test_implausible_eyes_are_refused():
    box = FaceBox(100, 100, 100, 100)
    level = Eyes(left=np.array([130.0, 140.0]), right=np.array([170.0, 140.0]))
    assert align._implausible(level, box) is None
    tilted = Eyes(left=np.array([130.0, 120.0]), right=np.array([160.0, 160.0]))
    assert "tilted 53 degrees" in align._implausible(tilted, box)
    close = Eyes(left=np.array([145.0, 140.0]), right=np.array([155.0, 140.0]))
    assert "10 px apart in a 100 px box" in align._implausible(close, box)
    low = Eyes(left=np.array([130.0, 180.0]), right=np.array([170.0, 180.0]))
    assert "outside the box's upper part" in align._implausible(low, box)


def test_alignment_settings_are_checked():
    assert checked_alignment(dict(ALIGNMENT)) == ALIGNMENT
    for bad, message in (({**ALIGNMENT, "method": "eyes_68"}, "unknown face alignment 'eyes_68'"),
                         ({**ALIGNMENT, "eyes_y": 1.5}, "eyes_y must be a fraction"),
                         ({**ALIGNMENT, "scale": 2}, "settings .* should be"),
                         (True, "unknown face alignment True")):
        with pytest.raises(AffectTrackError, match=message):
            checked_alignment(bad)


def test_a_missing_landmark_model_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(align, "find_spec", lambda name: None)
    monkeypatch.setattr(align, "_threads", threading.local())  # no aligner made before
    with pytest.raises(AffectTrackError) as error:
        EyeAligner()
    assert str(error.value) == MISSING_MODEL
    with pytest.raises(AffectTrackError, match="needs the landmark model"):
        FaceFinder(align=True)
    FaceFinder()  # without alignment nothing needs it
    (tmp_path / "photos" / "happy").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "photos" / "happy" / "a_0001.png"), astronaut())
    code, _, err = run_cli(monkeypatch, capsys, "prepare", "folder", "--root",
                           str(tmp_path / "photos"), "--out", str(tmp_path / "store"), "--align")
    assert code == 2 and err == f"affecttrack: error: {MISSING_MODEL}\n"


class FalseFaces:
    """The default detector, plus a false face in the middle of an image where it finds none:
    what a detector's false positive hands to the aligner."""

    name = "false_faces"

    def detect(self, grey: np.ndarray) -> list[FaceBox]:
        height, width = grey.shape
        return default_detector().detect(grey) or [FaceBox(width // 4, height // 4, width // 2,
                                                   height // 2)]


@pytest.fixture
def aligned_store(tmp_path, monkeypatch):
    """A folder store prepared with alignment: the astronaut (aligned) and a brick wall where
    the detector is made to find a false face (kept as a box crop and counted)."""
    monkeypatch.setattr("affecttrack.data.images.create_detector", lambda name: FalseFaces())
    root = tmp_path / "photos"
    for folder, name, image in (("happy", "astronaut_0001.png", astronaut()),
                                ("neutral", "wall_0001.png", data.brick())):
        (root / folder).mkdir(parents=True)
        cv2.imwrite(str(root / folder / name), image)
    summary = prepare_folder(root, tmp_path / "store", align=True, progress=False)
    return root, FaceStore.open(tmp_path / "store"), summary


def test_a_store_records_the_alignment_and_counts_the_fallbacks(aligned_store):
    root, store, summary = aligned_store
    assert summary["settings"]["align"] == ALIGNMENT and summary["settings"]["margin"] == 0.1
    assert summary["faces"]["all"] == 2 and summary["skipped"] == {}
    (item,) = summary["fallbacks"]["unaligned"]["items"]
    assert summary["fallbacks"]["unaligned"]["count"] == 1
    assert item["file"] == str(root / "neutral" / "wall_0001.png")
    assert "no landmarks" in item["problem"] and "box crop kept" in item["problem"]
    rows = store.index.set_index("video")["row"]
    grey = astronaut()
    aligned, _ = crop_face(grey, largest_box(grey), 0.1, 96, ALIGNMENT)
    assert np.array_equal(store.images([rows["happy/astronaut"]])[0], aligned)
    wall = data.brick()
    box = FaceBox(wall.shape[1] // 4, wall.shape[0] // 4, wall.shape[1] // 2, wall.shape[0] // 2)
    assert np.array_equal(store.images([rows["neutral/wall"]])[0], crop_box(wall, box, 0.1))


def trained_on(store: FaceStore, folder: Path) -> Path:
    """A frame model file whose run.json names `store`, as training writes them."""
    model = create_model("frame", "cnn_expr8").eval()
    write_run_info(folder, stage="frame", config={}, seed=0,
                   data_summary={"store": str(store.path)})
    return save_model_file(folder / "frame_model.pt", model, kind="frame", name="cnn_expr8")


def test_a_bundle_takes_the_alignment_its_model_was_trained_with(aligned_store, tmp_path,
                                                                   monkeypatch, capsys):
    _, store, _ = aligned_store
    frame = trained_on(store, tmp_path / "run" / "frame")
    out = tmp_path / "aligned.pt"
    code, stdout, _ = run_cli(monkeypatch, capsys, "bundle", "--frame", str(frame),
                              "--out", str(out))
    assert code == 0 and "aligned by the eyes (training store)" in stdout
    assert f"training store {store.path}" in stdout
    bundle = load_bundle(out)
    assert bundle.preprocessing.align == ALIGNMENT and "aligned by the eyes" in bundle.summary()
    grey = astronaut()
    row = store.index.set_index("video")["row"]["happy/astronaut"]
    # prediction cuts the face exactly as the store did, from a colour frame too
    colour = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    for image in (grey, colour):
        assert np.array_equal(bundle.preprocessing.crop(image, largest_box(grey)),
                              store.images([row])[0])
    wall = data.brick()
    box = FaceBox(wall.shape[1] // 4, wall.shape[0] // 4, wall.shape[1] // 2, wall.shape[0] // 2)
    assert np.array_equal(bundle.preprocessing.crop(wall, box), crop_box(wall, box, 0.1))
    preprocessing, origin = preprocessing_for(frame, align=False, margin=0.2)
    assert preprocessing.align is None and preprocessing.margin == 0.2
    assert "box crops (given)" in origin and "margin 0.2 (given)" in origin
    assert preprocessing.detector == store.summary["settings"]["detector"]


def test_without_a_recorded_store_a_bundle_takes_the_defaults(tmp_path):
    model = create_model("frame", "cnn_expr8").eval()
    frame = save_model_file(tmp_path / "frame_model.pt", model, kind="frame", name="cnn_expr8")
    preprocessing, origin = preprocessing_for(frame)
    assert preprocessing.align is None and preprocessing.margin == 0.1
    assert "names no store" in origin
    assert preprocessing_for(frame, align=True)[0].align == ALIGNMENT


def test_older_bundles_load_unaligned_and_bad_alignment_is_refused(tmp_path):
    model = create_model("frame", "cnn_expr8").eval()
    frame = save_model_file(tmp_path / "frame_model.pt", model, kind="frame", name="cnn_expr8")
    make_bundle(frame, out=tmp_path / "b.pt")
    payload = torch.load(tmp_path / "b.pt", weights_only=True)
    del payload["preprocessing"]["align"]  # as bundles written before alignment are
    torch.save(payload, tmp_path / "old.pt")
    assert load_bundle(tmp_path / "old.pt").preprocessing.align is None
    payload["preprocessing"]["align"] = {**ALIGNMENT, "method": "eyes_68"}
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(AffectTrackError, match="bad.pt: the bundle's preprocessing: unknown "
                                               "face alignment 'eyes_68'"):
        load_bundle(tmp_path / "bad.pt")


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data/expressions-in-the-wild")
def test_prepare_folder_align_on_real_photos(tmp_path, monkeypatch, capsys):
    root = tmp_path / "photos"
    (root / "happy").mkdir(parents=True)
    cv2.imwrite(str(root / "happy" / "Eileen_Collins_0001.png"), astronaut())
    cv2.imwrite(str(root / "happy" / "Eileen_Collins_0002.png"), astronaut(20))
    for name in WILD:
        (root / "neutral").mkdir(exist_ok=True)
        shutil.copy(SHARED / "images" / name, root / "neutral" / name)
    code, stdout, _ = run_cli(monkeypatch, capsys, "prepare", "folder", "--root", str(root),
                              "--out", str(tmp_path / "store"), "--align", "--workers", "2")
    assert code == 0
    assert "aligned by the eyes (eyes_dlib5): 5 of 5 faces; 0 kept as box crops" in stdout
    store = FaceStore.open(tmp_path / "store")
    assert store.summary["settings"]["align"] == ALIGNMENT and store.summary["fallbacks"] == {}
    for face in store.images(store.index["row"].to_numpy()):
        assert abs(eyes_in_crop(face).roll) < 5
