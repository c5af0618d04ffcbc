"""Our speed and memory side by side with the paper's Keras reference, measured in one run.

Absolute figures on a shared machine move with whoever else is running, so everything a ratio needs
is measured in one run, and each phase of ours runs right next to the same phase of the reference
(the order alternates between rounds). Every phase runs in a fresh process, so its peak memory is
its own; one more process per side runs all phases, for a whole-run peak comparable to the
reference's single process. Every phase records how many cores other processes used meanwhile.

Our phases run in the precision the pipeline uses for them on this machine (the defaults of frame
training, feature extraction, sequence training and sequence prediction), and once more in the
other precision where this CPU offers a fast one, so the choice can be checked.

    .venv/bin/python benchmarks/run_benchmarks.py [--quick] [--keras-python PATH] [--rounds N]

Writes benchmarks/results/latest.json and rewrites benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ours import PHASES  # noqa: E402
from report import Row, build_rows, keep_other_sections, markdown_table, results_page  # noqa: E402

from affecttrack.errors import AffectTrackError  # noqa: E402
from affecttrack.features.extract import extract_features  # noqa: E402
from affecttrack.models.precision import choose_precision  # noqa: E402
from affecttrack.runinfo import (  # noqa: E402
    package_versions,
    source_commit,
    write_json_atomic,
    write_text_atomic,
)
from affecttrack.training.frame import FrameTrainConfig  # noqa: E402
from affecttrack.training.sequence import SequenceTrainConfig  # noqa: E402

KERAS_ENV = "AFFECTTRACK_KERAS_PYTHON"
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")
OURS, OURS_ALT, REFERENCE = "ours", "ours_other_precision", "reference"
WHOLE_RUN = "whole_run"


@dataclass(frozen=True)
class Job:
    """One process to run: which side, which phase (or the whole run), its command line."""

    side: str
    phase: str
    command: list[str]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="few steps and a 600-frame video: checks the set-up (~3 min), "
                             "figures not worth quoting")
    parser.add_argument("--keras-python", type=Path, default=None,
                        help=f"python of the TensorFlow virtualenv (default: ${KERAS_ENV}; "
                             "without either the reference is skipped)")
    parser.add_argument("--keras-script", type=Path,
                        default=HERE.parent.parent / "shared" / "bench" / "keras_reference.py")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the per-phase comparisons; figures are medians over rounds")
    parser.add_argument("--phases", default=",".join(PHASES),
                        help=f"comma-separated subset of {','.join(PHASES)}")
    parser.add_argument("--wait-idle", type=float, default=0.0,
                        help="before each phase wait up to N s for other processes to go quiet")
    parser.add_argument("--video-frames", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    parser.add_argument("--report", type=Path, default=HERE / "RESULTS.md")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> list[str]:
    """The phases to run; a clear error for anything unusable, before any measuring starts."""
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = sorted(set(phases) - set(PHASES))
    if unknown or not phases:
        raise AffectTrackError(f"--phases: unknown or empty {unknown or phases}; "
                               f"choose from {','.join(PHASES)}")
    if args.rounds < 1:
        raise AffectTrackError(f"--rounds must be at least 1, got {args.rounds}")
    if args.video_frames <= 100:
        raise AffectTrackError(f"--video-frames must exceed the 100-frame window, "
                               f"got {args.video_frames}")
    return phases


def keras_python(args: argparse.Namespace) -> Path | None:
    """The reference's interpreter from --keras-python or the environment; None = not configured."""
    from_env = os.environ.get(KERAS_ENV)
    given = args.keras_python or (Path(from_env) if from_env else None)
    if given is None:
        return None
    if not (given.is_file() and os.access(given, os.X_OK)):
        raise AffectTrackError(f"{given}: not an executable python (the TensorFlow virtualenv's "
                               "bin/python; see benchmarks/README.md)")
    if not args.keras_script.is_file():
        raise AffectTrackError(f"{args.keras_script}: reference script not found")
    return given


def common_flags(args: argparse.Namespace) -> list[str]:
    flags = ["--video-frames", str(args.video_frames), "--wait-idle", str(args.wait_idle)]
    return flags + (["--quick"] if args.quick else [])


def pipeline_precisions() -> dict[str, str]:
    """The precision each phase runs in when the pipeline runs it here (its defaults, resolved)."""
    requested = {
        "cnn_train": FrameTrainConfig().precision,
        "cnn_infer": inspect.signature(extract_features).parameters["precision"].default,
        "gru_train": SequenceTrainConfig().precision,
        "video": "32-true",  # predict_sequences runs the model without autocast
    }
    return {phase: choose_precision(precision) for phase, precision in requested.items()}


def other_precision(precision: str, fast_bf16: bool) -> str | None:
    """The alternative worth measuring: fp32 for a bf16 phase, bf16 for an fp32 one if fast here."""
    if precision == "bf16-mixed":
        return "32-true"
    return "bf16-mixed" if fast_bf16 else None


def plan(args: argparse.Namespace, phases: list[str], ref_python: Path | None,
         precisions: dict[str, str], fast_bf16: bool) -> list[Job]:
    """Per-phase processes, ours and the reference's adjacent, order alternating by round; then
    the two whole runs."""
    ours = [sys.executable, str(HERE / "ours.py"), "--phases"]
    ref = [str(ref_python), str(args.keras_script), "--only"] if ref_python else None

    def phase_jobs(phase: str) -> list[Job]:
        jobs = [Job(OURS, phase, [*ours, f"{phase}={precisions[phase]}"])]
        if ref:
            jobs.append(Job(REFERENCE, phase, [*ref, phase]))
        alt = other_precision(precisions[phase], fast_bf16)
        if alt:
            jobs.append(Job(OURS_ALT, phase, [*ours, f"{phase}={alt}"]))
        return jobs

    jobs: list[Job] = []
    for round_ in range(args.rounds):
        for phase in phases:
            group = phase_jobs(phase)
            jobs.extend(group if round_ % 2 == 0 else reversed(group))
    jobs.append(Job(OURS, WHOLE_RUN, [*ours, ",".join(f"{p}={precisions[p]}" for p in phases)]))
    if ref:
        jobs.append(Job(REFERENCE, WHOLE_RUN, [*ref, ",".join(phases)]))
    return [Job(j.side, j.phase, j.command + common_flags(args)) for j in jobs]


def last_json_line(stdout: str) -> dict[str, Any] | None:
    """The last stdout line that is a JSON object (both sides print exactly one)."""
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return None


def run_json_process(command: list[str], name: str) -> dict[str, Any]:
    """Run a measuring process and return the JSON line it prints; a one-line error naming
    `name`, the exit status, its last error line and the command if it fails."""
    proc = subprocess.run(command, check=False, capture_output=True, text=True)
    raw = last_json_line(proc.stdout) if proc.returncode == 0 else None
    if raw is None:
        last = (proc.stderr.strip().splitlines() or ["no error output"])[-1]
        print(" failed", file=sys.stderr)
        raise AffectTrackError(f"{name} failed (exit {proc.returncode}): {last} "
                               f"[command: {shlex.join(command)}]")
    return raw


def run_job(job: Job, label: str) -> dict[str, Any]:
    """Run one process and return its JSON; a one-line error naming the job if it fails."""
    print(f"{label} {job.side} {job.phase} ...", end="", file=sys.stderr, flush=True)
    start = time.perf_counter()
    raw = run_json_process(job.command, f"{job.side} {job.phase}")
    print(f" {time.perf_counter() - start:.0f} s, other processes used up to "
          f"{raw['max_other_cores']:.2f} cores", file=sys.stderr)
    return raw


def execute(jobs: list[Job]) -> dict[str, dict[str, Any]]:
    """Every job's JSON by side: {"phases": {phase: [one per round]}, "whole_run": ...}."""
    sides: dict[str, dict[str, Any]] = {}
    for index, job in enumerate(jobs, 1):
        raw = run_job(job, f"[{index}/{len(jobs)}]")
        side = sides.setdefault(job.side, {"phases": {}, "whole_run": None})
        if job.phase == WHOLE_RUN:
            side["whole_run"] = raw
        else:
            side["phases"].setdefault(job.phase, []).append(raw)
    return sides


def machine() -> dict[str, Any]:
    """CPU model, cores, memory and the instruction-set flags that decide bf16 speed."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    first = {}
    for line in cpuinfo:
        key, _, value = line.partition(":")
        first.setdefault(key.strip(), value.strip())
    flags = set(first.get("flags", "").split())
    meminfo = Path("/proc/meminfo").read_text().split()
    return {"cpu_model": first.get("model name", "unknown"), "cpu_count": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)),
            "memory_gb": round(int(meminfo[meminfo.index("MemTotal:") + 1]) / 2**20, 1),
            "flags": {flag: flag in flags for flag in CPU_FLAGS}}


def command_line(ref_python: Path | None) -> str:
    """The command as typed, with the reference's interpreter when it came from the environment."""
    cmd = shlex.join([sys.executable, *sys.argv])
    if ref_python and "--keras-python" not in sys.argv:
        cmd = f"{KERAS_ENV}={shlex.quote(str(ref_python))} {cmd}"
    return cmd


def side_info(sides: dict[str, dict[str, Any]], side: str, keys: tuple[str, ...]) -> dict | None:
    """Settings a side reports about itself (versions, threads, precision), from its first job."""
    if side not in sides:
        return None
    raw = next(iter(sides[side]["phases"].values()))[0]
    return {key: raw.get(key) for key in keys}


def collect(args: argparse.Namespace, phases: list[str], ref_python: Path | None,
            precisions: dict[str, str], sides: dict[str, dict[str, Any]],
            rows: list[Row]) -> dict[str, Any]:
    """Everything latest.json holds: the set-up, each process's JSON, and the comparison rows."""
    return {
        "created": time.strftime("%Y-%m-%d %H:%M %Z"),
        "command": command_line(ref_python),
        "commit": source_commit(),
        "quick": args.quick, "rounds": args.rounds, "phases": phases,
        "machine": machine(),
        "packages": package_versions(),
        "ours": {**side_info(sides, OURS, ("threads", "torch_version", "cpu_capability")),
                 "precisions": precisions},
        "reference": side_info(sides, REFERENCE, ("tf_version", "keras_version", "python",
                                                  "tf_intra_op_threads", "onednn_env",
                                                  "metrics_attached", "cnn_params",
                                                  "gru_params")),
        "reference_skipped": None if ref_python else (
            f"no TensorFlow virtualenv given (--keras-python or ${KERAS_ENV}); "
            "see benchmarks/README.md"),
        "rows": [{**vars(row), "ratio": row.ratio, "met": row.met} for row in rows],
        "raw": sides,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        phases = check_args(args)
        ref_python = keras_python(args)
        if ref_python is None:
            print(f"Keras reference skipped: no --keras-python and no ${KERAS_ENV} "
                  "(see benchmarks/README.md)", file=sys.stderr)
        precisions = pipeline_precisions()
        fast_bf16 = choose_precision("auto") == "bf16-mixed"
        sides = execute(plan(args, phases, ref_python, precisions, fast_bf16))
    except AffectTrackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = build_rows(sides[OURS], sides.get(OURS_ALT), sides.get(REFERENCE))
    results = collect(args, phases, ref_python, precisions, sides, rows)
    table = markdown_table(rows)
    write_json_atomic(args.out, results)
    old_page = args.report.read_text() if args.report.is_file() else ""
    write_text_atomic(args.report, keep_other_sections(old_page, results_page(results, table)))
    print(table)
    print(f"wrote {args.out} and {args.report}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
