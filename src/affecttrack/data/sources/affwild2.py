"""Reading an Aff-Wild2 / ABAW tree: which face images each video has and its per-frame labels.

Layout (DESIGN.md section 3)::

    ROOT/cropped_aligned/<video>/00001.jpg ...                (missing numbers: no face)
    ROOT/annotations/VA_Set/{Train_Set,Validation_Set}/<video>.txt
    ROOT/annotations/EXPR_Set/{Train_Set,Validation_Set}/<video>.txt
    ROOT/annotations/AU_Set/{Train_Set,Validation_Set}/<video>.txt

Later releases name the task folders VA_Estimation_Challenge, EXPR_Recognition_Challenge and
AU_Detection_Challenge, add an eighth expression, Other, and annotate 12 action units instead of
8 (the AU files' headers name them). Line i after a file's header labels frame i. The scan only
lists files and reads the small annotation texts; decoding the ~2.8M images is the face store's
job.

Problems that spoil one file or video are collected, not raised, so one bad file in a tree of
hundreds does not stop a multi-hour prepare; only a tree whose layout cannot be read at all raises
InputError. `AffWild2Scan.source_scan` describes the tree as groups of frames for the face store
and `prepare_affwild2` builds that store.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from affecttrack.data.groups import (
    MAX_FRAME,
    Crop,
    FaceGroup,
    ImageFiles,
    Problem,
    SourceScan,
    label_table,
)
from affecttrack.data.images import cropped_loader
from affecttrack.data.store import build_store
from affecttrack.errors import InputError
from affecttrack.labels import (
    AFFWILD2_EXPRESSIONS,
    AU_UNANNOTATED,
    is_action_unit,
    sorted_action_units,
)

FRAMES_FOLDER = "cropped_aligned"
ANNOTATIONS_FOLDER = "annotations"
TASK_FOLDERS: dict[str, tuple[str, ...]] = {
    "va": ("VA_Set", "VA_Estimation_Challenge"),
    "expr": ("EXPR_Set", "EXPR_Recognition_Challenge"),
    "au": ("AU_Set", "AU_Detection_Challenge"),
}
SPLIT_FOLDERS: dict[str, str] = {"Train_Set": "train", "Validation_Set": "val"}
VA_HEADER: tuple[str, ...] = ("valence", "arousal")
EXPR_HEADERS: tuple[tuple[str, ...], ...] = (AFFWILD2_EXPRESSIONS,
                                              AFFWILD2_EXPRESSIONS + ("Other",))
IMAGE_SUFFIXES = (".jpg", ".jpeg")
_MAX_LINES_NAMED = 5


@dataclass(frozen=True)
class AffWild2Video:
    """One video's face images and labels.

    `frames` (sorted, int32) are the frame numbers that have a face image, the file names in
    `folder` aligned with them in `files`. `va` is (lines, 2) float32 with NaN where a frame is not
    annotated, `expression` (lines,) int16 with -1; both are empty when the video has no such file.
    `expressions` are the class names of its EXPR file's header (later releases add "Other").
    `au` is (lines, k) int8 0/1 with -1 where unknown, one column per name in `action_units`
    (its AU file's header), empty when the video has no AU file.
    Aff-Wild2 shows one person per video (the `_left`/`_right` videos are two people with two
    annotation files), so the subject is the video name.
    """

    name: str
    split: str
    folder: Path
    frames: np.ndarray
    files: np.ndarray
    va: np.ndarray
    expression: np.ndarray
    expressions: tuple[str, ...] = AFFWILD2_EXPRESSIONS
    au: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int8))
    action_units: tuple[str, ...] = ()

    @property
    def subject(self) -> str:
        return self.name

    def path(self, position: int) -> Path:
        """The image of the `position`-th face frame."""
        return self.folder / str(self.files[position])

    def frame_table(self) -> pd.DataFrame:
        """Every frame with a face or a label: frame, face (position in `frames`, -1 none),
        valence, arousal (NaN = not annotated), expression (-1 = not annotated), then one column
        per action unit of `action_units` (-1 = unknown)."""
        labelled = np.zeros(max(len(self.va), len(self.expression), len(self.au)), dtype=bool)
        if len(self.va):
            labelled[:len(self.va)] |= np.isfinite(self.va[:, 0])
        labelled[:len(self.expression)] |= self.expression >= 0
        if len(self.au):
            labelled[:len(self.au)] |= (self.au >= 0).any(axis=1)
        frames = np.union1d(self.frames, np.flatnonzero(labelled) + 1).astype(np.int32)
        face = np.searchsorted(self.frames, frames)
        has_face = face < len(self.frames)
        has_face[has_face] = self.frames[face[has_face]] == frames[has_face]
        va = _per_frame(self.va, frames, np.nan)
        au = _per_frame(self.au, frames, AU_UNANNOTATED)
        return pd.DataFrame({
            "frame": frames,
            "face": np.where(has_face, face, -1).astype(np.int64),
            "valence": va[:, 0],
            "arousal": va[:, 1],
            "expression": _per_frame(self.expression, frames, -1),
            **{name: au[:, k] for k, name in enumerate(self.action_units)},
        })

    def group(self, load: Callable[[Path], Crop | Problem]) -> FaceGroup:
        """The video as a face-store group whose images are cropped by `load`."""
        table = self.frame_table()
        units = list(self.action_units)
        labelled = table[np.isfinite(table["valence"]) | (table["expression"] >= 0)
                         | (table[units] >= 0).any(axis=1)]
        return FaceGroup(self.name, self.split, self.subject,
                         ImageFiles(self.folder, self.frames, self.files, load),
                         label_table(labelled["frame"], labelled["valence"], labelled["arousal"],
                                     labelled["expression"],
                                     {name: labelled[name] for name in units}))


@dataclass
class AffWild2Scan:
    """The videos of a tree (sorted by name) and what was skipped while reading it."""

    root: Path
    videos: list[AffWild2Video] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def frame_files(self) -> int:
        return sum(len(video.frames) for video in self.videos)

    @property
    def expressions(self) -> tuple[str, ...]:
        """The tree's expression classes: the longest EXPR header found (7, or 8 with Other)."""
        return max((video.expressions for video in self.videos), key=len,
                   default=AFFWILD2_EXPRESSIONS)

    @property
    def action_units(self) -> tuple[str, ...]:
        """Every action unit some video's AU file names, in FACS order (a video lacking one
        reads it as unknown)."""
        return sorted_action_units(name for video in self.videos for name in video.action_units)

    def source_scan(self, load: Callable[[Path], Crop | Problem]) -> SourceScan:
        """The tree as face-store groups, one per video."""
        return SourceScan("affwild2", "Aff-Wild2", self.root, self.expressions, kind="video",
                          groups=[video.group(load) for video in self.videos],
                          problems=list(self.problems), action_units=self.action_units)


def _per_frame(values: np.ndarray, frames: np.ndarray, missing: float) -> np.ndarray:
    """values[frame - 1] for 1-based frames, `missing` past the end of the annotation file."""
    shape = (len(frames),) + values.shape[1:]
    out = np.full(shape, missing, dtype=values.dtype)
    inside = (frames >= 1) & (frames <= len(values))
    out[inside] = values[frames[inside] - 1]
    return out


def _read_lines(path: Path) -> list[str] | Problem:
    """The file's lines without trailing blank ones; a Problem when it cannot be read as text."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        return Problem("unreadable_file", path, f"cannot read annotation file ({error})")
    return text.rstrip().splitlines()


def _header_problem(path: Path, lines: list[str],
                    expected: tuple[tuple[str, ...], ...]) -> Problem | None:
    names = tuple(part.strip().lower() for part in lines[0].split(",")) if lines else ()
    if names in {tuple(name.lower() for name in header) for header in expected}:
        return None
    found = repr(lines[0][:80]) if lines else "an empty file"
    wanted = " or ".join(repr(",".join(header)) for header in expected)
    return Problem("bad_header", path, f"header is {found}, expected {wanted}; file skipped")


def _bad_lines_problem(path: Path, bad: list[int]) -> Problem:
    named = ", ".join(str(line) for line in bad[:_MAX_LINES_NAMED])
    more = f" and {len(bad) - _MAX_LINES_NAMED} more" if len(bad) > _MAX_LINES_NAMED else ""
    return Problem("bad_lines", path, f"{len(bad)} malformed line(s) (file lines {named}{more}) "
                                      "read as not annotated")


def read_va_file(path: Path) -> tuple[np.ndarray | None, list[Problem]]:
    """(frames, 2) float32 valence/arousal, NaN where not annotated; None if the file is unusable.

    A value outside [-1, 1] (Aff-Wild2 writes -5) means "not annotated"; both values of such a
    frame become NaN so a frame is either fully labelled or not at all. A malformed line (not two
    numbers) is read as not annotated and reported rather than discarding a whole video's labels.
    """
    lines = _read_lines(path)
    if isinstance(lines, Problem):
        return None, [lines]
    header = _header_problem(path, lines, (VA_HEADER,))
    if header:
        return None, [header]
    values = np.full((len(lines) - 1, 2), np.nan, dtype=np.float32)
    bad: list[int] = []
    for i, line in enumerate(lines[1:]):
        parts = line.split(",")
        try:
            pair = (float(parts[0]), float(parts[1])) if len(parts) == 2 else None
        except ValueError:
            pair = None
        if pair is None:
            bad.append(i + 2)
        elif -1 <= pair[0] <= 1 and -1 <= pair[1] <= 1:
            values[i] = pair
    return values, [_bad_lines_problem(path, bad)] if bad else []


def read_expr_file(path: Path) -> tuple[np.ndarray | None, tuple[str, ...], list[Problem]]:
    """(frames,) int16 expression (Aff-Wild2 order), -1 where not annotated; None if unusable;
    with the header's class names (later releases add "Other" as class 7).

    Values other than -1 and the header's class indices are malformed lines, read as not annotated
    and reported.
    """
    lines = _read_lines(path)
    if isinstance(lines, Problem):
        return None, AFFWILD2_EXPRESSIONS, [lines]
    header = _header_problem(path, lines, EXPR_HEADERS)
    if header:
        return None, AFFWILD2_EXPRESSIONS, [header]
    classes = len(lines[0].split(","))
    values = np.full(len(lines) - 1, -1, dtype=np.int16)
    bad: list[int] = []
    for i, line in enumerate(lines[1:]):
        try:
            value = int(line.strip())
        except ValueError:
            value = None
        if value is None or not -1 <= value < classes:
            bad.append(i + 2)
        else:
            values[i] = value
    return values, EXPR_HEADERS[classes - len(AFFWILD2_EXPRESSIONS)], (
        [_bad_lines_problem(path, bad)] if bad else [])


def read_au_file(path: Path) -> tuple[np.ndarray | None, tuple[str, ...], list[Problem]]:
    """(frames, k) int8 action-unit activations (0/1, -1 = unknown) and the header's k AU names
    (8 in the 2020 release, 12 later: whatever the file says); None if the file is unusable.

    A line that is not k values of -1, 0 or 1 is a malformed line, read as unknown and reported.
    """
    lines = _read_lines(path)
    if isinstance(lines, Problem):
        return None, (), [lines]
    names = tuple(part.strip().upper() for part in lines[0].split(",")) if lines else ()
    if not names or not all(map(is_action_unit, names)) or len(set(names)) < len(names):
        found = repr(lines[0][:80]) if lines else "an empty file"
        return None, (), [Problem("bad_header", path, f"header is {found}, expected distinct "
                                                      "action-unit names such as 'AU1,AU2,AU4'; "
                                                      "file skipped")]
    values = np.full((len(lines) - 1, len(names)), AU_UNANNOTATED, dtype=np.int8)
    bad: list[int] = []
    for i, line in enumerate(lines[1:]):
        parts = line.split(",")
        try:
            row = [int(part) for part in parts] if len(parts) == len(names) else None
        except ValueError:
            row = None
        if row is None or not all(-1 <= value <= 1 for value in row):
            bad.append(i + 2)
        else:
            values[i] = row
    return values, names, [_bad_lines_problem(path, bad)] if bad else []


def _task_folder(annotations: Path, task: str) -> Path | None:
    found = [annotations / name for name in TASK_FOLDERS[task] if (annotations / name).is_dir()]
    if len(found) > 1:
        raise InputError(annotations, f"holds both {found[0].name}/ and {found[1].name}/ (two "
                                      "releases mixed); keep one of them")
    return found[0] if found else None


def _annotation_files(task_folder: Path) -> dict[str, list[tuple[str, Path]]]:
    """video -> [(split, file)] for one task; a folder without split folders is an error."""
    split_folders = [task_folder / name for name in SPLIT_FOLDERS if (task_folder / name).is_dir()]
    if not split_folders:
        loose = len(list(task_folder.glob("*.txt")))
        raise InputError(task_folder, f"expected {' and '.join(SPLIT_FOLDERS)} folders of "
                                      f"<video>.txt files; found {loose} .txt file(s) and no split "
                                      "folders, so the train/validation split is unknown")
    files: dict[str, list[tuple[str, Path]]] = {}
    for folder in split_folders:
        for path in sorted(folder.glob("*.txt")):
            files.setdefault(path.stem, []).append((SPLIT_FOLDERS[folder.name], path))
    return files


def _choose_split(name: str, entries: list[tuple[str, Path]]) -> tuple[str, list[Problem]]:
    """A video annotated as both train and validation goes to validation, so that no
    validation score is ever measured on a video the model was trained on."""
    splits = {split for split, _ in entries}
    if len(splits) == 1:
        return splits.pop(), []
    files = ", ".join(str(path) for _, path in entries)
    return "val", [Problem("split_conflict", entries[0][1],
                           f"video {name!r} is annotated in both train and validation ({files}); "
                           "using it for validation only")]


def _frame_files(folder: Path) -> tuple[np.ndarray, np.ndarray, list[Problem]]:
    """Sorted frame numbers and file names of a video folder's face images."""
    numbered: dict[int, str] = {}
    problems: list[Problem] = []
    with os.scandir(folder) as entries:
        names = sorted(entry.name for entry in entries
                       if entry.name.lower().endswith(IMAGE_SUFFIXES) and entry.is_file())
    for name in names:
        stem = name.rsplit(".", 1)[0]
        if not (stem.isdecimal() and int(stem) <= MAX_FRAME):
            problems.append(Problem("bad_frame_name", folder / name,
                                    "image name is not a frame number; image skipped"))
        elif int(stem) in numbered:
            problems.append(Problem("duplicate_frame", folder / name,
                                    f"frame {int(stem)} also stored as {numbered[int(stem)]}; "
                                    "image skipped"))
        else:
            numbered[int(stem)] = name
    frames = np.array(sorted(numbered), dtype=np.int32)
    files = np.array([numbered[frame] for frame in frames.tolist()], dtype=str)
    return frames, files, problems


def _required_folder(path: Path, expected: str) -> Path:
    if not path.is_dir():
        raise InputError(path, f"folder not found; an Aff-Wild2 tree needs {expected}")
    return path


def _annotations(annotations: Path) -> dict[str, dict[str, list[tuple[str, Path]]]]:
    """task -> video -> [(split, file)] for the tasks present; at least one must be."""
    tasks = {task: _task_folder(annotations, task) for task in TASK_FOLDERS}
    if not any(tasks.values()):
        expected = ", ".join(name for names in TASK_FOLDERS.values() for name in names)
        raise InputError(annotations, f"no annotation folder found; expected one of {expected}")
    return {task: _annotation_files(folder) for task, folder in tasks.items() if folder}


def _label_file(files_by_task: dict[str, list[tuple[str, Path]]], task: str,
                split: str) -> Path | None:
    """The chosen split's file first: a task may annotate the video in the other split only."""
    candidates = sorted(files_by_task.get(task, []), key=lambda entry: entry[0] != split)
    return candidates[0][1] if candidates else None


def _scan_video(name: str, folder: Path, files_by_task: dict[str, list[tuple[str, Path]]]
                ) -> tuple[AffWild2Video | None, list[Problem]]:
    entries = [entry for task_entries in files_by_task.values() for entry in task_entries]
    split, problems = _choose_split(name, entries) if entries else ("test", [])
    va_file, expr_file, au_file = (_label_file(files_by_task, task, split)
                                   for task in ("va", "expr", "au"))
    va, va_problems = read_va_file(va_file) if va_file else (None, [])
    expression, classes, expr_problems = (read_expr_file(expr_file) if expr_file
                                          else (None, AFFWILD2_EXPRESSIONS, []))
    au, units, au_problems = read_au_file(au_file) if au_file else (None, (), [])
    problems += va_problems + expr_problems + au_problems
    if not folder.is_dir():
        return None, problems + [Problem("no_frames_folder", folder,
                                         f"video {name!r} is annotated but has no face images "
                                         "folder; video skipped")]
    frames, files, frame_problems = _frame_files(folder)
    problems += frame_problems
    if not len(frames):
        return None, problems + [Problem("empty_video", folder,
                                         "video folder holds no frame images; video skipped")]
    va = va if va is not None else np.zeros((0, 2), dtype=np.float32)
    expression = expression if expression is not None else np.zeros(0, dtype=np.int16)
    au = au if au is not None else np.zeros((0, 0), dtype=np.int8)
    return AffWild2Video(name, split, folder, frames, files, va, expression, classes, au,
                         units), problems


def scan_affwild2(root: Path) -> AffWild2Scan:
    """List a tree's videos, face images and labels, collecting every skipped file as a Problem.

    Videos with a frames folder but no annotation file get split "test" (the challenge's test set
    ships without labels); annotated videos without images are skipped.
    """
    root = Path(root)
    _required_folder(root, f"{FRAMES_FOLDER}/ and {ANNOTATIONS_FOLDER}/ inside it")
    frames_root = _required_folder(root / FRAMES_FOLDER, f"{FRAMES_FOLDER}/<video>/00001.jpg ...")
    annotations = _annotations(_required_folder(
        root / ANNOTATIONS_FOLDER, f"{ANNOTATIONS_FOLDER}/VA_Set/Train_Set/<video>.txt ..."))
    names = {path.name for path in frames_root.iterdir() if path.is_dir()}
    for files in annotations.values():
        names.update(files)
    scan = AffWild2Scan(root)
    for name in sorted(names):
        files_by_task = {task: files[name] for task, files in annotations.items() if name in files}
        video, problems = _scan_video(name, frames_root / name, files_by_task)
        scan.problems += problems
        if video is not None:
            scan.videos.append(video)
    return scan


def prepare_affwild2(root: Path, out: Path, *, max_pixels: int | None = None,
                     progress: bool = True, workers: int = 1) -> dict[str, Any]:
    """Aff-Wild2 tree -> face store in `out` (already aligned crops: no detection). Resumable.

    Images over `max_pixels` (None: `images.MAX_PIXELS`) are skipped unread."""
    load = cropped_loader(max_pixels)
    return build_store(lambda: scan_affwild2(root).source_scan(load), out,
                       progress=progress, workers=workers)
