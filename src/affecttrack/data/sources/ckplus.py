"""Reading CK+ (the extended Cohn-Kanade dataset): the full tree or its cropped CK+48 variant.

Full tree (DESIGN.md section 3)::

    ROOT/cohn-kanade-images/S005/001/S005_001_00000001.png ...   (640x490 or 640x480, grey or colour)
    ROOT/Emotion/S005/001/S005_001_00000011_emotion.txt          ("   3.0000000e+00")

Only 327 of the 593 sequences carry an emotion file. As the paper does, each labelled sequence
gives its first frame as Neutral (label 0) and its last 3 frames (the peak) with the sequence's
label; faces are found by detection. Unlabelled sequences are counted as skipped.

CK+48: ``ROOT/<anger|contempt|disgust|fear|happy|sadness|surprise>/S010_004_00000017.png``: 48x48
grey faces already cropped (no detection), the last 3 frames of each sequence, no Neutral.

Both use CK+'s 8 classes (`labels.CKPLUS_EXPRESSIONS`), so a model trained on one reads the other.
Groups are sequences named `S005_001` (CK+48: `<class folder>/S005_001`); the subject is `S005`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from affecttrack.data.detect import DEFAULT_DETECTOR
from affecttrack.data.groups import (
    Crop,
    FaceGroup,
    ImageFiles,
    Problem,
    SourceScan,
    label_table,
    numbered_stem,
)
from affecttrack.data.images import FaceFinder, cropped_loader, is_image, load_cropped
from affecttrack.data.sources.photos import Photo, photo_groups
from affecttrack.data.store import build_store
from affecttrack.errors import InputError
from affecttrack.labels import CKPLUS_EXPRESSIONS, canonical_expression

IMAGES_FOLDER = "cohn-kanade-images"
EMOTION_FOLDER = "Emotion"
CK48_FOLDER = "CK+48"
CK48_CLASS_FOLDERS: tuple[str, ...] = ("anger", "contempt", "disgust", "fear", "happy", "sadness",
                                       "surprise")
PEAK_FRAMES = 3
NEUTRAL = 0


def ckplus_layout(root: Path) -> tuple[str, Path]:
    """("ckplus", root) for a full tree, ("ck48", folder) for CK+48 class folders (in `root` or in
    `root/CK+48`); an InputError naming what was expected otherwise."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "folder not found; expected a CK+ tree "
                               f"({IMAGES_FOLDER}/, {EMOTION_FOLDER}/) or CK+48 class folders")
    if (root / IMAGES_FOLDER).is_dir():
        return "ckplus", root
    for folder in (root, root / CK48_FOLDER):
        if folder.is_dir() and any((folder / name).is_dir() for name in CK48_CLASS_FOLDERS):
            return "ck48", folder
    raise InputError(root, f"neither a CK+ tree ({IMAGES_FOLDER}/S005/001/*.png and "
                           f"{EMOTION_FOLDER}/) nor CK+48 class folders "
                           f"({', '.join(CK48_CLASS_FOLDERS)})")


def read_emotion_file(path: Path) -> int | Problem:
    """The sequence's label (1-7) from an Emotion file holding one float like `3.0000000e+00`."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError as error:
        return Problem("unreadable_file", path, f"cannot read emotion file ({error}); "
                                                "sequence skipped")
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not value.is_integer() or not 1 <= value < len(CKPLUS_EXPRESSIONS):
        return Problem("bad_label", path, f"emotion file holds {text[:40]!r}, expected one number "
                                          f"1-{len(CKPLUS_EXPRESSIONS) - 1} such as "
                                          "3.0000000e+00; sequence skipped")
    return int(value)


def _emotion_label(folder: Path) -> int | Problem:
    files = sorted(folder.glob("*_emotion.txt")) if folder.is_dir() else []
    if not files:
        return Problem("unlabelled_sequence", folder, "no emotion file (CK+ labels 327 of its 593 "
                                                      "sequences); sequence skipped")
    if len(files) > 1:
        return Problem("bad_label", folder, f"{len(files)} emotion files for one sequence; "
                                            "sequence skipped")
    return read_emotion_file(files[0])


def _sequence_frames(folder: Path) -> tuple[dict[int, str], list[Problem]]:
    """frame number -> file name of a sequence folder's images."""
    frames: dict[int, str] = {}
    problems = []
    for path in sorted(folder.iterdir()):
        if not (path.is_file() and is_image(path)):
            continue
        _, number = numbered_stem(path.stem)
        if number is None or number in frames:
            problems.append(Problem("bad_frame_name", path, "not a numbered frame like "
                                    "S005_001_00000001.png (or a repeated number); image skipped"))
        else:
            frames[number] = path.name
    return frames, problems


def _sequence_group(subject: str, folder: Path, emotion_root: Path,
                    load: FaceFinder) -> tuple[FaceGroup | None, list[Problem]]:
    """The labelled sequence's first frame (Neutral) and last 3 frames (its label)."""
    label = _emotion_label(emotion_root / subject / folder.name)
    frames, problems = _sequence_frames(folder)
    if isinstance(label, Problem):
        return None, problems + [label]
    if len(frames) < 2:
        return None, problems + [Problem("too_short", folder, f"{len(frames)} frame(s); a "
                                         "labelled sequence needs a first and a last frame; "
                                         "sequence skipped")]
    numbers = sorted(frames)
    chosen = [numbers[0], *numbers[max(1, len(numbers) - PEAK_FRAMES):]]
    expression = [NEUTRAL] + [label] * (len(chosen) - 1)
    reader = ImageFiles(folder, np.array(chosen, dtype=np.int32),
                        [frames[number] for number in chosen], load)
    return (FaceGroup(f"{subject}_{folder.name}", "train", subject, reader,
                      label_table(chosen, expression=expression)), problems)


def scan_ckplus(root: Path, load: FaceFinder) -> SourceScan:
    """A full CK+ tree as one group per labelled sequence."""
    root = Path(root)
    scan = SourceScan("ckplus", "CK+", root, CKPLUS_EXPRESSIONS, kind="sequence",
                      config=load.settings, extra={"layout": "ckplus"})
    images, emotion_root = root / IMAGES_FOLDER, root / EMOTION_FOLDER
    if not emotion_root.is_dir():
        raise InputError(emotion_root, "folder not found; CK+'s labels are "
                                       f"{EMOTION_FOLDER}/S005/001/S005_001_00000011_emotion.txt")
    for subject in sorted(path for path in images.iterdir() if path.is_dir()):
        for folder in sorted(path for path in subject.iterdir() if path.is_dir()):
            group, problems = _sequence_group(subject.name, folder, emotion_root, load)
            scan.problems += problems
            if group is not None:
                scan.groups.append(group)
    scan.problems += [Problem("missing_file", path, f"label of a sequence without images (no "
                                                    f"{IMAGES_FOLDER}/{path.parent.parent.name}/"
                                                    f"{path.parent.name}/); label skipped")
                      for path in sorted(emotion_root.glob("*/*/*_emotion.txt"))
                      if not (images / path.parent.parent.name / path.parent.name).is_dir()]
    return scan


def _ck48_photos(root: Path) -> tuple[list[Photo], list[Problem]]:
    photos, problems = [], []
    for folder in sorted(path for path in root.iterdir() if path.is_dir()):
        name = canonical_expression(folder.name)
        if name not in CKPLUS_EXPRESSIONS:
            problems.append(Problem("unknown_label", folder, "not a CK+48 class folder "
                                    f"({', '.join(CK48_CLASS_FOLDERS)}); folder skipped"))
            continue
        for path in sorted(folder.iterdir()):
            if not (path.is_file() and is_image(path)):
                continue
            sequence, number = numbered_stem(path.stem)
            if number is None:
                problems.append(Problem("bad_frame_name", path, "not named like "
                                        "S010_004_00000017.png; image skipped"))
                continue
            photos.append(Photo(path, f"{folder.name}/{sequence}", number,
                                sequence.split("_")[0], expression=CKPLUS_EXPRESSIONS.index(name)))
    return photos, problems


def scan_ckplus48(root: Path,
                  load: Callable[[Path], Crop | Problem] = load_cropped) -> SourceScan:
    """CK+48 class folders as one group per (class folder, sequence); crops are used as they are."""
    photos, problems = _ck48_photos(Path(root))
    groups, more = photo_groups(photos, load)
    return SourceScan("ckplus", "CK+48", Path(root), CKPLUS_EXPRESSIONS, kind="sequence",
                      groups=groups, problems=problems + more, config={"detect": False},
                      extra={"layout": "ck48"})


def prepare_ckplus(root: Path, out: Path, *, detector: str = DEFAULT_DETECTOR, margin: float = 0.1,
                   align: bool = False, max_pixels: int | None = None, progress: bool = True,
                   workers: int = 1) -> dict[str, Any]:
    """CK+ (full tree, with face detection) or CK+48 (cropped) -> face store in `out`.

    Which layout `root` holds is detected; every group gets split "train" (CK+ has no split of its
    own: classification protocols split by subject later). Images over `max_pixels` (None:
    `images.MAX_PIXELS`) are skipped unread. `align` aligns detected faces by the eyes (CK+48's
    crops are used as they are, like `detector` and `margin`). Resumable like every prepare.
    """
    def scan() -> SourceScan:
        layout, folder = ckplus_layout(root)
        if layout == "ck48":
            return scan_ckplus48(folder, cropped_loader(max_pixels))
        return scan_ckplus(folder, FaceFinder(detector, margin, max_pixels, align))

    return build_store(scan, out, progress=progress, workers=workers)

