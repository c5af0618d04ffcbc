"""Reading a user's own labelled photos: class folders, or a CSV of image paths and labels.

Class folders: ``ROOT/<label>/<image>`` (optionally ``ROOT/<train|val|test>/<label>/<image>``), the
folder name being the expression. CSV: one row per image with a path column (path / image / file
...), and a label column (label / emotion / expression) and/or valence and arousal columns; an
optional subject (person) column and split column. Label names are matched case-insensitively
through `labels.canonical_expression` (so `HAPPY`, `happiness` and `Happy` are one class); the store
lists the classes found in CK+'s order. Without a subject column the person is the file name before
a trailing number (`Kimi_Raikkonen_0003.jpg` -> `Kimi_Raikkonen`).

Bad rows (a missing file, an unknown label, a value that is not a number) are reported by file and
line and skipped; the rest goes on. Faces are found by detection unless the images already are
face crops (`detect=False`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from affecttrack.data.detect import DEFAULT_DETECTOR
from affecttrack.data.groups import Crop, Fallback, Problem, SourceScan, numbered_stem
from affecttrack.data.images import FaceFinder, cropped_loader, is_file, is_image
from affecttrack.data.sources.label_csv import (
    AROUSAL_COLUMNS,
    LABEL_COLUMNS,
    VALENCE_COLUMNS,
    find_column,
    read_label_csv,
    unit_value,
)
from affecttrack.data.sources.photos import Photo, classes_of, photo_groups
from affecttrack.data.store import build_store
from affecttrack.errors import AffectTrackError, InputError
from affecttrack.labels import canonical_expression

PATH_COLUMNS = ("path", "image", "file", "filename", "file_name", "image_path", "img",
                "image_name", "filepath", "file_path")
SUBJECT_COLUMNS = ("subject", "person", "subject_id", "person_id", "identity")
SPLIT_COLUMNS = ("split", "set", "subset", "partition")
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val",
               "validation": "val", "test": "test", "testing": "test"}
_BASE_PROBE_ROWS = 50


@dataclass(frozen=True)
class _Columns:
    """Which CSV column holds what (None: the CSV has no such column)."""

    path: str
    label: str | None
    valence: str | None
    arousal: str | None
    subject: str | None
    split: str | None


def _columns(csv_path: Path, table: pd.DataFrame) -> _Columns:
    columns = list(table.columns)
    found = _Columns(*(find_column(columns, names) for names in (
        PATH_COLUMNS, LABEL_COLUMNS, VALENCE_COLUMNS, AROUSAL_COLUMNS, SUBJECT_COLUMNS,
        SPLIT_COLUMNS)))
    if found.path is None:
        raise InputError(csv_path, f"no image path column (one of {', '.join(PATH_COLUMNS)}); "
                                   f"columns are {', '.join(columns)}")
    if found.label is None and found.valence is None and found.arousal is None:
        raise InputError(csv_path, f"no label column ({', '.join(LABEL_COLUMNS)}) and no valence "
                                   f"or arousal column; columns are {', '.join(columns)}")
    return found


def _image_base(csv_path: Path, root: Path, paths: list[str]) -> Path:
    """The folder the CSV's relative paths start from: the CSV's, the root, or an images/ folder
    beside them, whichever holds most of the first rows' files."""
    candidates = list(dict.fromkeys([csv_path.parent, root, root / "images",
                                     csv_path.parent / "images"]))
    probe = [path for path in paths if path][:_BASE_PROBE_ROWS]
    return max(candidates, key=lambda base: sum(is_file(base / path) for path in probe))


@dataclass(frozen=True)
class _Labels:
    expression: str | None  # canonical name
    valence: float
    arousal: float


def _row_labels(row: dict[str, str], columns: _Columns) -> _Labels | tuple[str, str]:
    """The row's labels, or (reason, why) when they cannot be read."""
    values = []
    for column, what in ((columns.valence, "valence"), (columns.arousal, "arousal")):
        value = unit_value(str(row[column]), what) if column is not None else math.nan
        if isinstance(value, str):
            return "bad_label", value
        values.append(value)
    valence, arousal = values
    name = None
    if columns.label is not None and str(row[columns.label]).strip():
        raw = str(row[columns.label]).strip()
        name = canonical_expression(raw)
        if name is None:
            return "unknown_label", f"label {raw!r} is not an expression name I know"
    if name is None and math.isnan(valence) and math.isnan(arousal):
        return "no_label", "no label"
    return _Labels(name, valence, arousal)


def _group_of(relative: str) -> tuple[str, int]:
    """Group and frame of a photo: its folder and the name before a trailing number."""
    pure = PurePosixPath(relative.replace("\\", "/"))
    prefix, number = numbered_stem(pure.stem)
    return str(pure.parent / prefix) if str(pure.parent) != "." else prefix, number or 1


def _split(row: dict[str, str], columns: _Columns) -> str:
    value = str(row[columns.split]).strip().lower() if columns.split else ""
    return SPLIT_NAMES.get(value, "train")


def _csv_photos(csv_path: Path, root: Path) -> tuple[list[tuple[Photo, str]], list[Problem]]:
    """(photo, raw label) per usable row, and the problems of the others."""
    table = read_label_csv(csv_path)
    columns = _columns(csv_path, table)
    paths = [str(value).strip() for value in table[columns.path]]
    base = _image_base(csv_path, root, paths)
    rows, problems = [], []
    for line, (text, row) in enumerate(zip(paths, table.to_dict("records")), start=2):
        where = f"line {line} ({text or 'no path'})"
        labels = _row_labels(row, columns) if text else ("bad_row", "no image path")
        if isinstance(labels, tuple):
            problems.append(Problem(labels[0], csv_path, f"{where}: {labels[1]}; row skipped"))
            continue
        path = base / text
        if not is_file(path):
            problems.append(Problem("missing_file", path, f"named on {csv_path.name} line {line} "
                                                          "but not found; row skipped"))
            continue
        group, frame = _group_of(text)
        subject = str(row[columns.subject]).strip() if columns.subject else ""
        photo = Photo(path, f"{subject}/{group}" if subject else group, frame,
                      subject or PurePosixPath(group).name, _split(row, columns),
                      valence=labels.valence, arousal=labels.arousal)
        raw = str(row[columns.label]).strip() if columns.label else ""
        rows.append((photo, raw, f"{labels.expression}|{labels.valence}|{labels.arousal}", line))
    return _drop_repeats(csv_path, rows, problems)


def _drop_repeats(csv_path: Path, rows: list[tuple[Photo, str, str, int]],
                  problems: list[Problem]) -> tuple[list[tuple[Photo, str]], list[Problem]]:
    """An image listed twice is kept once when its labels agree and dropped when they differ.

    `rows` are (photo, raw label, labels key, CSV line).
    """
    first: dict[Path, tuple[Photo, str, str, int]] = {}
    conflicted: set[Path] = set()
    for photo, raw, key, line in rows:
        if photo.path not in first:
            first[photo.path] = (photo, raw, key, line)
            continue
        earlier = first[photo.path]
        if earlier[2] == key:
            problems.append(Problem("duplicate_row", csv_path, f"line {line}: {photo.path.name} "
                                    f"listed again (first on line {earlier[3]}); counted once"))
        else:
            conflicted.add(photo.path)
            problems.append(Problem("conflicting_label", csv_path, f"line {line}: "
                                    f"{photo.path.name} labelled {raw!r} here but {earlier[1]!r} "
                                    f"on line {earlier[3]}; image skipped"))
    kept = [(photo, raw) for path, (photo, raw, _, _) in first.items() if path not in conflicted]
    return kept, problems


def _folder_photos(root: Path) -> tuple[list[tuple[Photo, str]], list[Problem]]:
    """Photos of class folders, optionally under train/ val/ test/ folders."""
    folders = [path for path in sorted(root.iterdir()) if path.is_dir()]
    split_folders = folders and all(path.name.lower() in SPLIT_NAMES for path in folders)
    tops = [(SPLIT_NAMES[path.name.lower()], path) for path in folders] if split_folders else [
        ("train", root)]
    rows, problems = [], []
    for split, top in tops:
        problems += [Problem("no_label", path, "image outside a class folder; image skipped")
                     for path in sorted(top.iterdir()) if path.is_file() and is_image(path)]
        for folder in sorted(path for path in top.iterdir() if path.is_dir()):
            name = canonical_expression(folder.name)
            images = [path for path in sorted(folder.rglob("*"))
                      if path.is_file() and is_image(path)]
            if name is None:
                problems.append(Problem("unknown_label", folder, f"folder name {folder.name!r} is "
                                        f"not an expression name I know; {len(images)} image(s) "
                                        "skipped"))
                continue
            for path in images:
                group, frame = _group_of(str(path.relative_to(root).as_posix()))
                rows.append((Photo(path, group, frame, PurePosixPath(group).name, split),
                             folder.name))
    return rows, problems


def _label_photos(rows: list[tuple[Photo, str]]
                  ) -> tuple[list[Photo], tuple[str, ...], dict[str, str]]:
    """Photos with their expression index, the store's classes and the raw -> class mapping."""
    mapping = {raw: canonical_expression(raw) for _, raw in rows if raw}
    classes = classes_of(list(mapping))
    photos = [replace(photo, expression=classes.index(mapping[raw]) if raw else -1)
              for photo, raw in rows]
    return photos, classes, {raw: name for raw, name in sorted(mapping.items()) if name}


def find_csv(root: Path, csv: Path | None) -> Path | None:
    """The CSV to read: the one given, else the only CSV file in `root` (None: class folders)."""
    if csv is not None:
        if not Path(csv).is_file():
            raise InputError(csv, "CSV file not found")
        return Path(csv)
    found = sorted(root.glob("*.csv"))
    if len(found) > 1:
        raise InputError(root, f"holds {len(found)} CSV files ({', '.join(p.name for p in found)})"
                               "; choose one with --csv")
    return found[0] if found else None


def scan_folder(root: Path, load: Callable[[Path], Crop | Fallback | Problem], *,
                csv: Path | None = None) -> SourceScan:
    """Photos under `root` (class folders, or the rows of a CSV) as groups of a person's photos."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "folder not found")
    csv_path = find_csv(root, csv)
    rows, problems = _csv_photos(csv_path, root) if csv_path else _folder_photos(root)
    if not rows:
        raise InputError(csv_path or root, "no usable labelled image found (" + (
            "; ".join(str(problem) for problem in problems[:2]) or "no images") + ")")
    photos, classes, mapping = _label_photos(rows)
    groups, more = photo_groups(photos, load)
    settings = load.settings if isinstance(load, FaceFinder) else {"detect": False}
    return SourceScan("folder", "folder", root, classes, kind="person", groups=groups,
                      problems=problems + more,
                      config={**settings, "csv": str(csv_path) if csv_path else None},
                      extra={"layout": "csv" if csv_path else "class_folders",
                             "label_mapping": mapping})


def prepare_folder(root: Path, out: Path, *, csv: Path | None = None, detect: bool = True,
                   detector: str = DEFAULT_DETECTOR, margin: float = 0.1, align: bool = False,
                   max_pixels: int | None = None, progress: bool = True,
                   workers: int = 1) -> dict[str, Any]:
    """Class folders or a CSV of labelled images -> face store in `out`. Resumable.

    Everything gets split "train" unless the layout says otherwise (train/ val/ test/ folders, a
    split column): classification protocols split by subject later. Images over `max_pixels`
    (None: `images.MAX_PIXELS`) are skipped unread. `align` aligns detected faces by the eyes.
    """
    if align and not detect:
        raise AffectTrackError("prepare folder: --align aligns detected faces; it cannot be "
                               "combined with --no-detect")

    def scan() -> SourceScan:
        return scan_folder(root, FaceFinder(detector, margin, max_pixels, align) if detect
                           else cropped_loader(max_pixels), csv=csv)

    return build_store(scan, out, progress=progress, workers=workers)
