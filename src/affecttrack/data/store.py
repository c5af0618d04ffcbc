"""The face store: every face crop of a dataset as uint8 96 x 96 rows of one memory-mapped array.

Decoding a dataset's images (Aff-Wild2's ~2.8M jpgs) and finding faces in them takes far longer
than any later stage reads them, so it is done once, into `faces.npy` (N x 96 x 96, memory-mapped
by readers) plus `index.parquet` (one row per frame that has a face or a label; see
docs/ARCHITECTURE.md for the columns). `summary.json` is written last and marks the store
complete. Every source (Aff-Wild2, CK+, JAFFE, folders, videos) describes its data as groups of
frames (`data.groups`), so this one writer serves them all: each reader's `prepare_*` calls
`build_store`, and `data.sources.registry` lists the readers (this module imports none of them).

Preparing is resumable: faces are written group by group into `faces.partial.npy`, and finished
groups are appended to `progress.jsonl` only after their images are on disk. An interrupted
prepare therefore resumes after the last finished group; anything a half-written group left
behind lies past that point and is overwritten.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from affecttrack.data.faces import FACE_SIZE
from affecttrack.data.groups import (
    CHUNK_FRAMES,
    Crop,
    FaceGroup,
    Fallback,
    Mapper,
    Problem,
    SourceScan,
)
from affecttrack.errors import AffectTrackError, InputError
from affecttrack.labels import AFFWILD2_EXPRESSIONS
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
# expected in photo and video data (faces kept as box crops too): logged at INFO only
QUIET_REASONS = frozenset({"no_face", "unaligned"})
SYNC_SECONDS = 2.0


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
        _check_store(path, index, faces, tuple(summary.get("action_units", ())))
        return cls(path, index, faces, summary)

    @property
    def action_units(self) -> tuple[str, ...]:
        """The index's action-unit columns (0/1, -1 = unknown), e.g. ("AU1", ..., "AU25");
        empty for stores of sources without them."""
        return tuple(self.summary.get("action_units", ()))

    @property
    def expression_names(self) -> tuple[str, ...]:
        """The class names of the `expression` column (class k is `expression_names[k]`).

        Stores written before the summary recorded them hold Aff-Wild2 data, hence the default.
        """
        return tuple(self.summary.get("expressions", AFFWILD2_EXPRESSIONS))

    def images(self, rows: np.ndarray) -> np.ndarray:
        """The face crops at `rows` (positions in faces.npy) as an in-memory (n, 96, 96) array."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self.faces)):
            raise AffectTrackError(f"{self.path}: face rows must lie in [0, {len(self.faces)}); "
                                   "row -1 marks a frame without a face image")
        return np.asarray(self.faces[rows])


def _check_store(path: Path, index: pd.DataFrame, faces: np.ndarray,
                 action_units: tuple[str, ...]) -> None:
    if faces.dtype != np.uint8 or faces.shape[1:] != (FACE_SIZE, FACE_SIZE):
        raise InputError(path / FACES_FILE, f"expected uint8 (N, {FACE_SIZE}, {FACE_SIZE}) faces, "
                                            f"found {faces.dtype} {faces.shape}")
    absent = [column for column in (*INDEX_COLUMNS, *action_units)
              if column not in index.columns]
    if absent:
        raise InputError(path / INDEX_FILE, f"index lacks column(s) {', '.join(absent)}")
    if len(index) and index["row"].max() >= len(faces):
        raise InputError(path / INDEX_FILE, f"index refers to face row {index['row'].max()} but "
                                            f"{FACES_FILE} holds {len(faces)} rows")


@contextmanager
def _mapper(workers: int) -> Iterator[Mapper]:
    if workers <= 1:
        yield map
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield pool.map


def _log_problem(problem: Problem) -> None:
    log.log(logging.INFO if problem.reason in QUIET_REASONS else logging.WARNING, "%s", problem)


def _write_video(group: FaceGroup, faces_file: IO[bytes], data_offset: int, start: int,
                 crops: Iterable[tuple[int, Crop | Fallback | Problem]],
                 bar: tqdm) -> dict[str, Any]:
    """Write one group's crops into consecutive rows from `start`; skip the frames that failed.

    Returns the progress record: where the group's rows start, how many there are, how many
    frames were tried and which failed and why (their rows are not used, so later faces move up),
    and which faces were kept as a fallback crop and why.
    """
    row, tried, failed, fallbacks, chunk = start, 0, [], [], []

    def flush() -> None:
        nonlocal row
        if chunk:
            faces_file.seek(data_offset + row * FACE_BYTES)
            faces_file.write(np.stack(chunk).tobytes())
            row += len(chunk)
            chunk.clear()

    for frame, result in crops:
        tried += 1
        bar.update(1)
        if isinstance(result, Problem):
            _log_problem(result)
            failed.append(_problem_item(frame, result))
            continue
        if isinstance(result, Fallback):
            _log_problem(result.problem)
            fallbacks.append(_problem_item(frame, result.problem))
            result = result.crop
        chunk.append(result)
        if len(chunk) == CHUNK_FRAMES:
            flush()
    flush()
    return {"video": group.name, "start": start, "rows": row - start, "tried": tried,
            "failed": failed, "fallbacks": fallbacks}


def _problem_item(frame: int, problem: Problem) -> list[Any]:
    """A frame's problem as a progress record lists it (`_problems` reads it back)."""
    return [int(frame), problem.reason, str(problem.path), problem.detail]


def _problems(records: list[dict[str, Any]], key: str) -> list[Problem]:
    """The problems that progress records list under `key` ("failed" or "fallbacks"; records
    of a prepare that an older version began have no "fallbacks")."""
    return [Problem(reason, Path(file), detail) for record in records
            for _, reason, file, detail in record.get(key, [])]


def _append_progress(progress_file: IO[str], record: dict[str, Any]) -> None:
    progress_file.write(json.dumps(record) + "\n")
    progress_file.flush()


class _ProgressLog:
    """Appends finished groups to progress.jsonl once their faces are safely on disk.

    Syncing after every group costs two fsyncs (about 4 ms each here) per group, which dominates
    photo datasets of one or two pictures per person; records are therefore collected and written
    after one fsync of the faces every `SYNC_SECONDS`, and always before a failure propagates.
    """

    def __init__(self, faces_file: IO[bytes], progress_file: IO[str]) -> None:
        self.faces_file, self.progress_file = faces_file, progress_file
        self.pending: list[dict[str, Any]] = []
        self.last = time.monotonic()

    def add(self, record: dict[str, Any]) -> None:
        self.pending.append(record)
        if time.monotonic() - self.last >= SYNC_SECONDS:
            self.sync()

    def sync(self) -> None:
        self.faces_file.flush()
        os.fsync(self.faces_file.fileno())
        while self.pending:
            _append_progress(self.progress_file, self.pending.pop(0))
        os.fsync(self.progress_file.fileno())
        self.last = time.monotonic()


def _plan(scan: SourceScan) -> dict[str, Any]:
    """What a resumed prepare must find unchanged: the source, its settings and its groups."""
    return {"source": scan.source, "config": scan.config,
            "videos": {group.name: group.reader.fingerprint() for group in scan.groups}}


def _read_progress(path: Path) -> list[dict[str, Any]]:
    """Finished groups, in order; a last line cut short by an interruption is dropped."""
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


def _resume(out: Path, scan: SourceScan) -> list[dict[str, Any]]:
    """Progress of an earlier, interrupted prepare into `out` (empty when starting afresh)."""
    plan = json.loads(json.dumps(_plan(scan)))  # as it reads back from plan.json
    plan_path = out / PLAN_FILE
    if plan_path.exists() and json.loads(plan_path.read_text()) != plan:
        raise InputError(out, f"holds an unfinished face store of a different {scan.title} tree "
                              "(or the tree or the settings changed since); delete the folder or "
                              "choose another one")
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


def _batches(groups: list[FaceGroup]) -> Iterator[list[FaceGroup]]:
    """Runs of small groups (up to CHUNK_FRAMES frames together), and every large group alone.

    A photo dataset has thousands of groups of one to three pictures: read one at a time, they
    would leave all but one worker idle, so small groups are read side by side.
    """
    batch: list[FaceGroup] = []
    size = 0
    for group in groups:
        frames = group.reader.frames
        if frames is None or len(frames) > CHUNK_FRAMES or size + len(frames) > CHUNK_FRAMES:
            if batch:
                yield batch
            batch, size = [], 0
        if frames is None or len(frames) > CHUNK_FRAMES:
            yield [group]
            continue
        batch.append(group)
        size += len(frames)
    if batch:
        yield batch


def _read_whole(group: FaceGroup) -> list[tuple[int, Crop | Problem]]:
    return list(group.reader.read(map))


def _decode_all(scan: SourceScan, out: Path, records: list[dict[str, Any]], *,
                progress: bool, workers: int) -> list[dict[str, Any]]:
    """Write the faces of every group not yet finished; returns all progress records.

    The faces file is preallocated for the frames known in advance; a group that yields more
    (a video, whose frame count is known only once decoded) simply writes past its end, and
    `_set_npy_rows` fixes the header when the store is finished.
    """
    records = list(records)
    done = {record["video"] for record in records}
    todo = [group for group in scan.groups if group.name not in done]
    if not todo:
        return records
    faces_path = out / PARTIAL_FACES_FILE
    known = [len(group.reader.frames) for group in scan.groups if group.reader.frames is not None]
    if not faces_path.exists():
        np.lib.format.open_memmap(faces_path, mode="w+", dtype=np.uint8,
                                  shape=(sum(known), FACE_SIZE, FACE_SIZE))
    next_row = sum(record["rows"] for record in records)
    offset = _data_offset(faces_path)
    total = (sum(len(group.reader.frames) for group in todo)
             if all(group.reader.frames is not None for group in todo) else None)
    with (open(faces_path, "r+b") as faces_file, open(out / PROGRESS_FILE, "a") as progress_file,
          _mapper(workers) as decode_map,
          tqdm(total=total, unit="frame", desc="faces", disable=not progress) as bar):
        durable = _ProgressLog(faces_file, progress_file)
        try:
            for batch in _batches(todo):
                crops = ([batch[0].reader.read(decode_map)] if len(batch) == 1
                         else decode_map(_read_whole, batch))
                for group, group_crops in zip(batch, crops):
                    record = _write_video(group, faces_file, offset, next_row, group_crops, bar)
                    durable.add(record)
                    records.append(record)
                    next_row += record["rows"]
        except BaseException:
            durable.sync()  # what finished before the interruption need not be redone
            raise
        durable.sync()
    return records


def _set_npy_rows(path: Path, rows: int) -> None:
    """Make a (capacity, ...) .npy hold exactly its first `rows` rows, in place.

    Frames that fail leave the preallocated array partly unused, and videos may write past it.
    numpy pads .npy headers so the first dimension can change without moving the data, so only
    the header and the file length change.
    """
    npy = np.lib.format
    with open(path, "r+b") as file:
        shape, fortran_order, dtype, version = _read_npy_header(file)
        offset = file.tell()
        size = offset + rows * int(np.prod(shape[1:])) * dtype.itemsize
        if shape[0] == rows and os.fstat(file.fileno()).st_size == size:
            return
        writer = npy.write_array_header_1_0 if version == (1, 0) else npy.write_array_header_2_0
        file.seek(0)
        writer(file, {"descr": npy.dtype_to_descr(dtype), "fortran_order": fortran_order,
                      "shape": (rows,) + tuple(shape[1:])})
        if file.tell() != offset:
            raise AffectTrackError(f"{path}: cannot resize the array header in place")
        file.truncate(size)


def _lookup(frames: np.ndarray, keys: np.ndarray, values: np.ndarray, missing: Any) -> np.ndarray:
    """values[k] where keys[k] == frame (keys sorted), `missing` elsewhere."""
    out = np.full(len(frames), missing, dtype=values.dtype)
    if len(keys):
        position = np.minimum(np.searchsorted(keys, frames), len(keys) - 1)
        found = keys[position] == frames
        out[found] = values[position[found]]
    return out


def _group_index(group: FaceGroup, record: dict[str, Any],
                 action_units: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Index columns of one group: frames with a face or a label."""
    tried = (np.asarray(group.reader.frames, dtype=np.int32) if group.reader.frames is not None
             else np.arange(1, record["tried"] + 1, dtype=np.int32))
    cropped = ~np.isin(tried, np.array([item[0] for item in record["failed"]], dtype=np.int32))
    face_row = np.full(len(tried), -1, dtype=np.int64)
    face_row[cropped] = record["start"] + np.arange(int(cropped.sum()))
    labels = group.labels
    label_frames = labels["frame"].to_numpy(dtype=np.int32)
    frames = np.union1d(tried, label_frames).astype(np.int32)
    row = _lookup(frames, tried, face_row, -1)
    valence = _lookup(frames, label_frames, labels["valence"].to_numpy(np.float32), np.nan)
    arousal = _lookup(frames, label_frames, labels["arousal"].to_numpy(np.float32), np.nan)
    expression = _lookup(frames, label_frames, labels["expression"].to_numpy(np.int16), -1)
    units = {name: (_lookup(frames, label_frames, labels[name].to_numpy(np.int8), -1)
                    if name in labels else np.full(len(frames), -1, dtype=np.int8))
             for name in action_units}
    keep = ((row >= 0) | np.isfinite(valence) | np.isfinite(arousal) | (expression >= 0)
            | np.any([values >= 0 for values in units.values()], axis=0))
    n = int(keep.sum())
    return {"video": np.full(n, group.name, dtype=object), "frame": frames[keep],
            "row": row[keep], "split": np.full(n, group.split, dtype=object),
            "valence": valence[keep], "arousal": arousal[keep], "expression": expression[keep],
            "subject": np.full(n, group.subject, dtype=object),
            **{name: values[keep] for name, values in units.items()}}


def _build_index(scan: SourceScan, records: list[dict[str, Any]]) -> pd.DataFrame:
    """The store's index, sorted by (video, frame)."""
    by_group = {record["video"]: record for record in records}
    parts = [_group_index(group, by_group[group.name], scan.action_units)
             for group in scan.groups]
    columns = (*INDEX_COLUMNS, *scan.action_units)
    index = pd.DataFrame({column: np.concatenate([part[column] for part in parts]) if parts
                          else [] for column in columns})
    index = index.astype({**_INDEX_DTYPES, **dict.fromkeys(scan.action_units, np.int8)})
    return index.sort_values(["video", "frame"], kind="stable").reset_index(drop=True)


def _per_split(index: pd.DataFrame, mask: np.ndarray | None = None) -> dict[str, int]:
    selected = index if mask is None else index[mask]
    counts = {split: int((selected["split"] == split).sum()) for split in SPLITS}
    counts["all"] = len(selected)
    return counts


def _by_reason(problems: list[Problem]) -> dict[str, dict[str, Any]]:
    """reason -> {count, items: [{file, problem}]}, as the summary lists problems."""
    listed: dict[str, dict[str, Any]] = {}
    for problem in problems:
        entry = listed.setdefault(problem.reason, {"count": 0, "items": []})
        entry["count"] += 1
        entry["items"].append({"file": str(problem.path), "problem": problem.detail})
    return listed


def _summary(scan: SourceScan, index: pd.DataFrame, problems: list[Problem],
             fallbacks: list[Problem]) -> dict[str, Any]:
    videos = {split: sum(group.split == split for group in scan.groups) for split in SPLITS}
    videos["all"] = len(scan.groups)
    subjects = {split: len({group.subject for group in scan.groups if group.split == split})
                for split in SPLITS}
    subjects["all"] = len({group.subject for group in scan.groups})
    expression = index["expression"].to_numpy()
    usable = expression[(expression >= 0) & (index["row"].to_numpy() >= 0)]
    counts = np.bincount(usable, minlength=len(scan.expressions))
    units = list(scan.action_units)
    au = index[units].to_numpy()
    au_faces = au[index["row"].to_numpy() >= 0]
    return {
        "source": scan.source,
        "root": str(scan.root),
        **scan.extra,
        "kind": scan.kind,
        "settings": scan.config,  # what shaped the crops: detector, margin, align ...
        "expressions": list(scan.expressions),
        "videos": videos,
        "subjects": subjects,
        "frames": _per_split(index),
        "faces": _per_split(index, index["row"].to_numpy() >= 0),
        "labelled_va": _per_split(index, np.isfinite(index["valence"].to_numpy())),
        "labelled_expression": _per_split(index, expression >= 0),
        "expression_counts": dict(zip(scan.expressions, counts.tolist())),  # labelled faces
        **({"action_units": units,
            "labelled_au": _per_split(index, (au >= 0).any(axis=1)),
            # labelled faces per AU: how many show it of how many are known
            "au_counts": {name: {"active": int((au_faces[:, k] == 1).sum()),
                                 "known": int((au_faces[:, k] >= 0).sum())}
                          for k, name in enumerate(units)}} if units else {}),
        "skipped": _by_reason(problems),
        "fallbacks": _by_reason(fallbacks),  # faces kept as box crops (alignment failed)
    }


def describe_store(summary: dict[str, Any]) -> list[str]:
    """What a prepare produced and what it skipped, for the console."""
    kind = summary.get("kind", "video")
    counts = ", ".join(f"{split} {summary['faces'][split]} faces / {summary['videos'][split]} "
                       f"{kind}s" for split in SPLITS if summary["videos"].get(split))
    skipped = describe_skipped(summary)
    total = sum(entry["count"] for entry in summary.get("skipped", {}).values())
    lines = [f"face store: {counts or 'empty'}; skipped {total}"]
    if summary.get("expressions"):
        shown = ", ".join(f"{name} {count}" for name, count in
                          summary.get("expression_counts", {}).items())
        lines.append(f"  expressions: {shown}")
    if summary.get("au_counts"):
        shown = ", ".join(f"{name} {entry['active']}/{entry['known']}"
                          for name, entry in summary["au_counts"].items())
        lines.append(f"  action units (active/known faces): {shown}")
    alignment = summary.get("settings", {}).get("align")
    if alignment:
        kept = sum(entry["count"] for entry in summary.get("fallbacks", {}).values())
        faces = summary["faces"]["all"]
        lines.append(f"  aligned by the eyes ({alignment['method']}): {faces - kept} of {faces} "
                     f"faces; {kept} kept as box crops")
    return [*lines, *(f"  skipped {line}" for line in skipped),
            *(f"  box crop: {line}" for line in describe_skipped(summary, key="fallbacks"))]


def describe_skipped(summary: dict[str, Any], examples: int = 3,
                     key: str = "skipped") -> list[str]:
    """One line per reason something was skipped (`key` "fallbacks": kept as a fallback crop),
    naming a few of the files."""
    lines = []
    for reason, entry in summary.get(key, {}).items():
        shown = "; ".join(f"{item['file']}: {item['problem']}"
                          for item in entry["items"][:examples])
        more = f" (+{entry['count'] - examples} more)" if entry["count"] > examples else ""
        lines.append(f"{reason} x{entry['count']}: {shown}{more}")
    return lines


def _finish(scan: SourceScan, out: Path, records: list[dict[str, Any]],
            workers: int) -> dict[str, Any]:
    """Index, final faces file and summary; safe to repeat if interrupted part-way."""
    index = _build_index(scan, records)
    tmp = out / (INDEX_FILE + ".tmp")
    index.to_parquet(tmp, index=False)
    os.replace(tmp, out / INDEX_FILE)
    partial = out / PARTIAL_FACES_FILE
    if partial.exists():
        _set_npy_rows(partial, sum(record["rows"] for record in records))
        os.replace(partial, out / FACES_FILE)
    elif not (out / FACES_FILE).exists():
        np.lib.format.open_memmap(out / FACES_FILE, mode="w+", dtype=np.uint8,
                                  shape=(0, FACE_SIZE, FACE_SIZE))
    problems = scan.problems + _problems(records, "failed")
    summary = _summary(scan, index, problems, _problems(records, "fallbacks"))
    write_run_info(out, stage="prepare", config={"source": scan.source, "root": str(scan.root),
                                                 "workers": workers, **scan.config},
                   seed=None, data_summary=summary)
    write_json_atomic(out / SUMMARY_FILE, summary)
    for name in (PROGRESS_FILE, PLAN_FILE):
        (out / name).unlink(missing_ok=True)
    return summary


def build_store(scan: Callable[[], SourceScan], out: Path, *, progress: bool = True,
                workers: int = 1) -> dict[str, Any]:
    """The face store in `out` of what `scan()` describes; resumes an interrupted run.

    A store that is already complete is returned without calling `scan` (the dataset may be gone).
    What was skipped and why is logged as it happens and listed under "skipped" in the summary
    (see `describe_skipped`). `workers` threads decode images (and detect faces) in parallel.
    """
    out = Path(out)
    if (out / SUMMARY_FILE).exists():
        return FaceStore.open(out).summary
    found = scan()
    for problem in found.problems:
        _log_problem(problem)
    out.mkdir(parents=True, exist_ok=True)
    records = _resume(out, found)
    records = _decode_all(found, out, records, progress=progress, workers=workers)
    return _finish(found, out, records, workers)
