"""Batched, resumable extraction of frame-CNN features for every face in a face store.

Results go into preallocated `.npy.partial` memory maps; after each chunk of rows the maps are
flushed and `progress.json` records how far extraction got (and for which model), so an
interrupted run continues from there. The files are renamed to their final names only when every
row is done, so a complete-looking store is always complete.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm import tqdm

from affecttrack.errors import InputError
from affecttrack.features.store import FEATURES_FILE, PREDICTIONS_FILE, FeatureStore
from affecttrack.models.base import FrameNetwork
from affecttrack.models.cnn import faces_to_input
from affecttrack.models.precision import (
    autocast_for,
    channels_last_for,
    choose_precision,
)
from affecttrack.models.registry import load_model_file
from affecttrack.runinfo import file_sha256, write_json_atomic, write_run_info

if TYPE_CHECKING:
    from affecttrack.data.store import FaceStore

PROGRESS_FILE = "progress.json"
_FILES = (FEATURES_FILE, PREDICTIONS_FILE)


def extract_features(store: FaceStore, model: Path, out: Path,
                     batch_size: int = 256, precision: str = "auto", progress: bool = True,
                     chunk_rows: int = 4096) -> FeatureStore:
    """Features (N, 300) and frame-model valence/arousal (N, 2) for all N faces of `store`.

    Returns the finished store at once if `out` already holds one. Models without a valence/arousal
    head (expression-only) get NaN frame predictions.
    """
    out = Path(out)
    if _is_complete(out):
        return FeatureStore.open(out)
    network, info = load_model_file(model, "frame")
    precision = choose_precision(precision)
    rows = store.faces.shape[0]
    if rows == 0:
        raise InputError(store.path, "the face store holds no faces to extract features from")
    job = {"model_sha256": file_sha256(Path(model)), "face_store": str(store.path),
           "rows": rows, "feature_dim": network.num_features}
    start = _resume_point(out, job)
    if start < rows:
        arrays = _open_partials(out, job, resume=start > 0)
        _run(network, store.faces, arrays, start, batch_size=batch_size, precision=precision,
             chunk_rows=chunk_rows, out=out, job=job, progress=progress)
    _finish(out)
    write_run_info(out, stage="features", seed=None,
                   config={"frame_model": str(model), "model": info["name"],
                           "batch_size": batch_size, "precision": precision},
                   data_summary=job)
    (out / PROGRESS_FILE).unlink(missing_ok=True)
    return FeatureStore.open(out)


def _run(model: FrameNetwork, faces: np.ndarray, arrays: tuple[np.ndarray, np.ndarray],
         start: int, *,
         batch_size: int, precision: str, chunk_rows: int, out: Path, job: dict[str, Any],
         progress: bool) -> None:
    """Fill rows start.. of the partial arrays chunk by chunk, recording progress after each."""
    features, predictions = arrays
    device = next(model.parameters()).device
    memory_format = torch.channels_last if channels_last_for(precision) else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    rows = faces.shape[0]
    bar = tqdm(total=rows, initial=start, unit="face", desc="features", disable=not progress)
    with torch.inference_mode(), autocast_for(precision, device):
        for chunk_start in range(start, rows, chunk_rows):
            chunk_stop = min(chunk_start + chunk_rows, rows)
            for b0 in range(chunk_start, chunk_stop, batch_size):
                b1 = min(b0 + batch_size, chunk_stop)
                x = faces_to_input(faces[b0:b1])
                z = model.forward_features(x.contiguous(memory_format=memory_format))
                features[b0:b1] = z.float().numpy()
                if "va" in model.heads:
                    predictions[b0:b1] = model.heads["va"](z).float().numpy()
                bar.update(b1 - b0)
            features.flush()
            predictions.flush()
            write_json_atomic(out / PROGRESS_FILE, {**job, "done_rows": chunk_stop})
    bar.close()


def _resume_point(out: Path, job: dict[str, Any]) -> int:
    """Rows already done by an interrupted extraction of the same model; 0 to start afresh."""
    path = out / PROGRESS_FILE
    if not path.is_file():
        return 0
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError:
        return 0
    same_job = all(state.get(key) == value for key, value in job.items())
    partials_there = all((out / f"{name}.partial").is_file() or (out / name).is_file()
                         for name in _FILES)
    return int(state.get("done_rows", 0)) if same_job and partials_there else 0


def _open_partials(out: Path, job: dict[str, Any], *, resume: bool) -> tuple[np.ndarray,
                                                                              np.ndarray]:
    """The partial arrays, reopened to continue or created afresh.

    Predictions start as NaN so that a model without a valence/arousal head leaves NaN behind.
    """
    out.mkdir(parents=True, exist_ok=True)
    shapes = {FEATURES_FILE: (job["rows"], job["feature_dim"]), PREDICTIONS_FILE: (job["rows"], 2)}
    arrays = []
    for name in _FILES:
        partial = out / f"{name}.partial"
        if resume:
            arrays.append(np.load(partial, mmap_mode="r+"))
            continue
        array = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32,
                                          shape=shapes[name])
        if name == PREDICTIONS_FILE:
            array[:] = np.nan
        arrays.append(array)
    return arrays[0], arrays[1]


def _finish(out: Path) -> None:
    """Give every partial file its final name (idempotent, so a crash in between is harmless)."""
    for name in _FILES:
        partial = out / f"{name}.partial"
        if partial.is_file():
            os.replace(partial, out / name)


def _is_complete(out: Path) -> bool:
    return all((out / name).is_file() for name in _FILES) and not (out / PROGRESS_FILE).is_file()
