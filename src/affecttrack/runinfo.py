"""What a run records next to its outputs so that it can be reproduced and compared later."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from affecttrack.errors import InputError

# The key of a JSON mapping that lists the non-finite numbers written as null (see json_text).
NON_FINITE_KEY = "non_finite_values"
_PACKAGES = ("affecttrack", "torch", "lightning", "torchmetrics", "numpy", "pandas", "pyarrow",
             "opencv-python-headless", "albumentations", "av")


def package_versions() -> dict[str, str | None]:
    """Versions of the packages whose behaviour shapes our numbers."""
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@functools.cache
def source_commit() -> str | None:
    """The git commit of the affecttrack source that runs, with "-dirty" when its tracked files
    differ from it (None for an installed copy outside a git checkout): a published figure names
    the code that produced it, and a figure from uncommitted code says so."""
    folder = str(Path(__file__).parent)

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", folder, *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short=7", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def to_jsonable(value: Any) -> Any:
    """Dataclasses, paths and numpy scalars as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary name beside `path` to write to; renamed to `path` once the block succeeds, so
    readers never see half a file and an interrupted write leaves the old file in place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    yield tmp
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    """Text written through `atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def json_text(data: Any) -> str:
    """`data` as strict JSON text. JSON has no NaN or Infinity (Python would write them as bare
    words that most readers refuse), yet a metric can be undefined (the CCC of a constant
    prediction is NaN): such a number is written as null, and when `data` is a mapping its
    `NON_FINITE_KEY` entry records where each one was and what it was ("NaN", "Infinity",
    "-Infinity"), so the reason is not lost."""
    found: dict[str, str] = {}
    value = _finite(to_jsonable(data), "", found)
    if found and isinstance(value, dict):
        value[NON_FINITE_KEY] = found
    return json.dumps(value, indent=2, allow_nan=False) + "\n"


def _finite(value: Any, where: str, found: dict[str, str]) -> Any:
    """`value` with every non-finite float replaced by None and noted in `found` by its path."""
    if isinstance(value, dict):
        return {key: _finite(item, f"{where}.{key}" if where else key, found)
                for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item, f"{where}[{k}]", found) for k, item in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        found[where] = "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
        return None
    return value


def write_json_atomic(path: Path, data: Any) -> None:
    """`json_text(data)` written with `write_text_atomic`: every JSON file the toolkit writes."""
    write_text_atomic(path, json_text(data))


def check_out_folder(out: Path) -> Path:
    """`out`, a folder to write into, unless it or a folder it would be made in exists as
    something else: one line then, before any work, rather than an OS error from some stage."""
    out = Path(out)
    existing = next((path for path in (out, *out.parents) if path.exists()), None)
    if existing is not None and not existing.is_dir():
        raise InputError(out, "exists and is not a folder; name a folder for the outputs"
                         if existing == out else f"cannot be made: {existing} is not a folder")
    return out


def write_run_info(out: Path, *, stage: str, config: Any, seed: int | None,
                   data_summary: dict | None = None) -> Path:
    """Record config, seed, package versions, the source commit and a data summary as
    `out/run.json`."""
    info = {
        "stage": stage,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": sys.argv,
        "seed": seed,
        "config": config,
        "data": data_summary or {},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "packages": package_versions(),
        "commit": source_commit(),
    }
    path = Path(out) / "run.json"
    write_json_atomic(path, info)
    return path


def file_sha256(path: Path) -> str:
    """sha256 of the whole file, read a MiB at a time: what identifies a model file or an
    output exactly as a run wrote it."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
