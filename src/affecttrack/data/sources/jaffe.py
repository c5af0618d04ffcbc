"""Reading JAFFE (the Japanese Female Facial Expression database): 213 photos of 10 people.

Files are named `KA.AN1.39.tiff`: subject `KA`, expression code `AN` (+ a repeat number), image
number 39; 256 x 256 grey, the face plus some background, so faces are found by detection. Some
copies hold palette ("P" mode) TIFFs, which `images.read_grey` reads through Pillow. Each subject
is one group whose frames are the image numbers; the classes are `labels.JAFFE_EXPRESSIONS`
(CK+'s without Contempt), everything gets split "train" (JAFFE is usually a test set for a CK+
model; classification protocols split by subject later).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from affecttrack.data.detect import DEFAULT_DETECTOR
from affecttrack.data.groups import MAX_FRAME, Problem, SourceScan
from affecttrack.data.images import FaceFinder, is_image
from affecttrack.data.sources.photos import Photo, photo_groups
from affecttrack.data.store import build_store
from affecttrack.errors import InputError
from affecttrack.labels import JAFFE_EXPRESSIONS, canonical_expression

JAFFE_CODES: dict[str, str] = {"NE": "Neutral", "AN": "Anger", "DI": "Disgust", "FE": "Fear",
                               "HA": "Happiness", "SA": "Sadness", "SU": "Surprise"}
_NAME = re.compile(r"^(?P<subject>[A-Za-z]+)\.(?P<code>[A-Za-z]+)(?P<repeat>\d*)\.(?P<number>\d+)$")


def jaffe_photo(path: Path) -> Photo | Problem:
    """The subject, image number and expression a JAFFE file name encodes."""
    match = _NAME.match(path.stem)
    if match is None:
        return Problem("bad_file_name", path, "not named like KA.AN1.39.tiff (subject, "
                                              "expression code, number); image skipped")
    code = match["code"].upper()
    name = canonical_expression(JAFFE_CODES.get(code, code))
    if name not in JAFFE_EXPRESSIONS:
        return Problem("unknown_label", path, f"expression code {match['code']!r} is not one of "
                                              f"{', '.join(JAFFE_CODES)}; image skipped")
    if int(match["number"]) > MAX_FRAME:
        return Problem("bad_file_name", path, f"image number over {MAX_FRAME}; image skipped")
    subject = match["subject"].upper()
    return Photo(path, subject, int(match["number"]), subject,
                 expression=JAFFE_EXPRESSIONS.index(name))


def scan_jaffe(root: Path, load: FaceFinder) -> SourceScan:
    """Every JAFFE image under `root` (sub-folders included), one group per subject."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "folder not found; expected JAFFE images named like KA.AN1.39.tiff")
    photos, problems = [], []
    for path in sorted(root.rglob("*")):
        if path.is_file() and is_image(path):
            found = jaffe_photo(path)
            (problems if isinstance(found, Problem) else photos).append(found)
    if not photos:
        raise InputError(root, "no JAFFE images (named like KA.AN1.39.tiff) found here")
    groups, more = photo_groups(photos, load)
    return SourceScan("jaffe", "JAFFE", root, JAFFE_EXPRESSIONS, kind="subject", groups=groups,
                      problems=problems + more, config=load.settings)


def prepare_jaffe(root: Path, out: Path, *, detector: str = DEFAULT_DETECTOR, margin: float = 0.1,
                  align: bool = False, max_pixels: int | None = None, progress: bool = True,
                  workers: int = 1) -> dict[str, Any]:
    """JAFFE folder -> face store in `out` (faces found by detection, aligned by the eyes with
    `align`; images over `max_pixels`, None: `images.MAX_PIXELS`, skipped unread). Resumable."""
    return build_store(lambda: scan_jaffe(root, FaceFinder(detector, margin, max_pixels, align)),
                       out, progress=progress, workers=workers)
