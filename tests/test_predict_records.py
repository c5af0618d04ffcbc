"""`affecttrack predict` never writes over an input and keeps earlier work only while it is
finished and current: the record of finished inputs, the folder lock (issue 12, cases 1 and 2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import pytest
from cli_runner import run_cli
from video_fixtures import blank_frames, moving_face_frames, write_video

from affecttrack import load_model
from affecttrack.errors import AffectTrackError
from affecttrack.inference.batch import predict_paths
from affecttrack.inference.predictor import AffectModel
from affecttrack.inference.records import (
    LOCK_FILE,
    RECORD_FILE,
    FinishedInputs,
    differences,
    input_fingerprint,
)

pytest.importorskip("skimage.data")
SRC = Path(__file__).resolve().parents[1] / "src"


class Killed(Exception):
    """Stands for SIGKILL arriving at a chosen point of a run."""


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.fixture
def videos(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for i, name in enumerate(("a", "b", "c")):
        write_video(folder / f"{name}.mp4", moving_face_frames(12, step=2 + i))
    return folder


def _csvs(out: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(out.glob("*.csv"))}


def _lines_about(lines: list[str], name: str) -> list[str]:
    return [line for line in lines if line.startswith(str(name))]


def test_predicting_a_photo_into_its_own_folder_leaves_the_photo_intact(tmp_path, monkeypatch,
                                                                        capsys):
    """Case 1: `affecttrack predict face.png --out .` wrote its plot over face.png."""
    monkeypatch.chdir(tmp_path)
    cv2.imwrite("face.png", moving_face_frames(1)[0])
    before = Path("face.png").read_bytes()
    code, out, _ = run_cli(monkeypatch, capsys, "predict", "face.png", "--out", ".")
    assert code == 0, out
    assert Path("face.png").read_bytes() == before
    assert Path("face.csv").is_file()
    code, out, _ = run_cli(monkeypatch, capsys, "predict", "face.png", "--frames", "--out", ".")
    assert code == 0, out
    assert Path("face.png").read_bytes() == before
    assert Path("face.timeline.png").is_file()     # the plot's own name


def test_an_output_folder_where_an_output_would_overwrite_an_input_is_refused(
        tmp_path, monkeypatch, capsys):
    folder = tmp_path / "media"
    folder.mkdir()
    write_video(folder / "clip.mp4", moving_face_frames(4))
    write_video(folder / "talk.mp4", moving_face_frames(4))
    write_video(folder / "talk.annotated.mp4", moving_face_frames(4))
    cv2.imwrite(str(folder / "clip.timeline.png"), moving_face_frames(1)[0])
    (tmp_path / "link").symlink_to(folder)
    cases = [(["clip.mp4", "clip.timeline.png"], [], "clip.timeline.png"),
             (["talk.mp4", "talk.annotated.mp4"], ["--annotate"], "talk.annotated.mp4")]
    for names, options, victim in cases:
        before = (folder / victim).read_bytes()
        for out in (folder, tmp_path / "link"):
            code, _, err = run_cli(monkeypatch, capsys, "predict",
                                   *[str(folder / name) for name in names], *options,
                                   "--out", str(out))
            assert code == 2 and err.count("\n") == 1, err
            assert f"would overwrite the input {folder / victim}" in err
        assert (folder / victim).read_bytes() == before
    assert sorted(path.name for path in folder.iterdir()) == [
        "clip.mp4", "clip.timeline.png", "talk.annotated.mp4", "talk.mp4"]   # nothing written


def test_a_second_run_keeps_finished_inputs_and_redoes_what_changed(model, videos, tmp_path):
    out = tmp_path / "out"
    predict_paths(model, [videos], out, report=lambda line: None)
    first = _csvs(out)
    lines: list[str] = []
    summary = predict_paths(model, [videos], out, report=lines.append)
    assert all(entry.get("reused") for entry in summary["inputs"]), lines
    assert _csvs(out) == first

    (out / "a.csv").write_text("edited\n")                       # an output edited
    (out / "b.timeline.png").unlink()                            # an output removed
    write_video(videos / "c.mp4", moving_face_frames(20))        # an input replaced
    lines.clear()
    summary = predict_paths(model, [videos], out, report=lines.append)
    assert "redone (output modified: a.csv)" in _lines_about(lines, videos / "a.mp4")[0]
    assert "redone (output missing: b.timeline.png)" in _lines_about(lines, videos / "b.mp4")[0]
    assert "redone (input changed: " in _lines_about(lines, videos / "c.mp4")[0]
    assert "bytes)" in _lines_about(lines, videos / "c.mp4")[0]
    assert not any(entry.get("reused") for entry in summary["inputs"])
    assert _csvs(out)["a.csv"] == first["a.csv"]
    frames = {entry["name"]: entry["frames"] for entry in summary["inputs"]}
    assert frames == {"a": 12, "b": 12, "c": 20}                 # the new video's rows

    other = AffectModel(replace(model.bundle, preprocessing=replace(
        model.bundle.preprocessing, margin=0.25)), model.config)
    lines.clear()
    predict_paths(other, [videos / "a.mp4"], out, report=lines.append)
    assert lines[0] == f"{videos / 'a.mp4'}: redone (model changed)"


def test_a_run_killed_with_other_settings_leaves_no_stale_result_behind(model, videos, tmp_path):
    """Case 2: predict with the defaults, then with other settings killed after rewriting one
    input's files; a rerun with the defaults redoes the inputs the other settings touched and
    keeps the rest."""
    out = tmp_path / "out"
    predict_paths(model, [videos], out, report=lambda line: None)
    defaults = _csvs(out)
    other = load_model(detect_every=1, max_gap=0)

    def report(line: str) -> None:
        if line.startswith(str(videos / "b.mp4")) and "with a face" in line:
            raise Killed   # b's files are rewritten, its record not yet written

    with pytest.raises(Killed):
        predict_paths(other, [videos], out, report=report)
    assert _csvs(out)["a.csv"] != defaults["a.csv"] and _csvs(out)["b.csv"] != defaults["b.csv"]

    lines: list[str] = []
    summary = predict_paths(model, [videos], out, report=lines.append)
    assert _lines_about(lines, videos / "a.mp4")[0] == (
        f"{videos / 'a.mp4'}: redone (settings changed: detect_every 1 -> 5, max_gap 0 -> 15)")
    assert _lines_about(lines, videos / "b.mp4")[0] == (
        f"{videos / 'b.mp4'}: redone (output modified: b.csv, b.txt, b.timeline.png)")
    assert _lines_about(lines, videos / "c.mp4") == [
        f"{videos / 'c.mp4'}: done in an earlier run (ok); kept"]
    assert [bool(entry.get("reused")) for entry in summary["inputs"]] == [False, False, True]
    assert _csvs(out) == defaults


@pytest.mark.slow
def test_sigkill_during_a_run_with_other_settings_then_a_rerun_with_the_defaults(
        model, tmp_path):
    """The same with a real `kill -9` of the command, wherever it lands: every input whose
    files the killed run touched is redone, every other one kept, and the CSVs end as the
    defaults make them."""
    videos = tmp_path / "in"
    videos.mkdir()
    for i in range(4):
        write_video(videos / f"v{i}.mp4", moving_face_frames(40, step=1 + i))
    out = tmp_path / "out"
    predict_paths(model, [videos], out, report=lambda line: None)
    defaults = _csvs(out)
    recorded = len((out / RECORD_FILE).read_text().splitlines())
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1",
           "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [sys.executable, "-m", "affecttrack", "predict", str(videos), "--out", str(out),
         "--detect-every", "1", "--max-gap", "0"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len((out / RECORD_FILE).read_text().splitlines()) == recorded:
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    appended = {Path(record["input"]).name for record in
                map(_parsed, (out / RECORD_FILE).read_text().splitlines()[recorded:]) if record}
    touched = {name.replace(".csv", ".mp4") for name, data in _csvs(out).items()
               if data != defaults[name]} | appended
    assert touched and len(touched) < 4

    lines: list[str] = []
    summary = predict_paths(model, [videos], out, report=lines.append)
    redone = {Path(entry["input"]).name for entry in summary["inputs"] if not entry.get("reused")}
    assert redone == touched, lines
    assert _csvs(out) == defaults


def _parsed(line: str) -> dict | None:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


def test_the_fingerprint_sees_content_changed_under_the_same_size_and_time(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"a" * 5000)
    before = input_fingerprint([path])
    stat = path.stat()
    path.write_bytes(b"b" + b"a" * 4999)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    now = input_fingerprint([path])
    record = {"kind": "video", "name": "clip", "fingerprint": before, "model_sha256": "m",
              "settings": {}, "output_sha256": {}}
    current = {**record, "fingerprint": now}
    assert differences(record, current, tmp_path) == ["input changed: content"]
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    current["fingerprint"] = input_fingerprint([path])
    assert differences(record, current, tmp_path) == ["input changed: modification time"]
    assert input_fingerprint([tmp_path / "gone.png"]) is None


def test_a_torn_last_record_costs_only_itself(model, tmp_path):
    """A run killed while appending leaves half a line: it is skipped, and the next record
    does not run into it. Runs with other inputs into one folder keep each other's records."""
    write_video(tmp_path / "one.mp4", moving_face_frames(6))
    write_video(tmp_path / "two.mp4", blank_frames(6))
    out = tmp_path / "out"
    predict_paths(model, [tmp_path / "one.mp4"], out, report=lambda line: None)
    with open(out / RECORD_FILE, "a") as handle:
        handle.write('{"input": "/half/a/line", "kind"')
    predict_paths(model, [tmp_path / "two.mp4"], out, report=lambda line: None)
    records = FinishedInputs(out).records
    assert {Path(key).name for key in records} == {"one.mp4", "two.mp4"}
    lines: list[str] = []
    summary = predict_paths(model, [tmp_path / "one.mp4", tmp_path / "two.mp4"], out,
                            report=lines.append)
    assert all(entry["reused"] for entry in summary["inputs"]), lines
    assert [entry["status"] for entry in summary["inputs"]] == ["ok", "no_face"]


def _hold_lock(out: Path) -> subprocess.Popen:
    """Another process holding `out`'s lock, as a running predict would."""
    code = ("import sys, time; from pathlib import Path; "
            "from affecttrack.inference.records import folder_lock\n"
            "with folder_lock(Path(sys.argv[1]), print):\n"
            "    print('locked', flush=True); time.sleep(120)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH",
                                                                                    "")])}
    process = subprocess.Popen([sys.executable, "-c", code, str(out)], env=env,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "locked"
    return process


def test_a_second_run_into_a_folder_in_use_is_refused_and_a_dead_runs_lock_taken_over(
        model, tmp_path, monkeypatch, capsys):
    video = write_video(tmp_path / "clip.mp4", moving_face_frames(4))
    out = tmp_path / "out"
    out.mkdir()
    holder = _hold_lock(out)
    try:
        code, _, err = run_cli(monkeypatch, capsys, "predict", str(video), "--out", str(out))
        assert code == 2 and err.count("\n") == 1, err
        assert f"another affecttrack predict (pid {holder.pid}) is writing there" in err
        assert sorted(path.name for path in out.iterdir()) == [LOCK_FILE]
        with pytest.raises(AffectTrackError, match=f"pid {holder.pid}"):
            predict_paths(model, [video], out)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    lines: list[str] = []
    summary = predict_paths(model, [video], out, report=lines.append)
    assert lines[0] == f"{out}: took over the lock of pid {holder.pid}, which is no longer running"
    assert summary["counts"] == {"ok": 1}
    assert (out / LOCK_FILE).read_text() == ""   # released at the end
