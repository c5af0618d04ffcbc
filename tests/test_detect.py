"""Face detection: the face is found and boxed where it is, at full or reduced resolution, on a
photo and on real videos; bad detector names and a missing dlib give one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from affecttrack.data.detect import (
    DEFAULT_DETECTOR,
    DETECTORS,
    FaceBox,
    FallbackDetector,
    create_detector,
    detect_largest_face,
    search_reduced,
    to_grey,
)
from affecttrack.errors import AffectTrackError

data = pytest.importorskip("skimage.data")

VIDEOS = Path(__file__).resolve().parents[2] / "shared/data/videos"
ASTRONAUT_FACE = FaceBox(177, 66, 95, 95)  # Eileen Collins' face in skimage's astronaut photo


def iou(a: FaceBox, b: FaceBox) -> float:
    w = max(0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    h = max(0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    return w * h / (a.area + b.area - w * h)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.mark.parametrize("name", list(DETECTORS))
@pytest.mark.parametrize("max_side", ["default", None])
def test_every_detector_boxes_the_astronauts_face(astronaut, name, max_side):
    options = {} if max_side == "default" else {"max_side": max_side}
    faces = create_detector(name, **options).detect(to_grey(astronaut))
    assert faces and iou(faces[0], ASTRONAUT_FACE) > 0.6
    assert [f.area for f in faces] == sorted((f.area for f in faces), reverse=True)


def test_the_default_detector_gives_a_96_pixel_grey_crop(astronaut):
    detector = create_detector()
    crop, box = detect_largest_face(astronaut, detector)
    assert detector.name == DEFAULT_DETECTOR
    assert crop.shape == (96, 96) and crop.dtype == np.uint8
    assert iou(box, ASTRONAUT_FACE) > 0.6


def test_no_face_in_a_blank_image_gives_none():
    assert detect_largest_face(np.full((360, 640, 3), 128, np.uint8), create_detector()) is None


@pytest.mark.parametrize("name", list(DETECTORS))
def test_a_reduced_search_gives_boxes_in_full_image_pixels(astronaut, name):
    big = cv2.resize(to_grey(astronaut), (1536, 1536))  # 3x: the face is 285 px wide
    faces = create_detector(name, max_side=512).detect(big)
    expected = FaceBox(*(3 * v for v in (ASTRONAUT_FACE.x, ASTRONAUT_FACE.y,
                                          ASTRONAUT_FACE.w, ASTRONAUT_FACE.h)))
    assert faces and iou(faces[0], expected) > 0.6


def test_search_reduced_shrinks_the_image_and_scales_and_clips_boxes():
    seen = []

    def find(small):
        seen.append(small.shape)
        return [FaceBox(10, 20, 30, 40, 0.5), FaceBox(300, 170, 40, 40)]

    faces = search_reduced(np.zeros((720, 1280), np.uint8), 320, find)
    assert seen == [(180, 320)]
    assert faces == [FaceBox(40, 80, 120, 160, 0.5), FaceBox(1200, 680, 80, 40)]
    assert search_reduced(np.zeros((100, 200), np.uint8), 320, find)[0] == FaceBox(10, 20, 30, 40,
                                                                                  0.5)


class _Fixed:
    def __init__(self, faces):
        self.name, self.faces, self.calls = "fixed", faces, 0

    def detect(self, grey):
        self.calls += 1
        return self.faces


def test_the_fallback_runs_its_second_detector_only_where_the_first_finds_nothing():
    grey = np.zeros((10, 10), np.uint8)
    found, backup = _Fixed([FaceBox(1, 1, 5, 5)]), _Fixed([FaceBox(0, 0, 2, 2)])
    assert FallbackDetector("f", found, backup).detect(grey) == [FaceBox(1, 1, 5, 5)]
    assert backup.calls == 0
    assert FallbackDetector("f", _Fixed([]), backup).detect(grey) == [FaceBox(0, 0, 2, 2)]


def test_an_unknown_detector_is_a_one_line_error_naming_the_choices():
    with pytest.raises(AffectTrackError) as error:
        create_detector("retinaface")
    message = str(error.value)
    assert "\n" not in message and "'retinaface'" in message
    assert all(name in message for name in DETECTORS)


def test_a_missing_dlib_is_a_one_line_error_naming_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib now raises ImportError
    with pytest.raises(AffectTrackError, match="pip install dlib-bin"):
        create_detector("hog")
    assert create_detector("haar").name == "haar"


def grey_frames(name: str, every: int = 1) -> list[np.ndarray]:
    path = VIDEOS / f"{name}.mp4"
    if not path.is_file():
        pytest.skip(f"{path} absent")
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="gray") for f in container.decode(container.streams.video[0])]
    return frames[::every]


def found_share(name: str, every: int) -> float:
    detector = create_detector()
    return float(np.mean([bool(detector.detect(f)) for f in grey_frames(name, every)]))


@pytest.mark.parametrize("video", ["WolfgangLanger_Pexels", "woman_talking"])
def test_the_default_detector_finds_the_face_in_a_sample_of_real_video_frames(video):
    assert found_share(video, every=12) >= 0.98


@pytest.mark.slow
@pytest.mark.parametrize("video", ["WolfgangLanger_Pexels", "woman_talking"])
def test_the_default_detector_finds_the_face_in_98_percent_of_real_video_frames(video):
    assert found_share(video, every=1) >= 0.98


@pytest.mark.slow
def test_the_default_detector_finds_no_face_in_a_cartoon():
    assert found_share("no_face", every=1) <= 0.02
