"""Face detectors' speed and detection rate on the real videos in shared/data/videos.

    .venv/bin/python benchmarks/detection.py            # ~5 min on 2 cores
    .venv/bin/python benchmarks/detection.py --quick    # every 4th frame, ~1.5 min

Every detector in `affecttrack.data.detect.DETECTORS` is measured twice: with its default
`max_side` (the image searched at reduced size, boxes mapped back) and on the full-size image.
Speed: milliseconds per frame on frames of WolfgangLanger_Pexels.mp4 at their 640x360 and
upscaled to 1280x720 (median wall time after warm-up, and the CPU time of this process per frame,
which other processes on a shared machine disturb less). Detection rate: the share of frames of
each face video with at least one face; false positives: the share of frames of the cartoon
no_face.mp4 with any. Writes results/detection.json, prints a markdown table and puts it in
RESULTS.md's section "## Face detection" (replaced in place, so run_benchmarks.py's rewrite of
the page loses it only until this script runs again).
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from measure import phase_cpu
from report import publish
from run_benchmarks import machine

from affecttrack.data.detect import DETECTORS, FaceDetector, create_detector
from affecttrack.errors import AffectTrackError
from affecttrack.runinfo import package_versions, source_commit

ROOT = Path(__file__).resolve().parents[1]
FACE_VIDEOS = ("WolfgangLanger_Pexels", "woman_talking", "single_face", "smiling_at_phone")
EMPTY_VIDEO = "no_face"
TIMING_VIDEO = "WolfgangLanger_Pexels"
SIZES = {"640x360": None, "1280x720": (1280, 720)}
SETTINGS = {"reduced": {}, "full-size": {"max_side": None}}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=Path, default=ROOT.parent / "shared/data/videos")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/detection.json")
    parser.add_argument("--report", type=Path, default=ROOT / "benchmarks/RESULTS.md",
                        help="the page whose '## Face detection' section gets the table")
    parser.add_argument("--detectors", default=",".join(DETECTORS),
                        help="comma-separated names (default: all)")
    parser.add_argument("--timing-frames", type=int, default=60,
                        help="frames timed per size (spread over the timing video)")
    parser.add_argument("--threads", type=int, default=1,
                        help="OpenCV threads (1: a per-core figure, as beside the CNN)")
    parser.add_argument("--quick", action="store_true", help="every 4th frame for the rates")
    return parser.parse_args(argv)


def decode_grey(path: Path, every: int = 1) -> list[np.ndarray]:
    """Every `every`-th frame, grey as the video source decodes it."""
    if not path.is_file():
        raise AffectTrackError(f"{path}: benchmark video not found (pass --videos)")
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="gray") for f in container.decode(container.streams.video[0])]
    return frames[::every]


def timing_frames(frames: list[np.ndarray], count: int) -> dict[str, list[np.ndarray]]:
    """`count` frames spread over the video, at each size of SIZES."""
    picked = frames[::max(1, len(frames) // count)][:count]
    return {size: [cv2.resize(f, dims) if dims else f for f in picked]
            for size, dims in SIZES.items()}


def time_per_frame(detector: FaceDetector, frames: list[np.ndarray]) -> dict[str, float]:
    """Median wall ms per frame after 3 warm-up calls, and CPU ms per frame of this process."""
    for frame in frames[:3]:
        detector.detect(frame)
    walls, cpu0 = [], time.process_time()
    for frame in frames:
        start = time.perf_counter()
        detector.detect(frame)
        walls.append(time.perf_counter() - start)
    cpu = time.process_time() - cpu0
    return {"wall_ms": round(1000 * statistics.median(walls), 2),
            "cpu_ms": round(1000 * cpu / len(frames), 2)}


def found_share(detector: FaceDetector, frames: list[np.ndarray]) -> float:
    """The share of frames in which the detector finds at least one face."""
    return round(float(np.mean([bool(detector.detect(frame)) for frame in frames])), 4)


def measure(name: str, options: dict[str, Any], videos: dict[str, list[np.ndarray]],
            timed: dict[str, list[np.ndarray]]) -> dict[str, Any]:
    """One detector in one setting: speed at each size and its rate on each video."""
    detector = create_detector(name, **options)
    cpu_log: dict[str, dict[str, float]] = {}
    with phase_cpu(cpu_log, "timing"):
        speed = {size: time_per_frame(detector, frames) for size, frames in timed.items()}
    rates = {video: found_share(detector, frames) for video, frames in videos.items()}
    return {"speed": speed, "rates": rates, "other_cores": cpu_log["timing"]["other_cores"]}


def markdown_table(results: dict[str, dict[str, Any]]) -> str:
    """One row per detector and setting: ms per frame (wall / CPU) and the rates in %."""
    head = (["detector", "setting"] + [f"ms/frame {size} (wall / CPU)" for size in SIZES]
            + [f"found: {video}" for video in FACE_VIDEOS]
            + [f"false: {EMPTY_VIDEO}", "other cores"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, row in results.items():
        name, setting = key.split("/")
        speed = [f"{row['speed'][s]['wall_ms']:.1f} / {row['speed'][s]['cpu_ms']:.1f}"
                 for s in SIZES]
        rates = [f"{100 * row['rates'][v]:.1f}%" for v in (*FACE_VIDEOS, EMPTY_VIDEO)]
        lines.append("| " + " | ".join([name, setting, *speed, *rates,
                                         f"{row['other_cores']:.2f}"]) + " |")
    return "\n".join(lines)


SECTION = "## Face detection"
NOTES = """How to read it:
- "reduced": each detector at its defaults, searching a copy of the frame shrunk to its
  `max_side` ({reduced}) with the boxes mapped back; "full-size": `max_side=None`.
- ms/frame: median wall time per frame, then this process's CPU time per frame (OpenCV
  threads: {threads}), on {frames} frames of WolfgangLanger_Pexels.mp4 at 640x360 and upscaled
  to 1280x720. "other cores": what other processes used meanwhile; the detectors run on one
  core, so on a 2-core machine up to about 1 core of others leaves the figures as they are
  (runs with 0.0 and with 1.0 agreed within 5%), more slows them.
- found: share of frames with at least one face; false: share of the cartoon's frames with any.
- Which detector `create_detector()` gives by default, and why: the docstring of
  src/affecttrack/data/detect.py."""


def report_section(report: dict[str, Any]) -> str:
    """The '## Face detection' section of RESULTS.md: set-up, table and how to read it."""
    cpu, versions = report["machine"], report["packages"]
    packages = ", ".join(f"{name} {versions[name]}"
                         for name in ("opencv-python-headless", "dlib-bin", "av"))
    return "\n".join([
        SECTION, "",
        "Written by `benchmarks/detection.py` (see its docstring).", "",
        f"- Date: {report['created']}",
        f"- Command: `{report['command']}`",
        f"- Commit: {report.get('commit') or 'not recorded'}",
        f"- Machine: {cpu['cpu_model']}, {cpu['usable_cores']} usable cores, no GPU",
        f"- Packages: {packages}",
        f"- Rates over every {report['every_nth_frame']}th frame (--quick)"
        if report["every_nth_frame"] > 1 else "- Rates over every frame", "",
        markdown_table(report["results"]), "",
        NOTES.format(frames=report["timing_frames"], threads=report["opencv_threads"],
                     reduced=_searched_sizes(report["defaults"])), ""])


def _searched_sizes(defaults: dict[str, dict[str, Any]]) -> str:
    """'haar 320; hog_haar: hog 480, then haar 320' from the detectors' default max_side."""
    def parts(detector: dict[str, Any]) -> str:
        return ", then ".join(f"{part} {o['max_side']}" for part, o in detector.items())
    return "; ".join(parts(d) if len(d) == 1 else f"{name}: {parts(d)}"
                     for name, d in defaults.items())


def run(args: argparse.Namespace) -> dict[str, Any]:
    cv2.setNumThreads(args.threads)
    every = 4 if args.quick else 1
    videos = {v: decode_grey(args.videos / f"{v}.mp4", every) for v in (*FACE_VIDEOS, EMPTY_VIDEO)}
    timed = timing_frames(decode_grey(args.videos / f"{TIMING_VIDEO}.mp4"), args.timing_frames)
    results = {}
    for name in args.detectors.split(","):
        for setting, options in SETTINGS.items():
            results[f"{name}/{setting}"] = measure(name, options, videos, timed)
            print(f"{name}/{setting}: done", file=sys.stderr, flush=True)
    return {"created": time.strftime("%Y-%m-%d %H:%M %Z"),
            "command": shlex.join([sys.executable, *sys.argv]),
            "commit": source_commit(),
            "machine": machine(), "opencv_threads": args.threads, "every_nth_frame": every,
            "timing_frames": args.timing_frames,
            "packages": {**package_versions(), "dlib-bin": _version("dlib-bin")},
            "defaults": {name: _defaults(name) for name in args.detectors.split(",")},
            "results": results}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _defaults(name: str) -> dict[str, Any]:
    """The max_side of each part of a detector at its defaults, so the table says what was
    searched."""
    detector = create_detector(name)
    parts = [getattr(detector, p) for p in ("first", "then") if hasattr(detector, p)]
    return {part.name: {"max_side": part.max_side} for part in parts or [detector]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = run(args)
    except AffectTrackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    publish(report, args.out, args.report, SECTION, report_section(report))
    print(markdown_table(report["results"]))
    print(f"\nreduced = each detector's default max_side: {report['defaults']}; "
          f"written to {args.out} and {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
