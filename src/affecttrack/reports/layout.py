"""Which files of a run folder a report shows, and in which section.

A folder that holds something to show (a run.json, markdown, JSON or a PNG figure) is a section;
every other file (checkpoints, Parquet, npy, videos, CSV, files over the size limits) is listed
with its size under the nearest such folder, so nothing of the run goes unmentioned.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from affecttrack.natural_order import natural_key

# Largest file of each kind that is shown in the page rather than listed.
SHOWN_LIMITS = {".png": 5_000_000, ".md": 1_000_000, ".json": 1_000_000}
# A folder with more listed files than this is listed as one line per file type.
MAX_FILES_PER_FOLDER = 20


@dataclass(frozen=True)
class Listed:
    """A file, or a folder of many files, mentioned with its size instead of shown."""

    name: str
    size: int
    files: int = 1
    note: str = ""


@dataclass
class Section:
    """One folder of the run (`Path(".")` for the run itself): the files shown, in the order
    of the page, and what is only listed."""

    folder: Path
    shown: list[Path] = field(default_factory=list)
    listed: list[Listed] = field(default_factory=list)


def _show_rank(path: Path) -> tuple[int, list]:
    """run.json first, then the results table, other markdown, metrics, predict summaries,
    figures, other JSON."""
    name, suffix = path.name, path.suffix.lower()
    rank = (0 if name == "run.json" else 1 if name == "table.md" else 2 if suffix == ".md" else
            3 if name == "metrics.json" else 4 if name == "summary.json" else
            5 if suffix == ".png" else 6)
    return rank, natural_key(path.as_posix())


def _too_large(path: Path, size: int) -> bool:
    return size > SHOWN_LIMITS[path.suffix.lower()]


def _files(run_dir: Path, exclude: Collection[Path]) -> list[tuple[Path, int]]:
    """(path relative to run_dir, size) of every file under it but `exclude` (absolute paths);
    linked folders are not followed."""
    root = run_dir.resolve()
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            if path not in exclude and path.is_file():
                found.append((path.relative_to(root), path.stat().st_size))
    return found


def _by_type(folder: Path, entries: list[tuple[Path, int, str]]) -> list[Listed]:
    """One line per file type of a folder with many files: `frames/*.jpg`, 300 files."""
    by_suffix: dict[str, list[int]] = defaultdict(list)
    for path, size, _ in entries:
        by_suffix[path.suffix].append(size)
    return [Listed((folder / f"*{suffix}").as_posix(), sum(sizes), len(sizes))
            for suffix, sizes in sorted(by_suffix.items())]


def _listing(entries: list[tuple[Path, int, str]], section: Path) -> list[Listed]:
    """Listed files relative to their section, folders with many files by file type."""
    by_folder: dict[Path, list[tuple[Path, int, str]]] = defaultdict(list)
    for path, size, note in entries:
        by_folder[path.parent.relative_to(section)].append((path, size, note))
    listed = []
    for folder in sorted(by_folder, key=lambda folder: natural_key(folder.as_posix())):
        group = sorted(by_folder[folder], key=lambda entry: natural_key(entry[0].as_posix()))
        if len(group) > MAX_FILES_PER_FOLDER:
            listed.extend(_by_type(folder, group))
        else:
            listed.extend(Listed(path.relative_to(section).as_posix(), size, note=note)
                          for path, size, note in group)
    return listed


def plan_sections(run_dir: Path, exclude: Collection[Path] = ()) -> list[Section]:
    """The sections of the report on `run_dir`: the run's own folder first, then the others in
    natural path order; `exclude` (resolved paths) leaves out the report itself."""
    shown: dict[Path, list[Path]] = defaultdict(list)
    others: list[tuple[Path, int, str]] = []
    for path, size in _files(run_dir, set(exclude)):
        if path.suffix.lower() not in SHOWN_LIMITS:
            others.append((path, size, ""))
        elif _too_large(path, size):
            others.append((path, size, "too large to show"))
        else:
            shown[path.parent].append(path)
    folders = sorted(set(shown) | {Path(".")}, key=lambda folder: (folder != Path("."),
                                                                    natural_key(folder.as_posix())))
    sections = {folder: Section(folder, sorted(shown[folder], key=_show_rank))
                for folder in folders}
    unlisted: dict[Path, list[tuple[Path, int, str]]] = defaultdict(list)
    for entry in others:
        home = next(parent for parent in entry[0].parents if parent in sections)
        unlisted[home].append(entry)
    for folder, entries in unlisted.items():
        sections[folder].listed = _listing(entries, folder)
    return [section for section in sections.values() if section.shown or section.listed]
