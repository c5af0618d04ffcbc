"""`affecttrack predict --source 0`: a camera or a stream, predicted as its frames arrive.

Latency stays bounded: frames are taken in batches of whatever has arrived (at most
`batch_frames`), and when the model falls behind the oldest waiting frames are dropped (counted)
rather than queued without end. Each batch's rows are appended to `<name>.csv` at once (flushed,
so another program can follow the file); memory stays flat however long the session, because rows
go to the file and not into a growing table. Nothing is interpolated: that would need frames not
yet seen. When the source ends, `max_frames` is reached or the user presses Ctrl-C, the CSV is
complete and the ABAW file and the plot (`<name>.timeline.png`) are made from it. Like a batch,
it holds the output folder's lock and refuses a folder where it would write over its source.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from affecttrack.errors import InputError
from affecttrack.inference.batch import (
    SUMMARY_FILE,
    Report,
    make_output_folder,
    output_files,
    refuse_overwriting_inputs,
)
from affecttrack.inference.frame_sources import Prefetch, camera_frames
from affecttrack.inference.predictor import AffectModel
from affecttrack.inference.records import LOCK_FILE, folder_lock
from affecttrack.inference.results import FramePredictions
from affecttrack.runinfo import atomic_path, write_json_atomic

LIVE_QUEUE = 8       # frames waiting at most; older ones are dropped when the model lags
STATUS_EVERY_S = 1.0


def predict_live(model: AffectModel, source: str, out: Path, *, name: str = "live",
                 max_frames: int | None = None, report: Report = print) -> dict[str, Any]:
    """Predict `source` (camera index or URL) until it ends; returns what `summary.json` holds."""
    out = Path(out)
    files = output_files(name, "live")
    refuse_overwriting_inputs(out, [*files.values(), SUMMARY_FILE, LOCK_FILE],
                              [Path(source)] if Path(source).is_file() else [])
    make_output_folder(out)
    with folder_lock(out, report):
        return _predict_live(model, source, out, name, files, max_frames, report)


def _predict_live(model: AffectModel, source: str, out: Path, name: str, files: dict[str, str],
                  max_frames: int | None, report: Report) -> dict[str, Any]:
    stop = threading.Event()
    frames = Prefetch(camera_frames(source, stop), depth=LIVE_QUEUE, drop_oldest=True)
    run = model.start()
    start = last_status = time.perf_counter()
    stopped_by = "end of source"
    with atomic_path(out / files["csv"]) as tmp, open(tmp, "w", newline="") as handle:
        try:
            for batch in frames.batches(model.config.batch_frames):
                part = FramePredictions.build(run.process(batch), model.labels, None, source,
                                              model.action_units)
                part.write_csv_rows(handle, header=handle.tell() == 0)
                handle.flush()
                if time.perf_counter() - last_status >= STATUS_EVERY_S:
                    report(_status_line(part))
                    last_status = time.perf_counter()
                if max_frames is not None and run.times.frames >= max_frames:
                    stopped_by = f"{max_frames} frames"
                    break
        except KeyboardInterrupt:
            stopped_by = "Ctrl-C"
        finally:
            stop.set()
    if run.times.frames == 0:
        raise InputError(source, "the source gave no frame")
    predictions = FramePredictions.read_csv(out / files["csv"], model.labels)
    predictions.to_abaw(out / files["abaw"])
    predictions.plot(out / files["plot"])
    seconds = time.perf_counter() - start
    summary = {"input": source, "name": name, "kind": "live", "status": "ok",
               "stopped_by": stopped_by, "frames": run.times.frames,
               "dropped_frames": frames.dropped, "outputs": files,
               "seconds": round(seconds, 3),
               "frames_per_second": round(run.times.frames / max(seconds, 1e-9), 1)}
    write_json_atomic(out / SUMMARY_FILE, {"inputs": [summary]})
    report(f"{source}: {run.times.frames} frames ({frames.dropped} dropped while the model "
           f"lagged), stopped by {stopped_by} -> {out / files['csv']}")
    return summary


def _status_line(part: FramePredictions) -> str:
    last = part[part["frame"] == part["frame"].max()]
    faces = [f"id {int(row.face_id)} V {row.valence:+.2f} A {row.arousal:+.2f} {row.expression}"
             for row in last.itertuples() if pd.notna(row.face_id)]
    return f"frame {int(last['frame'].iloc[0])}: " + ("; ".join(faces) or "no face")
