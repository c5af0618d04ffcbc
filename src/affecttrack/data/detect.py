"""Face detection: find faces in a whole image, so that sources and videos can be cropped.

Detectors share one small interface (`FaceDetector.detect`), so a source or the video pipeline
can take any of them by name (`create_detector`). Nothing is downloaded: every detector uses code
and files shipped inside an installed package.

- "haar": OpenCV's frontal-face Haar cascade, as the paper used.
- "hog": dlib's HOG + linear SVM frontal-face detector (the `dlib-bin` wheel; no model file).
- "hog_haar" (the default): HOG, and Haar only on an image where HOG finds no face.

Every detector searches a reduced copy of the image (`max_side`, longer side in pixels) and maps
its boxes back to the full image: the cost of a search then no longer grows with the frame size
(a 1280 x 720 frame costs what a 640 x 360 one does), and the crop is still cut from the full
image. `max_side=None` searches the full image.

Why "hog_haar" is the default (benchmarks/detection.py; figures in benchmarks/RESULTS.md): the
rule is the fastest detector that finds the face in >= 98% of the frames of the two talking
videos in shared/data/videos (WolfgangLanger_Pexels, woman_talking). At their defaults HOG alone
and HOG-then-Haar both find it in every frame there, at the same cost (about 7 ms a 640x360 or
1280x720 frame on one core of a 2-core AMD EPYC, against 26 ms for Haar at 320 px and 55-75 ms
for Haar on the full frame), because Haar never runs where HOG finds the face. They tie; of the
two, HOG-then-Haar also finds the faces HOG misses: tilted ones (smiling_at_phone, a head bent
over a phone: 100% of frames against HOG's 80%) and ones below HOG's smallest window. It costs
HOG + Haar only on frames without a face. Neither gives a false face on the cartoon no_face.mp4.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from affecttrack.data.faces import FACE_SIZE, to_face_crop
from affecttrack.errors import AffectTrackError

DEFAULT_DETECTOR = "hog_haar"


@dataclass(frozen=True)
class FaceBox:
    """A face's box in image pixels and the detector's confidence (larger = surer)."""

    x: int
    y: int
    w: int
    h: int
    score: float = 1.0

    @property
    def area(self) -> int:
        return self.w * self.h


class FaceDetector(Protocol):
    """Anything that finds faces in a grey uint8 image, largest first."""

    name: str

    def detect(self, grey: np.ndarray) -> list[FaceBox]: ...


def to_grey(image: np.ndarray) -> np.ndarray:
    """A grey uint8 view of a grey, BGR or BGRA image."""
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3:
        code = cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        return cv2.cvtColor(image, code)
    return image


def largest_first(faces: list[FaceBox]) -> list[FaceBox]:
    """Faces ordered by area, largest first: the largest is the one a face video is about."""
    return sorted(faces, key=lambda box: box.area, reverse=True)


def _in_frame(x: float, y: float, w: float, h: float, score: float,
              width: int, height: int) -> FaceBox | None:
    """The box rounded to pixels and clipped to the image; None when nothing of it is inside."""
    left, top = max(0, round(x)), max(0, round(y))
    right, bottom = min(width, round(x + w)), min(height, round(y + h))
    if right <= left or bottom <= top:
        return None
    return FaceBox(left, top, right - left, bottom - top, score)


def search_reduced(grey: np.ndarray, max_side: int | None,
                   find: Callable[[np.ndarray], list[FaceBox]]) -> list[FaceBox]:
    """`find`'s faces in `grey` shrunk to at most `max_side` pixels a side, in `grey`'s pixels
    (clipped to it), largest first. INTER_AREA averages, so the small copy does not alias."""
    height, width = grey.shape[:2]
    small = grey
    if max_side is not None and max(height, width) > max_side:
        factor = max_side / max(height, width)
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        small = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    sx, sy = width / small.shape[1], height / small.shape[0]
    faces = [_in_frame(b.x * sx, b.y * sy, b.w * sx, b.h * sy, b.score, width, height)
             for b in find(np.ascontiguousarray(small))]
    return largest_first([face for face in faces if face is not None])


class HaarDetector:
    """OpenCV's frontal-face Haar cascade, as the paper used.

    `min_size` is a fraction of the (searched) image's shorter side: faces smaller than that are
    not what an expression model can read, and skipping them makes the cascade several times
    faster. The defaults were tuned on the videos in shared/data/videos (benchmarks/detection.py):
    a scale step of 1.1 finds tilted faces that 1.2 misses; 4 neighbours, not 3, because with 3
    a false face larger than the real one appears on skimage's astronaut photo (and the largest
    face is the one taken). At `max_side` 320 the smallest face searched is the cascade's 24 px
    window: 13% of a 16:9 frame's height.
    """

    name = "haar"

    def __init__(self, cascade: str = "haarcascade_frontalface_default.xml",
                 scale_factor: float = 1.1, min_neighbors: int = 4,
                 min_size: float = 0.1, max_side: int | None = 320) -> None:
        path = cv2.data.haarcascades + cascade
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise AffectTrackError(f"{path}: cannot load the Haar cascade shipped with OpenCV")
        self.window = max(self.cascade.getOriginalWindowSize())
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        self.max_side = max_side

    def detect(self, grey: np.ndarray) -> list[FaceBox]:
        return search_reduced(grey, self.max_side, self._find)

    def _find(self, grey: np.ndarray) -> list[FaceBox]:
        side = max(self.window, int(self.min_size * min(grey.shape[:2])))
        boxes, _, weights = self.cascade.detectMultiScale3(
            grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(side, side), outputRejectLevels=True)
        return [FaceBox(int(x), int(y), int(w), int(h), float(score))
                for (x, y, w, h), score in zip(boxes, np.ravel(weights))]


# dlib's HOG boxes are tighter than Haar's (brows to chin): the Haar box of the same face is 1.16
# times as wide and its centre 9% of the HOG box's height higher (medians over 179 frames of the
# four face videos in shared/data/videos). HogDetector returns the Haar-like box, so a crop looks
# the same whichever detector found the face, as the CNN learnt from Haar-framed crops.
_HOG_TO_HAAR_SIZE = 1.16
_HOG_TO_HAAR_SHIFT = -0.09


class HogDetector:
    """dlib's HOG + linear SVM frontal-face detector, several times faster than the Haar cascade
    on CPUs and as accurate on frontal faces (benchmarks/detection.py).

    Its window is 80 px: faces smaller than about 62 px (Haar-box size) in the searched image are
    not found, and faces just above that get its smallest box, too large, whatever their size.
    The default `max_side` 480 keeps faces of a 16:9 frame from 23% of its height findable (320
    would halve the cost but put woman_talking's face at the edge of the window).
    `upsample` doubles the image that many times first, to find smaller faces at 4x the cost each.
    `threshold` is the SVM score a face must pass (dlib's default 0; higher, fewer false faces).
    """

    name = "hog"

    def __init__(self, max_side: int | None = 480, upsample: int = 0,
                 threshold: float = 0.0) -> None:
        try:
            import dlib
        except ImportError:
            raise AffectTrackError("face detector 'hog' needs dlib, which is not installed: "
                                   "pip install dlib-bin") from None
        self.detector = dlib.get_frontal_face_detector()
        self.max_side = max_side
        self.upsample = upsample
        self.threshold = threshold

    def detect(self, grey: np.ndarray) -> list[FaceBox]:
        return search_reduced(grey, self.max_side, self._find)

    def _find(self, grey: np.ndarray) -> list[FaceBox]:
        rects, scores, _ = self.detector.run(grey, self.upsample, self.threshold)
        height, width = grey.shape[:2]
        faces = []
        for rect, score in zip(rects, scores):
            w, h = rect.right() - rect.left(), rect.bottom() - rect.top()
            side = w * _HOG_TO_HAAR_SIZE
            cx, cy = rect.left() + w / 2, rect.top() + h / 2 + _HOG_TO_HAAR_SHIFT * h
            faces.append(_in_frame(cx - side / 2, cy - side / 2, side, side, float(score),
                                   width, height))
        return [face for face in faces if face is not None]


def hog_square(box: FaceBox) -> tuple[float, float, float]:
    """Centre x, centre y and side of the HOG detector's own box for a (Haar-like) `box`:
    `HogDetector`'s mapping undone, so that dlib's landmark model, trained on HOG boxes, gets
    the framing it knows whichever detector found the face."""
    side = max(box.w, box.h) / _HOG_TO_HAAR_SIZE  # a box clipped by the image keeps one side
    return box.x + box.w / 2, box.y + box.h / 2 - _HOG_TO_HAAR_SHIFT * side, side


class FallbackDetector:
    """`first`'s faces, or `then`'s where `first` finds none: the cost of `first` on most frames,
    and `then`'s recall on the frames `first` cannot read."""

    def __init__(self, name: str, first: FaceDetector, then: FaceDetector) -> None:
        self.name = name
        self.first = first
        self.then = then

    def detect(self, grey: np.ndarray) -> list[FaceBox]:
        return self.first.detect(grey) or self.then.detect(grey)


def hog_then_haar(**options: Any) -> FallbackDetector:
    """HOG, then Haar where HOG finds nothing; `options` (such as max_side) go to both."""
    return FallbackDetector("hog_haar", HogDetector(**options), HaarDetector(**options))


DETECTORS: dict[str, Callable[..., FaceDetector]] = {
    "haar": HaarDetector, "hog": HogDetector, "hog_haar": hog_then_haar}


def create_detector(name: str = DEFAULT_DETECTOR, **options: Any) -> FaceDetector:
    """A detector by name (see `DETECTORS`); `options` go to its constructor (e.g. max_side)."""
    try:
        factory = DETECTORS[name]
    except KeyError:
        raise AffectTrackError(f"unknown face detector {name!r}; expected one of "
                               f"{', '.join(DETECTORS)}") from None
    return factory(**options)


def crop_box(grey: np.ndarray, box: FaceBox, margin: float = 0.1,
             size: int = FACE_SIZE) -> np.ndarray:
    """The size x size face crop of `box` grown by `margin` of its size on every side (clipped to
    the image), so that the crop frames the face like Aff-Wild2's aligned crops do."""
    pad_x, pad_y = round(box.w * margin), round(box.h * margin)
    top, left = max(0, box.y - pad_y), max(0, box.x - pad_x)
    bottom = min(grey.shape[0], box.y + box.h + pad_y)
    right = min(grey.shape[1], box.x + box.w + pad_x)
    return to_face_crop(np.ascontiguousarray(grey[top:bottom, left:right]), size)


def detect_largest_face(image: np.ndarray, detector: FaceDetector,
                        margin: float = 0.1) -> tuple[np.ndarray, FaceBox] | None:
    """The largest face's crop and box, or None when the detector finds no face."""
    grey = to_grey(image)
    faces = detector.detect(grey)
    if not faces:
        return None
    return crop_box(grey, faces[0], margin), faces[0]
