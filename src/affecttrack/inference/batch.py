"""`affecttrack predict`: many inputs to files, one bad input never stopping the others.

Per input, under the output folder: `<name>.csv` (one row per frame and face), `<name>.txt` (the
ABAW per-video valence/arousal format), `<name>.png` (valence/arousal over time with the
expression as a band; not for an input without any face) and, asked for,
`<name>.annotated.mp4` (videos only). `summary.json` lists every input
with its status:

    ok         predictions for every frame, at least one face found
    no_face    every frame read, no face in any (files written, values empty)
    truncated  decoding stopped early; files hold the frames before that
    failed     nothing could be read (missing, corrupt or empty file)

Each file is written under a temporary name and renamed, and an input whose files all exist from
an earlier run with the same model and settings is not predicted again, so an interrupted batch
resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from affecttrack.data.groups import Problem
from affecttrack.data.video_frames import TruncatedVideo, probe_video
from affecttrack.errors import InputError
from affecttrack.inference.annotate import write_annotated_video
from affecttrack.inference.frame_sources import PredictInput, Prefetch, collect_inputs
from affecttrack.inference.predictor import AffectModel
from affecttrack.inference.results import FramePredictions
from affecttrack.runinfo import to_jsonable, write_json_atomic, write_run_info

SUMMARY_FILE = "summary.json"
OK_STATUSES = ("ok",)

Report = Callable[[str], None]


def output_files(name: str, annotate: bool) -> dict[str, str]:
    """The files an input called `name` gets."""
    files = {"csv": f"{name}.csv", "abaw": f"{name}.txt", "plot": f"{name}.png"}
    if annotate:
        files["annotated"] = f"{name}.annotated.mp4"
    return files


def predict_paths(model: AffectModel, paths: Iterable[str | Path], out: Path, *,
                  annotate: bool = False, fps: float | None = None,
                  report: Report = print) -> dict[str, Any]:
    """Predict every input named by `paths` (files, folders, globs) into `out`; returns the
    summary also written to `out/summary.json`. `fps` gives times to folders of frames and
    single images. `report` receives one line per input (and per problem)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    inputs, missing = collect_inputs(paths)
    job = _job(model, annotate, fps)
    earlier = _earlier_entries(out, job)
    entries = [_missing_entry(problem, report) for problem in missing]
    for item in inputs:
        previous = earlier.get(str(item.path))
        if previous is not None and _outputs_exist(out, previous):
            report(f"{item.path}: done in an earlier run ({previous['status']}); kept")
            entries.append({**previous, "reused": True})
        else:
            entries.append(_predict_one(model, item, out, annotate, fps, report))
    summary = {"job": job, "counts": dict(Counter(entry["status"] for entry in entries)),
               "inputs": entries}
    write_json_atomic(out / SUMMARY_FILE, summary)
    write_run_info(out, stage="predict", config=job, seed=None,
                   data_summary={"inputs": len(entries), "counts": summary["counts"]})
    return summary


def failed_inputs(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The entries whose status is not ok (what makes `affecttrack predict` exit non-zero)."""
    return [entry for entry in summary["inputs"] if entry["status"] not in OK_STATUSES]


def _predict_one(model: AffectModel, item: PredictInput, out: Path, annotate: bool,
                 fps: float | None, report: Report) -> dict[str, Any]:
    entry: dict[str, Any] = {"input": str(item.path), "name": item.name, "kind": item.kind}
    start = time.perf_counter()
    problems: list[Problem] = []
    run = model.start()
    status, message = "ok", ""
    try:
        rate = probe_video(item.path).fps if item.kind == "video" else fps
        run.run(Prefetch(item.frames(problems, fps)))
    except TruncatedVideo as error:
        status, message = "truncated", str(error)
    except InputError as error:
        return _failed(entry, str(error), report)
    for problem in problems:
        report(str(problem))
    if run.times.frames == 0:
        reason = message or f"{item.path}: no frame could be read"
        return _failed({**entry, "skipped_images": len(problems)}, reason, report)
    predictions = run.result(rate, str(item.path))
    files = _write_outputs(predictions, item, out, annotate and item.kind == "video")
    with_face = int(predictions.loc[predictions["face_id"].notna(), "frame"].nunique())
    if status == "ok" and with_face == 0:
        status = "no_face"
        message = f"{item.path}: no face found in any of its {run.times.frames} frames"
    seconds = time.perf_counter() - start
    entry.update(status=status, message=message, frames=run.times.frames,
                 frames_with_face=with_face,
                 faces=int(predictions["face_id"].nunique()),
                 interpolated_rows=int(predictions["interpolated"].sum()),
                 skipped_images=len(problems), outputs=files, seconds=round(seconds, 3),
                 frames_per_second=round(run.times.frames / seconds, 1))
    report(message or f"{item.path}: {run.times.frames} frames, {with_face} with a face, "
                      f"{entry['faces']} face id(s) -> {out / files['csv']}")
    return entry


def _write_outputs(predictions: FramePredictions, item: PredictInput, out: Path,
                   annotate: bool) -> dict[str, str]:
    files = output_files(item.name, annotate)
    predictions.to_csv_file(out / files["csv"])
    predictions.to_abaw(out / files["abaw"])
    if predictions["face_id"].notna().any():   # a plot of no face would show nothing
        predictions.plot(out / files["plot"])
    else:
        del files["plot"]
    if annotate:
        write_annotated_video(item.path, predictions, out / files["annotated"])
    return files


def _failed(entry: dict[str, Any], message: str, report: Report) -> dict[str, Any]:
    report(message)
    return {**entry, "status": "failed", "message": message, "outputs": {}}


def _missing_entry(problem: Problem, report: Report) -> dict[str, Any]:
    message = str(problem)
    report(message)
    return {"input": str(problem.path), "name": None, "kind": None, "status": "failed",
            "message": message, "outputs": {}}


def _job(model: AffectModel, annotate: bool, fps: float | None) -> dict[str, Any]:
    """What decides the outputs: the model file's content, the settings, the options."""
    return {"model": model.bundle.summary(), "model_sha256": _bundle_digest(model),
            "va_source": model.va_source, "precision": model.precision,
            "settings": asdict(model.config), "annotate": annotate, "fps": fps}


def _bundle_digest(model: AffectModel) -> str:
    """A digest of the networks' weights: the same bundle file moved or copied keeps it."""
    digest = hashlib.sha256()
    for network in (model.bundle.frame, model.bundle.sequence):
        for name, tensor in sorted((network.state_dict() if network is not None else {}).items()):
            digest.update(name.encode())
            digest.update(tensor.float().numpy().tobytes())
    return digest.hexdigest()


def _earlier_entries(out: Path, job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Finished entries of an earlier run in `out` with the same job (by input path)."""
    try:
        summary = json.loads((out / SUMMARY_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    if not isinstance(summary, dict) or summary.get("job") != to_jsonable(job):
        return {}
    return {entry["input"]: entry for entry in summary.get("inputs", [])
            if entry.get("status") in ("ok", "no_face") and entry.get("outputs")}


def _outputs_exist(out: Path, entry: dict[str, Any]) -> bool:
    return all((out / name).is_file() for name in entry["outputs"].values())
