"""`affecttrack predict`: many inputs to files, one bad input never stopping the others.

Per input, under the output folder: for a video or a folder of frames `<name>.csv` (one row per
frame and face), `<name>.txt` (the ABAW per-video valence/arousal format), `<name>.timeline.png`
(valence/arousal over time with the expression as a band; not for an input without any face)
and, asked for, `<name>.annotated.mp4` (videos only); for photos (an image given by name, or a
folder of photos) only `<name>.csv`, one row per photo and face (`inference.photos`). No output
is ever written over an input: an output folder where one would be is refused before any work.
`summary.json` lists every input with its status, and the files of named folders that were not
read (`skipped`, each with its reason):

    ok          predictions for every frame, at least one face found
    no_face     every frame read, no face in any (files written, values empty)
    incomplete  some images of a folder could not be read (listed); files hold the others
    truncated   decoding stopped early; files hold the frames before that
    failed      nothing could be read (missing, corrupt or empty file)

`incomplete` is not `ok`, so that exit status 0 still means every frame of every input was
predicted, as a truncated video already makes it. Each file is written under a temporary name
and renamed, and each finished input is recorded at once in `finished.jsonl` (`records`): a later
run keeps it only while its content, the model, the settings and its output files all match, and
else says why it predicts it again. So an interrupted batch resumes where it stopped and stale
results are never kept. One run at a time writes in a folder (`records.folder_lock`).
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
from affecttrack.errors import AffectTrackError, InputError
from affecttrack.inference.annotate import write_annotated_video
from affecttrack.inference.frame_sources import (
    CollectedInputs,
    PredictInput,
    Prefetch,
    collect_inputs,
)
from affecttrack.inference.photos import photo_va_source, predict_photos
from affecttrack.inference.predictor import AffectModel
from affecttrack.inference.records import (
    LOCK_FILE,
    RECORD_FILE,
    FinishedInputs,
    differences,
    folder_lock,
    input_fingerprint,
    output_digests,
)
from affecttrack.inference.results import FramePredictions
from affecttrack.runinfo import (
    atomic_path,
    to_jsonable,
    write_json_atomic,
    write_run_info,
)

SUMMARY_FILE = "summary.json"
RUN_FILE = "run.json"
FOLDER_FILES = (SUMMARY_FILE, RUN_FILE, RECORD_FILE, LOCK_FILE)
OK_STATUSES = ("ok",)
# Recorded and kept while current. A failed input is tried again each run: it costs little and
# its cause may lie outside the file (permissions, a missing decoder).
KEPT_STATUSES = ("ok", "no_face", "incomplete", "truncated")
# The settings that shape each kind's outputs: changing one redoes the inputs of that kind only.
_SEQUENCE_SETTINGS = ("detect_every", "max_gap", "batch_frames", "precision", "detector")
SETTINGS_BY_KIND: dict[str, tuple[str, ...]] = {
    "video": (*_SEQUENCE_SETTINGS, "annotate"),
    "frames": (*_SEQUENCE_SETTINGS, "fps"),
    "photos": ("precision", "detector"),
}

Report = Callable[[str], None]


def output_files(name: str, kind: str = "video", annotate: bool = False) -> dict[str, str]:
    """The files an input called `name` of `kind` gets (a live source's are a video's)."""
    if kind == "photos":
        return {"csv": f"{name}.csv"}
    files = {"csv": f"{name}.csv", "abaw": f"{name}.txt", "plot": f"{name}.timeline.png"}
    if annotate and kind == "video":
        files["annotated"] = f"{name}.annotated.mp4"
    return files


def refuse_overwriting_inputs(out: Path, written: Iterable[str], sources: Iterable[Path]) -> None:
    """AffectTrackError when a file to be `written` in `out` is one of the `sources`, compared
    as resolved paths (a relative path or a symbolic link is no way round it)."""
    targets = _resolved(out, written)
    for source in sources:
        name = targets.get(Path(source).resolve())
        if name is not None:
            raise AffectTrackError(f"{out}: writing {name} there would overwrite the input "
                                   f"{source}; choose another --out")


def _resolved(out: Path, names: Iterable[str]) -> dict[Path, str]:
    return {(Path(out) / name).resolve(): name for name in names}


def make_output_folder(out: Path) -> None:
    """`out` made if needed; a one-line error when it names a file."""
    if out.exists() and not out.is_dir():
        raise AffectTrackError(f"{out}: --out must be a folder, and this is a file")
    out.mkdir(parents=True, exist_ok=True)


def predict_paths(model: AffectModel, paths: Iterable[str | Path], out: Path, *,
                  annotate: bool = False, fps: float | None = None, frames: bool | None = None,
                  report: Report = print) -> dict[str, Any]:
    """Predict every input named by `paths` (files, folders, globs) into `out`; returns the
    summary also written to `out/summary.json`. `fps` gives times to folders of frames; `frames`
    True / False reads folders of images as frames / photos whatever their names (None: by
    their names, `frame_sources.numbered_frames`). `report` receives one line per input (and
    per problem)."""
    out = Path(out)
    collected = collect_inputs(paths, frames)
    skipped = _checked_outputs(collected, out, annotate)
    make_output_folder(out)
    job = _job(model, annotate, fps)
    with folder_lock(out, report):
        for problem in skipped:
            report(str(problem))
        finished = FinishedInputs(out)
        entries = [_missing_entry(problem, report) for problem in collected.missing]
        entries += [_kept_or_predicted(model, item, out, job, finished, report)
                    for item in collected.inputs]
        summary = {"job": job, "counts": dict(Counter(entry["status"] for entry in entries)),
                   "inputs": entries,
                   "skipped": [{"file": str(problem.path), "reason": problem.reason,
                                "problem": problem.detail} for problem in skipped]}
        write_json_atomic(out / SUMMARY_FILE, summary)
        write_run_info(out, stage="predict", config=job, seed=None,
                       data_summary={"inputs": len(entries), "counts": summary["counts"]})
    return summary


def _checked_outputs(collected: CollectedInputs, out: Path, annotate: bool) -> list[Problem]:
    """Refuse an `out` where an output would overwrite an input; the skipped files to list,
    without this run's own outputs (a folder predicted into itself holds them)."""
    written = [*FOLDER_FILES, *(name for item in collected.inputs
                                for name in output_files(item.name, item.kind, annotate).values())]
    refuse_overwriting_inputs(out, written, [source for item in collected.inputs
                                             for source in item.source_files()])
    ours = _resolved(out, written)
    return [problem for problem in collected.skipped if problem.path.resolve() not in ours]


def failed_inputs(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The entries whose status is not ok (what makes `affecttrack predict` exit non-zero)."""
    return [entry for entry in summary["inputs"] if entry["status"] not in OK_STATUSES]


def _kept_or_predicted(model: AffectModel, item: PredictInput, out: Path, job: dict[str, Any],
                       finished: FinishedInputs, report: Report) -> dict[str, Any]:
    """The earlier run's entry when its record still matches everything, else a new one
    (recorded as soon as its files are written)."""
    current = _describe(item, job)
    record = finished.get(current["input"])
    if record is not None and current["fingerprint"] is not None:
        reasons = differences(record, current, out)
        if not reasons:
            report(f"{item.path}: done in an earlier run ({record['entry']['status']}); kept")
            return {**record["entry"], "reused": True}
        report(f"{item.path}: redone ({'; '.join(reasons)})")
    entry = _predict_one(model, item, out, job["annotate"], job["fps"], report)
    if entry["status"] in KEPT_STATUSES and current["fingerprint"] is not None:
        digests = output_digests(out, list(entry["outputs"].values()))
        finished.add({**current, "output_sha256": digests, "entry": to_jsonable(entry)})
    return entry


def _describe(item: PredictInput, job: dict[str, Any]) -> dict[str, Any]:
    """What decides an input's outputs, as its record holds it."""
    values = {**job["settings"], "precision": job["precision"], "annotate": job["annotate"],
              "fps": job["fps"]}
    return {"input": str(item.path.resolve()), "kind": item.kind, "name": item.name,
            "fingerprint": input_fingerprint(item.source_files()),
            "model_sha256": job["model_sha256"],
            "settings": {key: values[key] for key in SETTINGS_BY_KIND[item.kind]}}


def _predict_one(model: AffectModel, item: PredictInput, out: Path, annotate: bool,
                 fps: float | None, report: Report) -> dict[str, Any]:
    entry: dict[str, Any] = {"input": str(item.path), "name": item.name, "kind": item.kind}
    if item.why:
        entry["read_as"] = item.why
    if item.kind == "photos":
        return _predict_photos(model, item, entry, out, report)
    return _predict_frames(model, item, entry, out, annotate, fps, report)


def _predict_frames(model: AffectModel, item: PredictInput, entry: dict[str, Any], out: Path,
                    annotate: bool, fps: float | None, report: Report) -> dict[str, Any]:
    """A video or a folder of frames: one run, its tracker and sequence states throughout."""
    start = time.perf_counter()
    problems: list[Problem] = []
    run = model.start()
    truncation = ""
    try:
        rate = probe_video(item.path).fps if item.kind == "video" else fps
        run.run(Prefetch(item.frames(problems, fps)))
    except TruncatedVideo as error:
        truncation = str(error)
    except InputError as error:
        return _failed(entry, str(error), report)
    for problem in problems:
        report(str(problem))
    entry.update(_unreadable(problems))
    read = run.times.frames
    if read == 0:
        return _failed(entry, truncation or f"{item.path}: no frame could be read", report)
    predictions = run.result(rate, str(item.path))
    files = _write_outputs(predictions, item, out, annotate and item.kind == "video")
    number_of = {path: number for number, path in enumerate(item.files, start=1)}
    lost = {number_of.get(problem.path) for problem in problems}
    seen = predictions[predictions["face_id"].notna() & ~predictions["frame"].isin(lost)]
    with_face = int(seen["frame"].nunique())
    status, message = (("truncated", truncation) if truncation
                       else _status(item, problems, read, with_face, "frames"))
    faces = int(predictions["face_id"].nunique())
    entry.update(status=status, message=message, frames=read, frames_with_face=with_face,
                 faces=faces, interpolated_rows=int(predictions["interpolated"].sum()),
                 outputs=files, **_speed(start, read))
    report(message or f"{item.path}: {read} frames, {with_face} with a face, {faces} face "
                      f"id(s) -> {out / files['csv']}{_read_as(item)}")
    return entry


def _predict_photos(model: AffectModel, item: PredictInput, entry: dict[str, Any], out: Path,
                    report: Report) -> dict[str, Any]:
    """Photos: each on its own (`inference.photos`), one CSV for all of them."""
    start = time.perf_counter()
    problems: list[Problem] = []
    table = predict_photos(model, item.files, problems)
    entry.update(_unreadable(problems))
    read = len(item.files) - len(problems)
    if read == 0 and len(problems) == 1:
        return _failed(entry, str(problems[0]), report)
    for problem in problems:
        report(str(problem))
    if read == 0:
        return _failed(entry, f"{item.path}: none of its {len(problems)} images could be read",
                       report)
    files = output_files(item.name, "photos")
    with atomic_path(out / files["csv"]) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f", na_rep="")
    with_face = int(table.loc[table["face"].notna(), "photo"].nunique())
    faces = int(table["face"].notna().sum())
    status, message = _status(item, problems, read, with_face, "photos")
    entry.update(status=status, message=message, frames=read, frames_with_face=with_face,
                 faces=faces, va_source=photo_va_source(model), outputs=files,
                 **_speed(start, read))
    report(message or f"{item.path}: {read} photo(s), {with_face} with a face, {faces} face(s) "
                      f"-> {out / files['csv']}{_read_as(item)}")
    return entry


def _status(item: PredictInput, problems: list[Problem], read: int, with_face: int,
            unit: str) -> tuple[str, str]:
    """The status and message of an input that was read, at least in part."""
    if problems:
        return "incomplete", (f"{item.path}: {len(problems)} of {len(item.files)} images "
                              f"unreadable (listed above); {read} {unit} read, {with_face} with "
                              "a face")
    if with_face == 0:
        return "no_face", f"{item.path}: no face found in any of its {read} {unit}"
    return "ok", ""


def _unreadable(problems: list[Problem]) -> dict[str, Any]:
    return {"skipped_images": len(problems),
            "unreadable": [{"file": str(problem.path), "problem": problem.detail}
                           for problem in problems]}


def _speed(start: float, count: int) -> dict[str, float]:
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 3), "frames_per_second": round(count / seconds, 1)}


def _read_as(item: PredictInput) -> str:
    return f" ({item.why})" if item.why else ""


def _write_outputs(predictions: FramePredictions, item: PredictInput, out: Path,
                   annotate: bool) -> dict[str, str]:
    files = output_files(item.name, item.kind, annotate)
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
    """What decides the outputs: the model's content, the settings, the options."""
    return {"model": model.bundle.summary(), "model_sha256": _bundle_digest(model),
            "va_source": model.va_source, "precision": model.precision,
            "settings": asdict(model.config), "annotate": annotate, "fps": fps}


def _bundle_digest(model: AffectModel) -> str:
    """A digest of the networks' weights, labels and face preprocessing: the same bundle file
    moved or copied keeps it, a bundle that would predict otherwise does not."""
    bundle = model.bundle
    digest = hashlib.sha256()
    for network in (bundle.frame, bundle.sequence):
        for name, tensor in sorted((network.state_dict() if network is not None else {}).items()):
            digest.update(name.encode())
            digest.update(tensor.float().numpy().tobytes())
    described = to_jsonable({"labels": bundle.labels, "action_units": bundle.action_units,
                             "preprocessing": bundle.preprocessing, "summary": bundle.summary()})
    digest.update(json.dumps(described, sort_keys=True).encode())
    return digest.hexdigest()
