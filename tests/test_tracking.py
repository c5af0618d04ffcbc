"""Faces over time: stable ids, following between detections, gaps filled and flagged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from affecttrack.data.detect import FaceBox
from affecttrack.inference.gaps import interpolate_gaps
from affecttrack.inference.tracking import FaceTracker, iou

rng = np.random.default_rng(0)
TEXTURE = rng.integers(0, 255, (60, 60), dtype=np.uint8)   # a patch template matching can find


def frame_with(patches: list[tuple[int, int]]) -> np.ndarray:
    grey = np.full((240, 320), 128, np.uint8)
    for y, x in patches:
        grey[y:y + 60, x:x + 60] = TEXTURE
    return grey


class ScriptedDetector:
    """Returns the boxes of the patches it is told about, counting its calls."""

    name = "scripted"

    def __init__(self) -> None:
        self.calls = 0
        self.boxes: list[FaceBox] = []

    def detect(self, grey: np.ndarray) -> list[FaceBox]:
        self.calls += 1
        return list(self.boxes)


def test_faces_keep_their_ids_and_are_followed_between_detections() -> None:
    detector = ScriptedDetector()
    tracker = FaceTracker(detector, detect_every=5)
    ids, xs = [], []
    for i in range(12):
        x = 40 + 4 * i
        detector.boxes = [FaceBox(x, 50, 60, 60, 2.0), FaceBox(220, 150, 60, 60, 1.0)]
        faces = tracker.update(frame_with([(50, x), (150, 220)]))
        ids.append(sorted(face.face_id for face in faces))
        moving = next(face for face in faces if face.box.y == 50)
        xs.append(moving.box.x)
        assert moving.detected == (i % 5 == 0)
        assert np.isnan(moving.score) != moving.detected
    assert detector.calls == 3                           # frames 1, 6, 11
    assert all(frame_ids == [0, 1] for frame_ids in ids)
    assert xs == [40 + 4 * i for i in range(12)]         # tracked to the pixel between detections


def test_a_face_back_after_one_missed_detection_keeps_its_id_one_away_longer_gets_a_new_one(
) -> None:
    detector = ScriptedDetector()
    tracker = FaceTracker(detector, detect_every=1, max_missed=1)
    first, other = ([(50, 40)], [FaceBox(40, 50, 60, 60)]), ([(100, 200)], [FaceBox(200, 100,
                                                                                     60, 60)])
    seen = []
    for patches, boxes in (first, other, first, other, other, first):
        detector.boxes = boxes
        seen.append(sorted(face.face_id for face in tracker.update(frame_with(patches))))
    # the template of a face that left matches nothing, so it is not followed either
    assert seen == [[0], [1], [0], [1], [1], [2]]


def test_a_face_the_detector_misses_is_still_followed_while_its_template_matches() -> None:
    detector = ScriptedDetector()
    tracker = FaceTracker(detector, detect_every=1, max_missed=2)
    detector.boxes = [FaceBox(40, 50, 60, 60)]
    tracker.update(frame_with([(50, 40)]))
    detector.boxes = []
    faces = tracker.update(frame_with([(50, 44)]))
    assert [(f.face_id, f.box.x, f.detected) for f in faces] == [(0, 44, False)]


def test_iou() -> None:
    a = FaceBox(0, 0, 10, 10)
    assert iou(a, a) == 1.0 and iou(a, FaceBox(20, 20, 5, 5)) == 0.0
    assert iou(a, FaceBox(5, 0, 10, 10)) == pytest.approx(50 / 150)


def table(rows: list[tuple[int, int | None, float]]) -> pd.DataFrame:
    frame = pd.DataFrame({
        "frame": [r[0] for r in rows], "time_s": [r[0] / 10 for r in rows],
        "face_id": pd.array([r[1] for r in rows], dtype="Int64"),
        **{c: pd.array([None if r[1] is None else 10 * r[0] for r in rows], dtype="Int64")
           for c in ("x", "y", "w", "h")},
        "score": 1.0, "valence": [r[2] for r in rows], "arousal": 0.0,
        "neutral": [1 - abs(r[2]) for r in rows], "happiness": [abs(r[2]) for r in rows],
        "expression": pd.array(["x"] * len(rows), dtype="string"), "interpolated": False})
    return frame


def test_short_gaps_in_a_track_are_interpolated_and_flagged_long_ones_are_not() -> None:
    rows = [(1, 0, 0.0), (2, 0, 0.2), (3, None, np.nan), (4, None, np.nan), (5, 0, 0.8)]
    rows += [(f, None, np.nan) for f in range(6, 20)] + [(20, 0, 0.1)]
    filled = interpolate_gaps(table(rows), max_gap=3, labels=("Neutral", "Happiness"))
    face = filled[filled["face_id"].notna()].set_index("frame")
    assert face.loc[[3, 4], "valence"].tolist() == pytest.approx([0.4, 0.6])
    assert face.loc[[3, 4], "x"].tolist() == [30, 40]
    assert face.loc[[3, 4], "interpolated"].all() and not face.loc[[1, 2, 5], "interpolated"].any()
    assert face.loc[[3, 4], "score"].isna().all()
    assert face.loc[[3, 4], "time_s"].tolist() == pytest.approx([0.3, 0.4])
    assert face.loc[4, "expression"] == "Happiness" and face.loc[3, "expression"] == "Neutral"
    assert 3 not in set(filled.loc[filled["face_id"].isna(), "frame"])   # no empty row left
    assert set(range(6, 20)) <= set(filled.loc[filled["face_id"].isna(), "frame"])
    assert filled["frame"].is_monotonic_increasing and len(filled) == 20
