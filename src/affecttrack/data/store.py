"""The face store: every face crop of a dataset as uint8 96 x 96 rows of one memory-mapped array.

Decoding Aff-Wild2's ~2.8M jpgs takes far longer than any later stage reads them, so it is done
once, into `faces.npy` (N x 96 x 96, memory-mapped by readers) plus `index.parquet` (one row per
frame that has a face or a label; see docs/ARCHITECTURE.md for the columns). `summary.json` is
written last and marks the store complete.

Preparing is resumable: faces are written video by video into a preallocated `faces.partial.npy`,
and each finished video is appended to `progress.jsonl` only after its images are on disk. An
interrupted prepare therefore resumes after the last finished video; anything a half-written
video left behind lies past that point and is overwritten.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from affecttrack.data.faces import FACE_SIZE, to_face_crop
from affecttrack.data.sources.affwild2 import AffWild2Scan, AffWild2Video, Problem, scan_affwild2
from affecttrack.errors import AffectTrackError, InputError
from affecttrack.runinfo import write_json_atomic, write_run_info

log = logging.getLogger(__name__)

FACES_FILE = "faces.npy"
INDEX_FILE = "index.parquet"
SUMMARY_FILE = "summary.json"
PARTIAL_FACES_FILE = "faces.partial.npy"
PROGRESS_FILE = "progress.jsonl"
PLAN_FILE = "plan.json"
INDEX_COLUMNS: tuple[str, ...] = ("video", "frame", "row", "split", "valence", "arousal",
                                  "expression", "subject")
_INDEX_DTYPES = {"video": str, "frame": np.int32, "row": np.int64, "split": str,
                 "valence": np.float32, "arousal": np.float32, "expression": np.int16,
                 "subject": str}
SPLITS: tuple[str, ...] = ("train", "val", "test")
FACE_BYTES = FACE_SIZE * FACE_SIZE
CHUNK_FRAMES = 512


@dataclass(frozen=True)
class FaceStore:
    """A complete face store, opened read-only (faces stay on disk until indexed)."""

    path: Path
    index: pd.DataFrame
    faces: np.ndarray
    summary: dict

    @classmethod
    def open(cls, path: Path) -> FaceStore:
        path = Path(path)
        if not path.is_dir():
            raise InputError(path, "no face store here; build one with `affecttrack prepare`")
        missing = [name for name in (SUMMARY_FILE, INDEX_FILE, FACES_FILE)
                   if not (path / name).is_file()]
        if missing:
            hint = ("an interrupted prepare; run it again to resume"
                    if (path / PROGRESS_FILE).exists() else "not a complete face store")
            raise InputError(path, f"missing {', '.join(missing)} ({hint})")
        try:
            summary = json.loads((path / SUMMARY_FILE).read_text())
            index = pd.read_parquet(path / INDEX_FILE)
            faces = np.load(path / FACES_FILE, mmap_mode="r")
        except (OSError, ValueError) as error:
            raise InputError(path, f"cannot read the face store ({error})") from error
        _check_store(path, index, faces)
        return cls(path, index, faces, summary)

    def images(self, rows: np.ndarray) -> np.ndarray:
        """The face crops at `rows` (positions in faces.npy) as an in-memory (n, 96, 96) array."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self.faces)):
            raise AffectTrackError(f"{self.path}: face rows must lie in [0, {len(self.faces)}); "
                                   "row -1 marks a frame without a face image")
        return np.asarray(self.faces[rows])


def _check_store(path: Path, index: pd.DataFrame, faces: np.ndarray) -> None:
    if faces.dtype != np.uint8 or faces.shape[1:] != (FACE_SIZE, FACE_SIZE):
        raise InputError(path / FACES_FILE, f"expected uint8 (N, {FACE_SIZE}, {FACE_SIZE}) faces, "
                                            f"found {faces.dtype} {faces.shape}")
    absent = [column for column in INDEX_COLUMNS if column not in index.columns]
    if absent:
        raise InputError(path / INDEX_FILE, f"index lacks column(s) {', '.join(absent)}")
    if len(index) and index["row"].max() >= len(faces):
        raise InputError(path / INDEX_FILE, f"index refers to face row {index['row'].max()} but "
                                            f"{FACES_FILE} holds {len(faces)} rows")


def _decode_image(path: Path) -> np.ndarray | None:
    """The face crop of one jpg, or None when it cannot be decoded.

    Decoding straight to grey lets libjpeg skip the chroma planes: about 25% faster than decoding
    colour and converting, and the same crop but for a few pixels at sharp colour edges (mean
    difference 0.04 grey levels on synthetic crops). cv2 releases the GIL here, so a thread pool
    can decode in parallel.
    """
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None or image.size == 0:
        return None
    return to_face_crop(image)


@contextmanager
def _mapper(workers: int) -> Iterator[Callable[[Callable, Iterable], Iterable]]:
    if workers <= 1:
        yield map
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield pool.map


def _write_video(video: AffWild2Video, faces_file: IO[bytes], data_offset: int, start: int,
                 decode_map: Callable, bar: tqdm) -> dict[str, Any]:
    """Decode one video's images into consecutive rows from `start`; skip undecodable ones.

    Returns the progress record: where the video's rows start, how many there are and which frames
    could not be decoded (their rows are not used, so later faces move up).
    """
    row, corrupt = start, []
    for first in range(0, len(video.frames), CHUNK_FRAMES):
        positions = range(first, min(first + CHUNK_FRAMES, len(video.frames)))
        images = list(decode_map(_decode_image, [video.path(i) for i in positions]))
        corrupt += [int(video.frames[i]) for i, image in zip(positions, images) if image is None]
        good = [image for image in images if image is not None]
        if good:
            faces_file.seek(data_offset + row * FACE_BYTES)
            faces_file.write(np.stack(good).tobytes())
            row += len(good)
        bar.update(len(positions))
    faces_file.flush()
    os.fsync(faces_file.fileno())
    for frame in corrupt:
        log.warning("%s", _corrupt_problem(video, frame))
    return {"video": video.name, "start": start, "rows": row - start, "corrupt": corrupt}


def _corrupt_problem(video: AffWild2Video, frame: int) -> Problem:
    path = video.path(int(np.searchsorted(video.frames, frame)))
    return Problem("corrupt_image", path, "cannot decode image; image skipped")


def _append_progress(progress_file: IO[str], record: dict[str, Any]) -> None:
    progress_file.write(json.dumps(record) + "\n")
    progress_file.flush()
    os.fsync(progress_file.fileno())


def _plan(scan: AffWild2Scan) -> dict[str, Any]:
    """What a resumed prepare must find unchanged: the videos and their image counts."""
    return {"source": "affwild2", "videos": {video.name: len(video.frames)
                                             for video in scan.videos}}


def _read_progress(path: Path) -> list[dict[str, Any]]:
    """Finished videos, in order; a last line cut short by an interruption is dropped."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    if len(records) < len(lines):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(json.dumps(record) + "\n" for record in records))
        os.replace(tmp, path)
    return records


def _resume(out: Path, plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Progress of an earlier, interrupted prepare into `out` (empty when starting afresh)."""
    plan_path = out / PLAN_FILE
    if plan_path.exists() and json.loads(plan_path.read_text()) != plan:
        raise InputError(out, "holds an unfinished face store of a different Aff-Wild2 tree (or "
                              "the tree changed since); delete the folder or choose another one")
    write_json_atomic(plan_path, plan)
    records = _read_progress(out / PROGRESS_FILE)
    if records and not ((out / PARTIAL_FACES_FILE).exists() or (out / FACES_FILE).exists()):
        log.warning("%s: progress without a faces file; starting the prepare afresh", out)
        (out / PROGRESS_FILE).unlink()
        return []
    return records


def _read_npy_header(file: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype, tuple[int, int]]:
    """shape, fortran order, dtype and format version; leaves `file` at the start of the data."""
    version = np.lib.format.read_magic(file)
    reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
              else np.lib.format.read_array_header_2_0)
    return (*reader(file), version)


def _data_offset(path: Path) -> int:
    with open(path, "rb") as file:
        _read_npy_header(file)
        return file.tell()


def _decode_all(scan: AffWild2Scan, out: Path, records: list[dict[str, Any]], *,
                progress: bool, workers: int) -> list[dict[str, Any]]:
    """Write the faces of every video not yet finished; returns all progress records."""
    records = list(records)
    done = {record["video"] for record in records}
    todo = [video for video in scan.videos if video.name not in done]
    if not todo:
        return records
    faces_path = out / PARTIAL_FACES_FILE
    if not faces_path.exists():
        np.lib.format.open_memmap(faces_path, mode="w+", dtype=np.uint8,
                                  shape=(scan.frame_files, FACE_SIZE, FACE_SIZE))
    next_row = sum(record["rows"] for record in records)
    offset = _data_offset(faces_path)
    total = sum(len(video.frames) for video in todo)
    with (open(faces_path, "r+b") as faces_file, open(out / PROGRESS_FILE, "a") as progress_file,
          _mapper(workers) as decode_map,
          tqdm(total=total, unit="frame", desc="faces", disable=not progress) as bar):
        for video in todo:
            record = _write_video(video, faces_file, offset, next_row, decode_map, bar)
            _append_progress(progress_file, record)
            records.append(record)
            next_row += record["rows"]
    return records


def _shrink_npy(path: Path, rows: int) -> None:
    """Cut a (capacity, ...) .npy down to its first `rows` rows in place.

    Undecodable images leave the preallocated array partly unused. numpy pads .npy headers so the
    first dimension can change without moving the data, so only the header and file length change.
    """
    npy = np.lib.format
    with open(path, "r+b") as file:
        shape, fortran_order, dtype, version = _read_npy_header(file)
        offset = file.tell()
        if shape[0] == rows:
            return
        writer = npy.write_array_header_1_0 if version == (1, 0) else npy.write_array_header_2_0
        file.seek(0)
        writer(file, {"descr": npy.dtype_to_descr(dtype), "fortran_order": fortran_order,
                      "shape": (rows,) + tuple(shape[1:])})
        if file.tell() != offset:
            raise AffectTrackError(f"{path}: cannot shrink the array header in place")
        file.truncate(offset + rows * int(np.prod(shape[1:])) * dtype.itemsize)


def _video_index(video: AffWild2Video, record: dict[str, Any]) -> pd.DataFrame:
    """Index rows of one video: frames with a face image or a label."""
    table = video.frame_table()
    decoded = np.ones(len(video.frames), dtype=bool)
    decoded[np.searchsorted(video.frames, np.asarray(record["corrupt"], dtype=np.int64))] = False
    face_row = np.full(len(video.frames), -1, dtype=np.int64)
    face_row[decoded] = record["start"] + np.arange(int(decoded.sum()))
    face = table["face"].to_numpy()
    row = np.where(face >= 0, face_row[np.maximum(face, 0)], -1)
    keep = ((row >= 0) | np.isfinite(table["valence"].to_numpy())
            | (table["expression"].to_numpy() >= 0))
    n = int(keep.sum())
    return pd.DataFrame({
        "video": [video.name] * n,
        "frame": table["frame"].to_numpy()[keep],
        "row": row[keep],
        "split": [video.split] * n,
        "valence": table["valence"].to_numpy()[keep],
        "arousal": table["arousal"].to_numpy()[keep],
        "expression": table["expression"].to_numpy()[keep],
        "subject": [video.subject] * n,
    })


def _build_index(scan: AffWild2Scan, records: list[dict[str, Any]]) -> pd.DataFrame:
    """The store's index, sorted by (video, frame) because videos are scanned in name order."""
    by_video = {record["video"]: record for record in records}
    parts = [_video_index(video, by_video[video.name]) for video in scan.videos]
    index = (pd.concat(parts, ignore_index=True) if parts
             else pd.DataFrame({column: [] for column in INDEX_COLUMNS}))
    return index.astype(_INDEX_DTYPES)


def _per_split(index: pd.DataFrame, mask: np.ndarray | None = None) -> dict[str, int]:
    selected = index if mask is None else index[mask]
    counts = {split: int((selected["split"] == split).sum()) for split in SPLITS}
    counts["all"] = len(selected)
    return counts


def _summary(scan: AffWild2Scan, index: pd.DataFrame, problems: list[Problem]) -> dict[str, Any]:
    skipped: dict[str, dict[str, Any]] = {}
    for problem in problems:
        entry = skipped.setdefault(problem.reason, {"count": 0, "items": []})
        entry["count"] += 1
        entry["items"].append({"file": str(problem.path), "problem": problem.detail})
    videos = {split: sum(video.split == split for video in scan.videos) for split in SPLITS}
    videos["all"] = len(scan.videos)
    return {
        "source": "affwild2",
        "root": str(scan.root),
        "videos": videos,
        "frames": _per_split(index),
        "faces": _per_split(index, index["row"].to_numpy() >= 0),
        "labelled_va": _per_split(index, np.isfinite(index["valence"].to_numpy())),
        "labelled_expression": _per_split(index, index["expression"].to_numpy() >= 0),
        "skipped": skipped,
    }


def describe_store(summary: dict[str, Any]) -> list[str]:
    """What a prepare produced and what it skipped, for the console."""
    counts = ", ".join(f"{split} {summary['faces'][split]} faces / {summary['videos'][split]} videos"
                       for split in ("train", "val", "test") if summary["videos"].get(split))
    skipped = describe_skipped(summary)
    total = sum(entry["count"] for entry in summary.get("skipped", {}).values())
    return [f"face store: {counts}; skipped {total}", *(f"  skipped {line}" for line in skipped)]


def describe_skipped(summary: dict[str, Any], examples: int = 3) -> list[str]:
    """One line per reason something was skipped, naming a few of the files."""
    lines = []
    for reason, entry in summary.get("skipped", {}).items():
        shown = "; ".join(f"{item['file']}: {item['problem']}"
                          for item in entry["items"][:examples])
        more = f" (+{entry['count'] - examples} more)" if entry["count"] > examples else ""
        lines.append(f"{reason} x{entry['count']}: {shown}{more}")
    return lines


def _finish(scan: AffWild2Scan, out: Path, records: list[dict[str, Any]],
            workers: int) -> dict[str, Any]:
    """Index, final faces file and summary; safe to repeat if interrupted part-way."""
    index = _build_index(scan, records)
    tmp = out / (INDEX_FILE + ".tmp")
    index.to_parquet(tmp, index=False)
    os.replace(tmp, out / INDEX_FILE)
    partial = out / PARTIAL_FACES_FILE
    if partial.exists():
        _shrink_npy(partial, sum(record["rows"] for record in records))
        os.replace(partial, out / FACES_FILE)
    elif not (out / FACES_FILE).exists():
        np.lib.format.open_memmap(out / FACES_FILE, mode="w+", dtype=np.uint8,
                                  shape=(0, FACE_SIZE, FACE_SIZE))
    by_video = {video.name: video for video in scan.videos}
    problems = scan.problems + [_corrupt_problem(by_video[record["video"]], frame)
                                for record in records for frame in record["corrupt"]]
    summary = _summary(scan, index, problems)
    write_run_info(out, stage="prepare", config={"source": "affwild2", "root": str(scan.root),
                                                 "workers": workers},
                   seed=None, data_summary=summary)
    write_json_atomic(out / SUMMARY_FILE, summary)
    for name in (PROGRESS_FILE, PLAN_FILE):
        (out / name).unlink(missing_ok=True)
    return summary


def prepare_affwild2(root: Path, out: Path, *, progress: bool = True,
                     workers: int = 1) -> dict[str, Any]:
    """Aff-Wild2 tree -> face store in `out`; resumes an interrupted run, returns the summary.

    A store that is already complete is not touched. What was skipped and why is logged as it
    happens and listed under "skipped" in the summary (see `describe_skipped`).
    """
    out = Path(out)
    if (out / SUMMARY_FILE).exists():
        return FaceStore.open(out).summary
    scan = scan_affwild2(root)
    out.mkdir(parents=True, exist_ok=True)
    records = _resume(out, _plan(scan))
    records = _decode_all(scan, out, records, progress=progress, workers=workers)
    return _finish(scan, out, records, workers)
