"""Reading a folder of videos, each with a per-frame label CSV of the same name.

    ROOT/<name>.mp4 (.avi, .mov, .webm, .mkv, .m4v)   decoded with PyAV
    ROOT/<name>.csv                                   frame,valence,arousal[,expression]

`frame` is 1-based (rows without a frame column label frames 1, 2, ...); valence/arousal outside
[-1, 1] (such as Aff-Wild2's -5) and expression -1 mean "not annotated". Expressions are either
class numbers in Aff-Wild2's order (as Aff-Wild2's files and the synthetic generator write them) or
names, matched like the folder source's. Faces are found by detection in every decoded frame. A
video without a CSV is kept unlabelled in split "test" (as Aff-Wild2's unannotated test videos);
the others get split "train". A video that cannot be opened is reported and skipped; one that
stops decoding early keeps the frames decoded so far and is reported as truncated.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from affecttrack.data.detect import DEFAULT_DETECTOR
from affecttrack.data.groups import (
    MAX_FRAME,
    Crop,
    FaceGroup,
    Mapper,
    Problem,
    SourceScan,
    label_table,
)
from affecttrack.data.images import FaceFinder
from affecttrack.data.sources.label_csv import (
    AROUSAL_COLUMNS,
    LABEL_COLUMNS,
    VALENCE_COLUMNS,
    find_column,
    read_label_csv,
    unit_value,
)
from affecttrack.data.sources.photos import classes_of
from affecttrack.data.store import build_store
from affecttrack.data.video_frames import VIDEO_SUFFIXES, decode_frames, probe_video
from affecttrack.errors import InputError
from affecttrack.labels import AFFWILD2_EXPRESSIONS, canonical_expression

DETECT_CHUNK = 32  # decoded frames handed to the mapper at once (a 1080p grey frame is 2 MB)
_NAMED_LINES = 5


@dataclass(frozen=True)
class VideoFrames:
    """Every frame of a video file, numbered from 1 as decoded, cropped by face detection.

    `labelled_until` is the last frame its CSV labels: a video that decodes fewer frames is
    reported as truncated.
    """

    path: Path
    finder: FaceFinder
    labelled_until: int = 0
    frames: None = None  # not known before decoding

    def fingerprint(self) -> list[int]:
        stat = self.path.stat()
        return [stat.st_size, stat.st_mtime_ns]

    def _crops(self, first: int, images: list[np.ndarray],
               mapper: Mapper) -> Iterator[tuple[int, Crop | Problem]]:
        numbers = range(first, first + len(images))
        crops = mapper(lambda item: self.finder.crop(item[1], self.path, f"frame {item[0]}"),
                       list(zip(numbers, images)))
        return zip(numbers, crops)

    def read(self, mapper: Mapper) -> Iterator[tuple[int, Crop | Problem]]:
        decoded, chunk = 0, []
        try:
            for frame in decode_frames(self.path):
                chunk.append(frame.image)
                if len(chunk) == DETECT_CHUNK:
                    yield from self._crops(decoded + 1, chunk, mapper)
                    decoded, chunk = decoded + len(chunk), []
        except InputError as error:
            yield from self._crops(decoded + 1, chunk, mapper)
            decoded += len(chunk)
            yield decoded + 1, Problem("truncated_video", self.path,
                                       f"{error.problem}; the rest skipped")
            return
        yield from self._crops(decoded + 1, chunk, mapper)
        decoded += len(chunk)
        if decoded < self.labelled_until:
            yield decoded + 1, Problem("truncated_video", self.path, f"{decoded} frames decoded "
                                       f"but its CSV labels frames up to {self.labelled_until}; "
                                       "labelled frames past the end kept without a face")


def _probe(path: Path) -> Problem | None:
    """Why the video cannot be read at all (None: it opens and has a video stream)."""
    try:
        probe_video(path)
    except InputError as error:
        return Problem("corrupt_video", path, f"{error.problem}; video skipped")
    return None


def _expression_name(text: str) -> str | None:
    """Canonical name of a CSV expression cell (None = not annotated); ValueError if unknown."""
    text = text.strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        name = canonical_expression(text)
        if name is None:
            raise ValueError(text) from None
        return name
    names = (*AFFWILD2_EXPRESSIONS, "Other")
    if number == -1:
        return None
    if not number.is_integer() or not 0 <= number < len(names):
        raise ValueError(text)
    return names[int(number)]


@dataclass(frozen=True)
class _VideoLabels:
    frames: np.ndarray
    valence: np.ndarray
    arousal: np.ndarray
    names: list[str | None]
    numeric: bool  # every expression given as an Aff-Wild2 class number


class _Row(NamedTuple):
    frame: int
    valence: float
    arousal: float
    expression: str | None
    unknown: bool  # an expression that is no label name or class number (read as none)


def _bad_lines(path: Path, bad: list[int], reason: str) -> Problem:
    shown = ", ".join(str(line) for line in bad[:_NAMED_LINES])
    more = f" and {len(bad) - _NAMED_LINES} more" if len(bad) > _NAMED_LINES else ""
    return Problem(reason, path, f"{len(bad)} line(s) (file lines {shown}{more}) with a value "
                                 "that is not a label; read as not annotated")


def _parse_row(row: dict[str, str], line: int, columns: dict[str, str | None]) -> _Row | None:
    """The row's labels; None when its frame or valence/arousal cannot be read."""
    frame = _frame_number(str(row[columns["frame"]]).strip() if columns["frame"]
                          else str(line - 1))
    values = [unit_value(str(row[columns[what]]), what) if columns[what] else math.nan
              for what in ("valence", "arousal")]
    if frame is None or any(isinstance(v, str) for v in values):
        return None
    try:
        name = _expression_name(str(row[columns["expression"]])) if columns["expression"] else None
    except ValueError:
        return _Row(frame, float(values[0]), float(values[1]), None, True)
    return _Row(frame, float(values[0]), float(values[1]), name, False)


def _frame_number(text: str) -> int | None:
    """A frame number 1..MAX_FRAME (leading zeros allowed), None for anything else."""
    digits = text.lstrip("0")
    number = int(digits) if text.isdecimal() and 0 < len(digits) <= 10 else 0
    return number if 1 <= number <= MAX_FRAME else None


def read_frame_labels(path: Path) -> tuple[_VideoLabels | None, list[Problem]]:
    """A video's per-frame labels; None (with the Problem) when the CSV is unusable."""
    try:
        table = read_label_csv(path)
    except InputError as error:
        return None, [Problem("unreadable_file", path, f"{error.problem}; video skipped")]
    columns = {what: find_column(list(table.columns), names) for what, names in (
        ("frame", ("frame", "frame_number", "frame_index")), ("valence", VALENCE_COLUMNS),
        ("arousal", AROUSAL_COLUMNS), ("expression", LABEL_COLUMNS))}
    if not (columns["valence"] or columns["arousal"] or columns["expression"]):
        return None, [Problem("bad_header", path, "no valence, arousal or expression column "
                                                  f"(columns: {', '.join(table.columns)}); "
                                                  "video skipped")]
    rows: dict[int, _Row] = {}
    bad, unknown = [], []
    for line, row in enumerate(table.to_dict("records"), start=2):
        parsed = _parse_row(row, line, columns)
        if parsed is None or parsed.frame in rows:
            bad.append(line)
            continue
        if parsed.unknown:
            unknown.append(line)
        rows[parsed.frame] = parsed
    problems = ([_bad_lines(path, bad, "bad_lines")] if bad else []) + (
        [_bad_lines(path, unknown, "unknown_label")] if unknown else [])
    ordered = [rows[frame] for frame in sorted(rows)]
    cells = table[columns["expression"]].str.strip() if columns["expression"] else pd.Series([])
    return _VideoLabels(
        frames=np.array([r.frame for r in ordered], dtype=np.int32),
        valence=np.array([r.valence for r in ordered], dtype=np.float32),
        arousal=np.array([r.arousal for r in ordered], dtype=np.float32),
        names=[r.expression for r in ordered],
        numeric=bool(pd.to_numeric(cells[cells != ""], errors="coerce").notna().all())), problems


def _classes(labels: list[_VideoLabels]) -> tuple[str, ...]:
    """Aff-Wild2's classes (+ Other if used) when every CSV numbers them, else the names found."""
    names = [name for item in labels for name in item.names if name]
    if not names:
        return ()
    if all(item.numeric for item in labels):
        return (*AFFWILD2_EXPRESSIONS, "Other") if "Other" in names else AFFWILD2_EXPRESSIONS
    return classes_of(names)


def _group(path: Path, labels: _VideoLabels | None, classes: tuple[str, ...],
           finder: FaceFinder) -> FaceGroup:
    if labels is None:
        return FaceGroup(path.stem, "test", path.stem, VideoFrames(path, finder), label_table([]))
    expression = [classes.index(name) if name in classes else -1 for name in labels.names]
    table = label_table(labels.frames, labels.valence, labels.arousal, expression)
    labelled = table[table[["valence", "arousal"]].notna().any(axis=1) | (table["expression"] >= 0)]
    until = int(labelled["frame"].max()) if len(labelled) else 0
    return FaceGroup(path.stem, "train", path.stem, VideoFrames(path, finder, until), labelled)


def scan_videos(root: Path, finder: FaceFinder) -> SourceScan:
    """The videos in `root` (not its sub-folders) as one group each."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "folder not found; expected video files with per-frame CSVs")
    paths = sorted(path for path in root.iterdir()
                   if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES)
    if not paths:
        raise InputError(root, f"no video files ({', '.join(VIDEO_SUFFIXES)}) here")
    problems: list[Problem] = []
    videos: list[tuple[Path, _VideoLabels | None]] = []
    for path in paths:
        problem = _probe(path)
        csv_path = path.with_suffix(".csv")
        labels, label_problems = (read_frame_labels(csv_path) if csv_path.is_file()
                                  else (None, []))
        problems += [problem] if problem else label_problems
        if problem is None and not (csv_path.is_file() and labels is None):
            videos.append((path, labels))
    classes = _classes([labels for _, labels in videos if labels is not None])
    groups = [_group(path, labels, classes, finder) for path, labels in videos]
    return SourceScan("videos", "video folder", root, classes, kind="video", groups=groups,
                      problems=problems, config=finder.settings)


def prepare_videos(root: Path, out: Path, *, detector: str = DEFAULT_DETECTOR, margin: float = 0.1,
                   align: bool = False, progress: bool = True, workers: int = 1) -> dict[str, Any]:
    """A folder of videos with per-frame CSVs -> face store in `out` (faces aligned by the eyes
    with `align`). Resumable per video."""
    return build_store(lambda: scan_videos(root, FaceFinder(detector, margin, align=align)), out,
                       progress=progress, workers=workers)
