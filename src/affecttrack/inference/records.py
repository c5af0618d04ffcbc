"""What `affecttrack predict` knows about an output folder: which inputs are finished, and who
is writing there.

`finished.jsonl` gets one JSON line per input as soon as its files are written: the input's
fingerprint (size, modification time and a sha256 of its first and last MiB; for a folder of
images the count, total size, latest time and one digest over every file's name and content),
the model's digest, the settings that shape its outputs, each output file's sha256 and the
input's summary entry. A later run keeps an input only when every one of these still matches,
else it is predicted again and the reason said. JSON lines rather than a SQLite table: the file
stays readable and greppable beside the CSVs, an entry is one appended line (earlier lines are
never rewritten, so a killed run loses at most the line it was writing, which a reader skips),
and the lock below already gives the one writer a database would otherwise have to arbitrate.

`.predict.lock` keeps a second run out of a folder in use: it holds an exclusive `flock` and the
pid of its run. The kernel drops the lock when its process ends, however it ends (`kill -9`
too), so a lock left by a dead run is simply taken over; the pid left in the file only names
whom a refused run waited for.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from affecttrack.errors import AffectTrackError
from affecttrack.runinfo import file_sha256

RECORD_FILE = "finished.jsonl"
LOCK_FILE = ".predict.lock"
HEAD_TAIL_BYTES = 1 << 20   # hashed at each end of an input: enough to tell files apart, cheap

Report = Callable[[str], None]


@contextmanager
def folder_lock(out: Path, report: Report) -> Iterator[None]:
    """Hold `out`'s lock for the block; AffectTrackError naming the other run's pid when a
    live run holds it."""
    path = Path(out) / LOCK_FILE
    try:
        handle = open(path, "a+")   # not "w": truncating would erase the holder's pid
    except OSError as error:
        raise AffectTrackError(f"{out}: cannot write there ({error.strerror})") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise AffectTrackError(f"{out}: another affecttrack predict (pid {holder}) is writing "
                               "there; wait for it to end or choose another --out") from None
    try:
        handle.seek(0)
        previous = handle.read().strip()
        if previous:
            report(f"{out}: took over the lock of pid {previous}, which is no longer running")
        _write_pid(handle, str(os.getpid()))
        yield
    finally:
        _write_pid(handle, "")
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _write_pid(handle: Any, pid: str) -> None:
    handle.seek(0)
    handle.truncate()
    handle.write(pid)
    handle.flush()


def input_fingerprint(files: Sequence[Path]) -> dict[str, Any] | None:
    """What identifies an input's content (None when a file cannot be read: never kept).

    A single file: its size, modification time (ns) and the sha256 of its head and tail. Several
    (a folder of images): their count, total size, latest modification time and one sha256 over
    every file's name and head-and-tail digest."""
    try:
        stats = [(path, path.stat()) for path in files]
        digests = [head_tail_sha256(path) for path in files]
    except OSError:
        return None
    if len(files) == 1:
        stat = stats[0][1]
        return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digests[0]}
    combined = hashlib.sha256()
    for path, digest in zip(files, digests):
        combined.update(f"{path.name}\0{digest}\n".encode())
    return {"files": len(files), "size": sum(stat.st_size for _, stat in stats),
            "mtime_ns": max((stat.st_mtime_ns for _, stat in stats), default=0),
            "sha256": combined.hexdigest()}


def head_tail_sha256(path: Path, size: int = HEAD_TAIL_BYTES) -> str:
    """sha256 of the file's length, its first `size` bytes and its last `size` bytes (the whole
    file when it is shorter than both): a replaced file almost always differs there, and a
    multi-GB video is not read through."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        length = os.fstat(handle.fileno()).st_size
        digest.update(str(length).encode())
        if length <= 2 * size:
            digest.update(handle.read())
        else:
            digest.update(handle.read(size))
            handle.seek(length - size)
            digest.update(handle.read(size))
    return digest.hexdigest()


def output_digests(out: Path, files: Sequence[str]) -> dict[str, str | None]:
    """Each output file's sha256, None for one that is missing or unreadable."""
    digests: dict[str, str | None] = {}
    for name in files:
        try:
            digests[name] = file_sha256(Path(out) / name)
        except OSError:
            digests[name] = None
    return digests


class FinishedInputs:
    """The finished inputs recorded in `out/finished.jsonl`, the latest record per input.

    A record is a dict with `input` (the resolved path, the key), `kind`, `name`, `fingerprint`,
    `model_sha256`, `settings`, `output_sha256` ({file: sha256}) and `entry` (its summary entry).
    Lines that do not parse (the one a killed run was writing) are skipped."""

    def __init__(self, out: Path) -> None:
        self.path = Path(out) / RECORD_FILE
        self.records: dict[str, dict[str, Any]] = {}
        for line in _lines(self.path):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if _well_formed(record):
                self.records[record["input"]] = record

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def add(self, record: dict[str, Any]) -> None:
        """Append `record` as one line, on disk before this returns."""
        line = json.dumps(record, allow_nan=False) + "\n"
        with open(self.path, "ab") as handle:
            if handle.tell() and not _ends_with_newline(self.path):
                line = "\n" + line   # a killed writer's torn line must not swallow this one
            handle.write(line.encode())
            handle.flush()
            os.fsync(handle.fileno())
        self.records[record["input"]] = record


def _well_formed(record: Any) -> bool:
    """A record this module wrote (a hand-edited or foreign line is ignored, never trusted)."""
    return (isinstance(record, dict) and isinstance(record.get("input"), str)
            and all(isinstance(record.get(key), dict)
                    for key in ("fingerprint", "settings", "output_sha256", "entry"))
            and isinstance(record["entry"].get("status"), str))


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def differences(record: dict[str, Any], current: dict[str, Any], out: Path) -> list[str]:
    """Why `record` no longer describes what this run would write for the input described by
    `current` (a record without outputs), in one clause each; empty when it still does."""
    reasons = []
    if record.get("kind") != current["kind"]:
        reasons.append(f"read as {current['kind']}, was {record.get('kind')}")
    if record.get("name") != current["name"]:
        reasons.append(f"output name {current['name']}, was {record.get('name')}")
    change = _fingerprint_change(record["fingerprint"], current["fingerprint"])
    if change:
        reasons.append(f"input changed: {change}")
    if record.get("model_sha256") != current["model_sha256"]:
        reasons.append("model changed")
    settings = _setting_changes(record["settings"], current["settings"])
    if settings:
        reasons.append(f"settings changed: {settings}")
    recorded = record["output_sha256"]
    now = output_digests(out, list(recorded))
    missing = [name for name, digest in now.items() if digest is None]
    modified = [name for name, digest in now.items() if digest not in (None, recorded[name])]
    if missing:
        reasons.append(f"output missing: {', '.join(missing)}")
    if modified:
        reasons.append(f"output modified: {', '.join(modified)}")
    return reasons


def _fingerprint_change(before: dict[str, Any], now: dict[str, Any]) -> str:
    for key, label in (("files", "files"), ("size", "bytes")):
        if before.get(key) != now.get(key):
            return f"{before.get(key)} -> {now.get(key)} {label}"
    if before.get("mtime_ns") != now["mtime_ns"]:
        return "modification time"
    return "content" if before.get("sha256") != now["sha256"] else ""


def _setting_changes(before: dict[str, Any], now: dict[str, Any]) -> str:
    return ", ".join(f"{key} {before.get(key)} -> {value}" for key, value in now.items()
                     if before.get(key) != value)
