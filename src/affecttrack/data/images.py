"""Image files -> 96 x 96 face crops: already cropped faces, or faces found by a detector.

Both loaders return a `Problem` instead of raising, so that one bad file among thousands is
reported and counted while the rest of a prepare goes on.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from affecttrack.data.detect import (
    DEFAULT_DETECTOR,
    FaceDetector,
    create_detector,
    detect_largest_face,
)
from affecttrack.data.faces import to_face_crop
from affecttrack.data.groups import Crop, Problem

IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp",
                                   ".pgm", ".ppm")


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def read_grey(path: Path) -> np.ndarray | Problem:
    """The image as grey uint8 (h, w), or the Problem that prevents it.

    OpenCV decodes straight to grey (libjpeg then skips the chroma planes: about 25% faster than
    decoding colour) and releases the GIL, so a thread pool decodes in parallel. Pillow is the
    fallback for what OpenCV cannot read, such as some palette ("P" mode) TIFFs.
    """
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is not None and image.size:
        return image
    if not path.is_file():
        return Problem("missing_file", path, "image file not found; image skipped")
    try:
        with Image.open(path) as opened:
            image = np.asarray(opened.convert("L"))
    except (OSError, UnidentifiedImageError, ValueError):
        return Problem("corrupt_image", path, "cannot decode image; image skipped")
    if not image.size:
        return Problem("corrupt_image", path, "empty image; image skipped")
    return image


def load_cropped(path: Path) -> Crop | Problem:
    """An image that already is a face crop (Aff-Wild2's aligned faces, CK+48) -> 96 x 96 grey."""
    image = read_grey(path)
    return image if isinstance(image, Problem) else to_face_crop(image)


class FaceFinder:
    """Loads an image and crops its largest detected face; `no_face` when the detector finds none.

    Each thread gets its own detector: OpenCV does not promise that one cascade may be run from
    several threads at once.
    """

    def __init__(self, detector: str = DEFAULT_DETECTOR, margin: float = 0.1) -> None:
        create_detector(detector)  # an unknown name fails here, before any image is read
        self.detector = detector
        self.margin = margin
        self._local = threading.local()

    @property
    def settings(self) -> dict[str, Any]:
        """What shapes its crops, for a store's plan and run record."""
        return {"detector": self.detector, "margin": self.margin}

    def _detector(self) -> FaceDetector:
        if not hasattr(self._local, "detector"):
            self._local.detector = create_detector(self.detector)
        return self._local.detector

    def crop(self, image: np.ndarray, path: Path, where: str = "the image") -> Crop | Problem:
        """The largest face of an already decoded image (`where` names it in the Problem)."""
        found = detect_largest_face(image, self._detector(), self.margin)
        if found is None:
            return Problem("no_face", path, f"no face found in {where} ({self.detector} "
                                            "detector); skipped")
        return found[0]

    def __call__(self, path: Path) -> Crop | Problem:
        image = read_grey(path)
        return image if isinstance(image, Problem) else self.crop(image, path)
