"""Image files -> 96 x 96 face crops: already cropped faces, or faces found by a detector.

Both loaders return a `Problem` instead of raising, so that one bad file among thousands is
reported and counted while the rest of a prepare goes on. `read_grey` is the one image decoder of
the project (every source, `predict`'s frame folders and photos, `explain`): it alone decides
which files are decoded, reading each one's size from its header before decoding, so that a few
bytes claiming 30000 x 30000 pixels (2.1 GB decoded) are skipped, not decoded.
"""

from __future__ import annotations

import re
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from affecttrack.data.align import ALIGNMENT, aligner_for, crop_face
from affecttrack.data.detect import (
    DEFAULT_DETECTOR,
    FaceDetector,
    create_detector,
    to_grey,
)
from affecttrack.data.faces import FACE_SIZE, to_face_crop
from affecttrack.data.groups import Crop, Fallback, Problem
from affecttrack.errors import AffectTrackError

IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp",
                                   ".pgm", ".ppm")
# Images over this many pixels are skipped unread (`--max-pixels`): 50 MB as grey, far above any
# face photo, far below OpenCV's own limit of 2^30 pixels.
MAX_PIXELS = 50_000_000
# What Pillow and OpenCV raise on a damaged file: each means "this file", never "the run".
DECODE_ERRORS: tuple[type[Exception], ...] = (
    OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, KeyError, TypeError,
    ZeroDivisionError, OverflowError, MemoryError, cv2.error)
# Pillow's own refusals when it opens a file: an error over twice its MAX_IMAGE_PIXELS, a warning
# over it (an error where the process turns warnings into errors).
PILLOW_REFUSALS = (Image.DecompressionBombError, Image.DecompressionBombWarning)
_PIXELS_IN_MESSAGE = re.compile(r"(\d+) pixels")
# A JPEG's last marker, end-of-image; a file cut short lacks it, and libjpeg (OpenCV) then fills
# the missing rows with grey and says so only on stderr.
JPEG_END = b"\xff\xd9"
JPEG_TAIL_BYTES = 4096
_limit = {"max_pixels": MAX_PIXELS}  # the default of every read_grey call without its own


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def is_file(path: Path) -> bool:
    """Whether `path` is a file; False, not OSError, for a name the system refuses (too long)."""
    try:
        return path.is_file()
    except OSError:
        return False


def checked_max_pixels(max_pixels: int) -> int:
    """`max_pixels` if it is a limit this module can keep: at most Pillow's `MAX_IMAGE_PIXELS`
    (89 million by default), over which Pillow warns or refuses while reading the header, so
    that what Pillow refuses is always over our limit too."""
    ceiling = Image.MAX_IMAGE_PIXELS
    if (isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1
            or (ceiling is not None and max_pixels > ceiling)):
        raise AffectTrackError(f"max_pixels (--max-pixels) must be a whole number from 1 to "
                               f"{ceiling or 'any size'} (Pillow's limit), got {max_pixels!r}")
    return max_pixels


@contextmanager
def pixel_limit(max_pixels: int | None) -> Iterator[None]:
    """Within the block, `read_grey` calls that name no limit use `max_pixels` (None: unchanged).

    For callers that reach `read_grey` through layers which do not pass a limit on (`predict`'s
    frame folders and photos); the setting holds for every thread of the process.
    """
    if max_pixels is None:
        yield
        return
    before = _limit["max_pixels"]
    _limit["max_pixels"] = checked_max_pixels(max_pixels)
    try:
        yield
    finally:
        _limit["max_pixels"] = before


def _too_large(path: Path, pixels: int, limit: int, size: str = "") -> Problem:
    return Problem("too_large", path, f"{size}{pixels / 1e6:.1f} megapixels, over the limit of "
                                      f"{limit / 1e6:g} (--max-pixels {limit}); image skipped")


def _opencv_grey(path: Path) -> np.ndarray | None:
    """OpenCV's grey decoding, None when it cannot decode the file."""
    try:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    except cv2.error:
        return None
    return image if image is not None and image.size else None


def _jpeg_ends_whole(path: Path) -> bool:
    """Whether a JPEG file ends with its end-of-image marker (padding after it allowed)."""
    with path.open("rb") as file:
        file.seek(0, 2)
        file.seek(max(0, file.tell() - JPEG_TAIL_BYTES))
        return file.read().rstrip(b"\x00\r\n\t ").endswith(JPEG_END)


def read_grey(path: Path, max_pixels: int | None = None) -> np.ndarray | Problem:
    """The image as grey uint8 (h, w), or the Problem that prevents it.

    Pillow reads the header first (`Image.open` decodes nothing), so an image over `max_pixels`
    (default: `MAX_PIXELS`, or the one `pixel_limit` set) is skipped before any pixel is decoded.
    OpenCV then decodes straight to grey (libjpeg skips the chroma planes: about 25% faster than
    decoding colour) and releases the GIL, so a thread pool decodes in parallel. Pillow is the
    fallback for what OpenCV cannot read, such as some palette ("P" mode) TIFFs, and decodes
    JPEGs that do not end with their end-of-image marker: Pillow refuses one cut short (OpenCV
    would return it with grey rows in place of the missing part) and reads one with other data
    appended.
    """
    limit = _limit["max_pixels"] if max_pixels is None else max_pixels
    if not is_file(path):
        return Problem("missing_file", path, "image file not found; image skipped")
    try:
        with Image.open(path) as opened:
            width, height = opened.size
            if width * height > limit:
                return _too_large(path, width * height, limit, f"{width} x {height} = ")
            whole = opened.format != "JPEG" or _jpeg_ends_whole(path)
            image = _opencv_grey(path) if whole else None
            if image is None:
                image = np.asarray(opened.convert("L"))
    except PILLOW_REFUSALS as error:  # over Pillow's limit, so over ours (checked_max_pixels)
        found = _PIXELS_IN_MESSAGE.search(str(error))
        return _too_large(path, int(found.group(1)) if found else Image.MAX_IMAGE_PIXELS or 0,
                          limit, "" if found else "more than ")
    except DECODE_ERRORS as error:
        reason = "truncated" if "truncated" in str(error) else "cannot decode"
        return Problem("corrupt_image", path, f"{reason} image; image skipped")
    if not image.size:
        return Problem("corrupt_image", path, "empty image; image skipped")
    return image


def load_cropped(path: Path, max_pixels: int | None = None) -> Crop | Problem:
    """An image that already is a face crop (Aff-Wild2's aligned faces, CK+48) -> 96 x 96 grey."""
    image = read_grey(path, max_pixels)
    return image if isinstance(image, Problem) else to_face_crop(image)


def cropped_loader(max_pixels: int | None = None) -> Callable[[Path], Crop | Problem]:
    """`load_cropped` with a pixel limit (None: `read_grey`'s default), checked now rather than
    at the first image."""
    if max_pixels is None:
        return load_cropped
    return partial(load_cropped, max_pixels=checked_max_pixels(max_pixels))


class FaceFinder:
    """Loads an image and crops its largest detected face; `no_face` when the detector finds none.

    With `align`, faces are aligned by the eyes (`data.align`); a face whose landmarks cannot be
    trusted keeps its box crop, returned as a `Fallback` so that the store counts it. Each thread
    gets its own detector (and aligner): OpenCV does not promise that one cascade may be run
    from several threads at once, nor dlib one shape predictor.
    """

    def __init__(self, detector: str = DEFAULT_DETECTOR, margin: float = 0.1,
                 max_pixels: int | None = None, align: bool = False) -> None:
        self.max_pixels = None if max_pixels is None else checked_max_pixels(max_pixels)
        create_detector(detector)  # an unknown name fails here, before any image is read
        self.detector = detector
        self.margin = margin
        self.alignment = dict(ALIGNMENT) if align else None
        if self.alignment is not None:
            aligner_for(self.alignment)  # a missing landmark model fails here too
        self._local = threading.local()

    @property
    def settings(self) -> dict[str, Any]:
        """What shapes its crops, for a store's plan, run record and summary (`align` only
        when aligning, so that the records of unaligned stores stay as they were)."""
        return {"detector": self.detector, "margin": self.margin,
                **({"align": self.alignment} if self.alignment is not None else {})}

    def _detector(self) -> FaceDetector:
        if not hasattr(self._local, "detector"):
            self._local.detector = create_detector(self.detector)
        return self._local.detector

    def crop(self, image: np.ndarray, path: Path,
             where: str = "the image") -> Crop | Fallback | Problem:
        """The largest face of an already decoded image (`where` names it in the Problem)."""
        grey = to_grey(image)
        faces = self._detector().detect(grey)
        if not faces:
            return Problem("no_face", path, f"no face found in {where} ({self.detector} "
                                            "detector); skipped")
        crop, unaligned = crop_face(grey, faces[0], self.margin, FACE_SIZE, self.alignment)
        if unaligned is None:
            return crop
        return Fallback(crop, Problem("unaligned", path, f"{unaligned} in {where}; box crop "
                                                         "kept"))

    def __call__(self, path: Path) -> Crop | Fallback | Problem:
        image = read_grey(path, self.max_pixels)
        return image if isinstance(image, Problem) else self.crop(image, path)
