"""Face alignment by the eyes: each face rotated so that its eyes are level, scaled by the
distance between them and placed so that they sit at fixed points of the crop, as
expression-recognition practice does. A box crop leaves the head's roll (-13 to +10 degrees over
90% of the in-the-wild photos in shared/data) for the network to learn.

The landmarks come from dlib's 5-point shape predictor (the two corners of each eye and the
bottom of the nose), the file `shape_predictor_5_face_landmarks.dat` of the PyPI package
`face-recognition-models` (the optional extra `[align]`; it runs offline). That model is CC0:
Davis King trained it on his own CC0 set of 7,198 faces. The package's 68-point model is not
used: its training data (iBUG 300-W) excludes commercial use.

A crop is one `cv2.warpAffine` similarity transform, after an INTER_AREA shrink when the face is
larger than the crop, so that it does not alias (the box crop's `to_face_crop` shrinks the same
way). Where the landmarks cannot be trusted, `crop_face` keeps the box crop and says why, so
that a prepare counts the face. The settings are a plain dict (`ALIGNMENT`), recorded by a face
store and a bundle, from which the same aligner is rebuilt.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from affecttrack.data.detect import FaceBox, crop_box, hog_square, to_grey
from affecttrack.data.faces import FACE_SIZE
from affecttrack.errors import AffectTrackError

METHOD = "eyes_dlib5"
# Where the eyes go, as fractions of the crop's side. The box crop (margin 0.1) that the models
# learnt from puts the eyes' midpoint at (0.50, 0.41) and the eyes 0.31 of its width apart
# (medians over 496 faces of expressions-in-the-wild; the astronaut: (0.48, 0.40) and 0.335), so
# an aligned crop frames about the same part of the face.
ALIGNMENT: dict[str, Any] = {"method": METHOD, "eyes_x": 0.5, "eyes_y": 0.4,
                             "eye_distance": 0.32}
LANDMARK_MODEL = "shape_predictor_5_face_landmarks.dat"
MISSING_MODEL = ('face alignment needs the landmark model: pip install -c constraints.txt -e '
                 '".[align]"')
# The eye distance a (Haar-like) box implies: 0.38 of its side (median 0.37 over those faces,
# 1st-99th percentile 0.31-0.46); landmarks more than 1.6 times off it are no face's.
BOX_EYE_DISTANCE = 0.38
EYE_DISTANCE_FACTOR = 1.6
# The eyes lie in the box's upper part (their midpoint at most 0.50 of its height down there).
EYES_WITHIN = 0.6
MAX_ROLL = 45.0
# Landmarks are found from the box and from two copies shifted diagonally by SHIFT of its side.
# A face's landmarks stay on the face: they move 0.03 of the shift (median over 372 faces of
# expressions-in-the-wild; 99th percentile 0.30, largest 0.58). A non-face's follow the box:
# 1.0 on a flat image, median 1.3 over 640 random boxes on skimage's images without a face, of
# which 1.6% drift less than MAX_DRIFT.
SHIFT = 0.1
MAX_DRIFT = 0.6
_threads = threading.local()


def checked_alignment(settings: Any) -> dict[str, Any]:
    """`settings` if they describe an alignment this version makes (a bundle or store may come
    from another one), else one line saying what is wrong."""
    if not isinstance(settings, dict) or settings.get("method") != METHOD:
        method = settings.get("method") if isinstance(settings, dict) else settings
        raise AffectTrackError(f"unknown face alignment {method!r}; this affecttrack aligns "
                               f"with {METHOD!r}")
    if set(settings) != set(ALIGNMENT):
        raise AffectTrackError(f"face alignment settings {sorted(settings)} should be "
                               f"{sorted(ALIGNMENT)}")
    for key in ("eyes_x", "eyes_y", "eye_distance"):
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise AffectTrackError(f"face alignment {key} must be a fraction of the crop "
                                   f"between 0 and 1, got {value!r}")
    return dict(settings)


def landmark_model_path() -> Path:
    """The 5-point model's file, found without importing its package (whose `__init__` needs
    pkg_resources, which recent setuptools no longer ship)."""
    try:
        spec = find_spec("face_recognition_models")
    except (ImportError, ValueError):
        spec = None
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(folders[0]) / "models" / LANDMARK_MODEL if folders else None
    if path is None or not path.is_file():
        raise AffectTrackError(MISSING_MODEL)
    return path


def _shape_predictor() -> Any:
    try:
        import dlib
    except ImportError:
        raise AffectTrackError("face alignment needs dlib, which is not installed: "
                               "pip install dlib-bin") from None
    return dlib.shape_predictor(str(landmark_model_path()))


@dataclass(frozen=True)
class Eyes:
    """The centres of a face's two eyes in image pixels (x, y): `left` is the one on the image's
    left in an upright face (the person's right eye)."""

    left: np.ndarray
    right: np.ndarray

    @property
    def distance(self) -> float:
        return float(np.hypot(*(self.right - self.left)))

    @property
    def roll(self) -> float:
        """Degrees the eye line turns clockwise on screen (image y points down)."""
        dx, dy = self.right - self.left
        return math.degrees(math.atan2(dy, dx))


class EyeAligner:
    """Finds a face's eyes and cuts its aligned crop. dlib's shape predictor is loaded once per
    instance and must not be shared across threads: take one per thread from `aligner_for`."""

    def __init__(self, settings: dict[str, Any] = ALIGNMENT) -> None:
        self.settings = checked_alignment(settings)
        self.predictor = _shape_predictor()

    def _points(self, grey: np.ndarray, cx: float, cy: float, side: float) -> np.ndarray:
        import dlib
        half = side / 2
        rect = dlib.rectangle(round(cx - half), round(cy - half), round(cx + half),
                              round(cy + half))
        shape = self.predictor(grey, rect)
        return np.array([(shape.part(i).x, shape.part(i).y) for i in range(5)], dtype=float)

    def landmarks(self, grey: np.ndarray, box: FaceBox) -> tuple[np.ndarray, float]:
        """The 5 landmarks (the person's left eye's outer and inner corner, the right eye's, the
        bottom of the nose) as the mean of three runs: from the box and from two copies shifted
        diagonally by SHIFT of it; and their drift, how far they moved as a fraction of the
        shift (near 0 on a face, near 1 where they only follow the box)."""
        grey = np.ascontiguousarray(grey)  # dlib reads contiguous arrays only
        cx, cy, side = hog_square(box)
        step = SHIFT * side
        runs = [self._points(grey, cx + d, cy + d, side) for d in (0.0, step, -step)]
        drift = max(float(np.linalg.norm(run - runs[0], axis=1).mean()) for run in runs[1:])
        return np.mean(runs, axis=0), drift / (step * math.sqrt(2))

    def find_eyes(self, grey: np.ndarray, box: FaceBox) -> Eyes | str:
        """The eyes of the face in `box` of a grey uint8 image, or why none can be trusted."""
        points, drift = self.landmarks(grey, box)
        if drift > MAX_DRIFT:
            return f"no landmarks: they follow the box (drift {drift:.2f}), not a face"
        eyes = Eyes(left=points[2:4].mean(axis=0), right=points[0:2].mean(axis=0))
        return _implausible(eyes, box) or eyes

    def matrix(self, eyes: Eyes, size: int = FACE_SIZE) -> np.ndarray:
        """The 2 x 3 similarity transform that levels the eyes, sets them `eye_distance` of the
        crop apart and puts their midpoint at (`eyes_x`, `eyes_y`) of a size x size crop."""
        angle = math.radians(eyes.roll)
        scale = self.settings["eye_distance"] * size / max(eyes.distance, 1e-6)
        cos, sin = scale * math.cos(angle), scale * math.sin(angle)
        linear = np.array([[cos, sin], [-sin, cos]])
        middle = (eyes.left + eyes.right) / 2
        # pixel centres: pixel k covers [k - 0.5, k + 0.5], so fraction f of the side is f*size-0.5
        target = np.array([self.settings["eyes_x"], self.settings["eyes_y"]]) * size - 0.5
        return np.hstack([linear, (target - linear @ middle)[:, None]])

    def align(self, grey: np.ndarray, box: FaceBox, size: int = FACE_SIZE) -> np.ndarray | str:
        """The aligned size x size crop of the face in `box`, or why it cannot be aligned."""
        eyes = self.find_eyes(grey, box)
        if isinstance(eyes, str):
            return eyes
        return warp(grey, self.matrix(eyes, size), size)


def _implausible(eyes: Eyes, box: FaceBox) -> str | None:
    """Why these eyes cannot be the face's in `box`, or None when they can."""
    if abs(eyes.roll) > MAX_ROLL:
        return f"implausible landmarks: eyes tilted {eyes.roll:.0f} degrees"
    side = max(box.w, box.h)
    expected = BOX_EYE_DISTANCE * side
    if not expected / EYE_DISTANCE_FACTOR <= eyes.distance <= expected * EYE_DISTANCE_FACTOR:
        return (f"implausible landmarks: eyes {eyes.distance:.0f} px apart in a {side} px box "
                f"(about {expected:.0f} expected)")
    for eye in (eyes.left, eyes.right):
        if not (box.x <= eye[0] <= box.x + box.w
                and box.y <= eye[1] <= box.y + EYES_WITHIN * box.h):
            return "implausible landmarks: an eye outside the box's upper part"
    return None


def warp(grey: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The size x size crop that `matrix` maps `grey` to, edges replicated. A face larger than
    the crop is first shrunk with INTER_AREA: warpAffine's bilinear sampling would alias it."""
    scale = float(np.hypot(*matrix[0, :2]))
    if scale < 1:
        grey, matrix = _shrunk(grey, matrix, scale, size)
    return cv2.warpAffine(grey, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def _shrunk(grey: np.ndarray, matrix: np.ndarray, scale: float,
            size: int) -> tuple[np.ndarray, np.ndarray]:
    """The part of `grey` that the crop shows, shrunk by `scale`, and the matrix that maps it to
    the crop; only that part is shrunk, so the cost does not grow with the image."""
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], dtype=float)
    source = corners @ cv2.invertAffineTransform(matrix).T
    pad = math.ceil(2 / scale)  # two crop pixels of context for the bilinear sampling
    height, width = grey.shape[:2]
    left, top = np.clip(np.floor(source.min(axis=0)).astype(int) - pad, 0, [width, height])
    right, bottom = np.clip(np.ceil(source.max(axis=0)).astype(int) + pad, 0, [width, height])
    if right - left < 2 or bottom - top < 2:
        return grey, matrix
    part = grey[top:bottom, left:right]
    small_w, small_h = max(1, round(part.shape[1] * scale)), max(1, round(part.shape[0] * scale))
    small = cv2.resize(part, (small_w, small_h), interpolation=cv2.INTER_AREA)
    fx, fy = small_w / part.shape[1], small_h / part.shape[0]
    # pixel (u, v) of `small` is pixel ((u + 0.5) / fx - 0.5 + left, ...) of `grey`
    linear = matrix[:, :2] @ np.diag([1 / fx, 1 / fy])
    offset = matrix[:, :2] @ np.array([0.5 / fx - 0.5 + left, 0.5 / fy - 0.5 + top])
    return small, np.hstack([linear, (matrix[:, 2] + offset)[:, None]])


def aligner_for(settings: dict[str, Any]) -> EyeAligner:
    """This thread's aligner for `settings`, made on first use (loading the model takes a
    fraction of a second; a shape predictor must not be shared across threads)."""
    aligners = _threads.__dict__.setdefault("aligners", {})
    key = json.dumps(settings, sort_keys=True)
    if key not in aligners:
        aligners[key] = EyeAligner(settings)
    return aligners[key]


def crop_face(image: np.ndarray, box: FaceBox, margin: float, size: int = FACE_SIZE,
              alignment: dict[str, Any] | None = None) -> tuple[np.ndarray, str | None]:
    """The face in `box` as training and prediction cut it: aligned by the eyes when
    `alignment` is set, else (and where its landmarks cannot be trusted) the box grown by
    `margin`. The second value says why alignment fell back; None when it did not."""
    if alignment is None:
        return crop_box(image, box, margin, size), None
    grey = to_grey(image)
    aligned = aligner_for(alignment).align(grey, box, size)
    if isinstance(aligned, str):
        return crop_box(grey, box, margin, size), aligned
    return aligned, None
