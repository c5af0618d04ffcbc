"""End-to-end video prediction: frames/s and peak memory of ours next to the paper's way.

    .venv/bin/python benchmarks/predict.py            # ~4 min on 2 quiet cores
    .venv/bin/python benchmarks/predict.py --quick    # 100 frames of 2 videos, ~1.5 min

Every face video in shared/data/videos is predicted, each in a fresh process
(`predict_ways.py`), twice: OUR way (what `affecttrack predict` runs, from decoding to the CSV
and ABAW files written; the timeline PNG timed apart) and the REFERENCE way (the public code's
loop built from the same libraries and networks: Haar cascade on every full frame, one CNN call
and one 100-step GRU window per frame). The model is the default bundle's frame network plus an
untrained `gru3` sequence network (3 GRU layers of 100, 100, 50; weights do not change the cost),
so the sequence stage is included. A decode-only pass of `decode_frames` gives the decode stage.

Memory: WolfgangLanger_Pexels looped `--loops` times (re-encoded with PyAV, libx264 veryfast)
is predicted in its own process, and its peak RSS compared with the 1x run's; the reference way
runs on it only when its 1x speed says it would finish within `--max-reference-long-s`.

Writes results/predict.json and the section "## Video prediction, end to end" of RESULTS.md
(replaced in place), and prints the tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import tempfile
import time
from fractions import Fraction
from itertools import islice
from pathlib import Path
from typing import Any

import av
import torch
from detection import FACE_VIDEOS
from measure import phase_cpu
from report import publish
from run_benchmarks import machine, run_json_process

from affecttrack.data.video_frames import decode_frames, probe_video
from affecttrack.errors import AffectTrackError
from affecttrack.inference.bundle import load_bundle, save_bundle
from affecttrack.models.registry import create_sequence_model
from affecttrack.runinfo import package_versions, source_commit

HERE = Path(__file__).resolve().parent
WAYS = ("ours", "reference")
LONG_SOURCE = "WolfgangLanger_Pexels"
SEQUENCE_MODEL = "gru3"
TARGET_FPS = 60.0
TARGET_RATIO = 5.0
SECTION = "## Video prediction, end to end"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=Path, default=HERE.parent.parent / "shared/data/videos")
    parser.add_argument("--names", default=",".join(FACE_VIDEOS),
                        help="comma-separated video names (file stems) to predict")
    parser.add_argument("--frames", type=int, default=None,
                        help="only the first N frames of each video (--quick: 100)")
    parser.add_argument("--loops", type=int, default=None,
                        help=f"{LONG_SOURCE} repeated this often for the memory check "
                             "(default 10, --quick 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads, both ways")
    parser.add_argument("--reference-budget-s", type=float, default=None,
                        help="stop the reference after N s per video; its frames/s is over the "
                             "frames done (default 60, --quick 10)")
    parser.add_argument("--max-reference-long-s", type=float, default=None,
                        help="skip the reference on the looped video if its 1x speed says it "
                             "would take longer (default 180, --quick 30)")
    parser.add_argument("--wait-idle", type=float, default=0.0,
                        help="before each timed run wait up to N s for other processes to go "
                             "quiet")
    parser.add_argument("--quick", action="store_true",
                        help="100 frames of WolfgangLanger_Pexels and single_face, 3 loops, "
                             "shorter reference runs: checks the script (~1.5 min)")
    parser.add_argument("--out", type=Path, default=HERE / "results/predict.json")
    parser.add_argument("--report", type=Path, default=HERE / "RESULTS.md",
                        help=f"the page whose '{SECTION}' section gets the tables")
    args = parser.parse_args(argv)
    return _with_defaults(args)


def _with_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Fill what --quick decides, and check the names before anything runs."""
    quick = args.quick
    if quick and args.names == ",".join(FACE_VIDEOS):
        args.names = f"{LONG_SOURCE},single_face"
    defaults = {"frames": (100 if quick else None), "loops": (3 if quick else 10),
                "reference_budget_s": (10.0 if quick else 60.0),
                "max_reference_long_s": (30.0 if quick else 180.0)}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.names = [name for name in args.names.split(",") if name]
    if LONG_SOURCE not in args.names:
        raise AffectTrackError(f"--names must include {LONG_SOURCE}: its 1x run is the memory "
                               "check's baseline")
    for name in args.names:
        if not (args.videos / f"{name}.mp4").is_file():
            raise AffectTrackError(f"{args.videos / name}.mp4: benchmark video not found "
                                   "(pass --videos or --names)")
    return args


def make_bundle(path: Path) -> tuple[Path, str]:
    """The default bundle's frame network with an untrained gru3 on its features, saved to
    `path`: both networks' cost, as a bundle with a trained sequence network would have."""
    bundle = load_bundle()
    sequence = create_sequence_model(SEQUENCE_MODEL,
                                     input_dim=bundle.frame.num_features).eval()
    meta = {**bundle.meta, "sequence": {"name": SEQUENCE_MODEL, "overrides": {},
                                        "meta": {"target": "many_to_one", "untrained": True}}}
    save_bundle(dataclasses.replace(bundle, sequence=sequence, meta=meta), path)
    return path, load_bundle(path).summary()


def loop_video(source: Path, dest: Path, loops: int, frames: int | None) -> int:
    """`source` (its first `frames` frames) played `loops` times, re-encoded into `dest`;
    the number of frames written."""
    written = 0
    with av.open(str(dest), "w") as out:
        stream = None
        for _ in range(loops):
            with av.open(str(source)) as container:
                video = container.streams.video[0]
                if stream is None:
                    stream = out.add_stream("libx264", rate=video.average_rate,
                                            options={"preset": "veryfast"})
                    stream.width = video.codec_context.width
                    stream.height = video.codec_context.height
                    stream.pix_fmt = "yuv420p"
                for frame in islice(container.decode(video), frames):
                    frame.pts, frame.time_base = written, 1 / Fraction(video.average_rate)
                    out.mux(stream.encode(frame))
                    written += 1
        out.mux(stream.encode())
    return written


def decode_pass(video: Path, frames: int | None, wait_idle_s: float) -> dict[str, Any]:
    """Seconds to decode the video as prediction does (grey, PyAV), nothing else."""
    cpu: dict[str, dict[str, float]] = {}
    count = 0
    with phase_cpu(cpu, "decode", wait_idle_s=wait_idle_s):
        for _ in islice(decode_frames(video), frames):
            count += 1
    return {"frames": count, "seconds": cpu["decode"]["wall_s"], "phase_cpu": cpu["decode"]}


def run_way(way: str, video: Path, args: argparse.Namespace, bundle: Path, out: Path,
            frames: int | None, budget_s: float | None) -> dict[str, Any]:
    """One way on one video in a fresh process; its JSON line, or a one-line error."""
    command = [sys.executable, str(HERE / "predict_ways.py"), way, "--video", str(video),
               "--bundle", str(bundle), "--out", str(out), "--threads", str(args.threads),
               "--wait-idle", str(args.wait_idle)]
    command += ["--frames", str(frames)] if frames else []
    command += ["--max-seconds", str(budget_s)] if budget_s else []
    print(f"{way} {video.name} ...", end="", file=sys.stderr, flush=True)
    raw = run_json_process(command, f"{way} on {video.name}")
    raw["other_cores"] = raw["phase_cpu"]["other_cores"]
    print(f" {fps(raw):.1f} frames/s, other processes used {raw['other_cores']:.2f} cores",
          file=sys.stderr)
    return raw


def measure_videos(args: argparse.Namespace, bundle: Path, work: Path) -> dict[str, Any]:
    """Per video: its size, the decode pass and both ways (adjacent, order alternating)."""
    results = {}
    for index, name in enumerate(args.names):
        video = args.videos / f"{name}.mp4"
        info = probe_video(video)
        row: dict[str, Any] = {"size": f"{info.width}x{info.height}",
                               "decode": decode_pass(video, args.frames, args.wait_idle)}
        for way in WAYS if index % 2 == 0 else WAYS[::-1]:
            budget = args.reference_budget_s if way == "reference" else None
            row[way] = run_way(way, video, args, bundle, work / way, args.frames, budget)
        results[name] = row
    return results


def measure_long(args: argparse.Namespace, bundle: Path, work: Path,
                 reference_1x: dict[str, Any]) -> dict[str, Any]:
    """Ours (and the reference if cheap) on the looped video, each in a fresh process."""
    long_video = work / f"{LONG_SOURCE}_x{args.loops}.mp4"
    start = time.perf_counter()
    frames = loop_video(args.videos / f"{LONG_SOURCE}.mp4", long_video, args.loops, args.frames)
    result: dict[str, Any] = {"loops": args.loops, "frames": frames,
                              "encode_s": round(time.perf_counter() - start, 1),
                              "ours": run_way("ours", long_video, args, bundle, work / "long",
                                              None, None)}
    estimate = frames / fps(reference_1x)
    if estimate > args.max_reference_long_s:
        result["reference"] = None
        result["reference_skipped"] = (f"skipped: its 1x speed puts it at about "
                                       f"{estimate:.0f} s > {args.max_reference_long_s:.0f} s")
    else:
        result["reference"] = run_way("reference", long_video, args, bundle, work / "long",
                                      None, None)
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="affecttrack-bench-") as tmp:
        work = Path(tmp)
        bundle, summary = make_bundle(work / "gru3.bundle.pt")
        videos = measure_videos(args, bundle, work)
        long = measure_long(args, bundle, work, videos[LONG_SOURCE]["reference"])
    return {"created": time.strftime("%Y-%m-%d %H:%M %Z"),
            "command": shlex.join([sys.executable, *sys.argv]),
            "commit": source_commit(),
            "machine": machine(), "packages": package_versions(),
            "torch": torch.__version__, "threads": args.threads, "frames_cap": args.frames,
            "reference_budget_s": args.reference_budget_s, "bundle": summary,
            "videos": videos, "long": long,
            "totals": totals(videos), "run_s": round(time.perf_counter() - started, 1)}


def totals(videos: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """All videos together: counts and seconds summed per way, others' CPU use at most."""
    summed: dict[str, Any] = {}
    for way in WAYS:
        raws = [row[way] for row in videos.values()]
        stages: dict[str, float] = {}
        for raw in raws:
            for stage, seconds in raw["stages_s"].items():
                stages[stage] = stages.get(stage, 0.0) + seconds
        summed[way] = {key: sum(r.get(key, 0) for r in raws)
                       for key in ("frames", "frames_with_face", "seconds", "plot_s")}
        summed[way].update(stages_s=stages, other_cores=max(r["other_cores"] for r in raws))
    summed["decode"] = {key: sum(row["decode"][key] for row in videos.values())
                        for key in ("frames", "seconds")}
    return summed


def fps(raw: dict[str, Any]) -> float:
    return raw["frames"] / raw["seconds"]


def throughput_table(report: dict[str, Any]) -> str:
    """Per video and in total: frames/s of each way, their ratio, others' CPU use."""
    lines = [("| video | size | frames, ours / reference | with a face, ours / reference | "
              "ours frames/s | reference frames/s | ours / reference | "
              "other cores, ours / reference |"), "|---|---|---|---|---|---|---|---|"]
    for name, row in report["videos"].items():
        lines.append(_throughput_row(name, row["size"], row["ours"], row["reference"]))
    total = report["totals"]
    lines.append(_throughput_row("**all**", "", total["ours"], total["reference"]))
    return "\n".join(lines)


def _throughput_row(name: str, size: str, ours: dict[str, Any], ref: dict[str, Any]) -> str:
    return (f"| {name} | {size} | {ours['frames']} / {ref['frames']} | "
            f"{ours['frames_with_face']} / {ref['frames_with_face']} | {fps(ours):.1f} | "
            f"{fps(ref):.1f} | {fps(ours) / fps(ref):.1f}x | "
            f"{ours['other_cores']:.2f} / {ref['other_cores']:.2f} |")


# (label, our stage key or None, the reference's stage keys): how the two loops line up.
STAGE_ROWS = (
    ("decode (ours: decode-only pass, in its own thread when predicting)", "decode", ("decode",)),
    ("faces (ours: hog_haar every 5th frame + tracking; reference: Haar every frame + crop)",
     "faces", ("detect", "crop")),
    ("CNN", "cnn", ("cnn",)),
    ("sequence (ours: GRU state carried; reference: 100-step window per frame)", "sequence",
     ("sequence",)),
    ("rows, gap interpolation, FramePredictions", "table", ()),
    ("writing (ours: CSV + ABAW txt; reference: CSV)", "writing", ("writing",)),
    ("waiting for decoded frames", "waiting", ()),
)


def stage_table(report: dict[str, Any]) -> str:
    """ms per frame of each stage over all videos; then the end-to-end wall time."""
    total = report["totals"]
    ours, ref = total["ours"], total["reference"]
    lines = ["| stage | ours ms/frame | reference ms/frame |", "|---|---|---|"]
    for label, key, ref_keys in STAGE_ROWS:
        mine = (1000 * total["decode"]["seconds"] / total["decode"]["frames"] if key == "decode"
                else 1000 * ours["stages_s"][key] / ours["frames"])
        theirs = (f"{1000 * sum(ref['stages_s'][k] for k in ref_keys) / ref['frames']:.2f}"
                  if ref_keys else "—")
        lines.append(f"| {label} | {mine:.2f} | {theirs} |")
    lines.append(f"| **end to end (wall)** | **{1000 / fps(ours):.2f}** | "
                 f"**{1000 / fps(ref):.2f}** |")
    lines.append(f"| timeline PNG (not in end to end) | "
                 f"{1000 * ours['plot_s'] / ours['frames']:.2f} | — |")
    return "\n".join(lines)


def memory_table(report: dict[str, Any]) -> str:
    """Peak RSS of the 1x and the looped video, each way, and the ratio."""
    long, one = report["long"], report["videos"][LONG_SOURCE]
    ref_long = long["reference"]
    lines = [("| run | frames | ours peak RSS MB | ours frames/s | reference peak RSS MB | "
              "reference frames/s |"), "|---|---|---|---|---|---|"]
    lines.append(f"| {LONG_SOURCE} 1x | {one['ours']['frames']} | "
                 f"{one['ours']['peak_rss_mb']:.0f} | {fps(one['ours']):.1f} | "
                 f"{one['reference']['peak_rss_mb']:.0f} | {fps(one['reference']):.1f} |")
    ref_cells = (f"{ref_long['peak_rss_mb']:.0f} | {fps(ref_long):.1f}" if ref_long
                 else f"{long['reference_skipped']} | —")
    lines.append(f"| looped {long['loops']}x | {long['frames']} | "
                 f"{long['ours']['peak_rss_mb']:.0f} | {fps(long['ours']):.1f} | {ref_cells} |")
    ref_ratio = (f"{ref_long['peak_rss_mb'] / one['reference']['peak_rss_mb']:.2f}x"
                 if ref_long else "—")
    lines.append(f"| {long['loops']}x / 1x | | "
                 f"**{long['ours']['peak_rss_mb'] / one['ours']['peak_rss_mb']:.2f}x** | | "
                 f"{ref_ratio} | |")
    return "\n".join(lines)


def verdict(report: dict[str, Any]) -> str:
    total = report["totals"]
    ours, ratio = fps(total["ours"]), fps(total["ours"]) / fps(total["reference"])
    met = {True: "met", False: "**not met**"}
    return (f"Targets: ours >= {TARGET_FPS:.0f} frames/s: {ours:.1f}, {met[ours >= TARGET_FPS]}; "
            f"ours >= {TARGET_RATIO:.0f}x the reference: {ratio:.1f}x, "
            f"{met[ratio >= TARGET_RATIO]}. Others' CPU use during the runs up to "
            f"{max(total[way]['other_cores'] for way in WAYS):.2f} cores.")


NOTES = """How to read it:
- End to end = from opening the video to the CSV (and, for ours, the ABAW txt) written; the
  model is loaded and both ways warmed up on 16 frames before timing. Totals are all frames over
  all seconds. "other cores": CPU other processes used meanwhile (from /proc/stat); above about
  0.1 the figure was slowed by someone else, most of all the small operations (GRU steps,
  batch-1 CNN calls), each of which waits for both of torch's threads while another process
  holds a core; a run with `--threads 1` shows how much of a slow figure that is.
- Model: {bundle}. The gru3 weights are untrained (random): its cost is what matters here.
  Ours runs the CNN in {precision} on batches of up to {batch} faces; the reference in fp32, one
  face per call.
- Stage ms/frame are over all frames of all videos. Ours decodes in a background thread, so its
  decode time overlaps the other stages; "waiting" is what the main thread spent waiting for it.
- The reference stops after {budget:g} s per video (its frames/s is then over the frames done).
- Memory: the peak resident set of a fresh process (`ru_maxrss`, model and libraries included)
  predicting {source} and the same video looped {loops}x (re-encoded with PyAV, libx264 veryfast,
  {encode_s} s not counted)."""


def report_section(report: dict[str, Any]) -> str:
    """The RESULTS.md section: set-up, the three tables, the verdict and how to read them."""
    cpu, versions = report["machine"], report["packages"]
    ours_one = report["videos"][LONG_SOURCE]["ours"]
    packages = ", ".join(f"{name} {versions.get(name)}"
                         for name in ("torch", "opencv-python-headless", "av", "pandas"))
    cap = (f"first {report['frames_cap']} frames of each video" if report["frames_cap"]
           else "every frame")
    return "\n".join([
        SECTION, "",
        "Written by `benchmarks/predict.py` (see its docstring).", "",
        f"- Date: {report['created']}",
        f"- Command: `{report['command']}`",
        f"- Commit: {report.get('commit') or 'not recorded'}",
        (f"- Machine: {cpu['cpu_model']}, {cpu['usable_cores']} usable cores, no GPU; torch "
         f"threads {report['threads']}, OpenCV threads {ours_one['opencv_threads']}"),
        f"- Packages: {packages}",
        f"- Frames: {cap}; whole run {report['run_s']:.0f} s", "",
        throughput_table(report), "", verdict(report), "",
        stage_table(report), "", memory_table(report), "",
        NOTES.format(bundle=report["bundle"], precision=ours_one["precision"],
                     batch=ours_one["batch_frames"], budget=report["reference_budget_s"],
                     source=LONG_SOURCE, loops=report["long"]["loops"],
                     encode_s=report["long"]["encode_s"]), ""])


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        report = run(args)
    except AffectTrackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    publish(report, args.out, args.report, SECTION, report_section(report))
    print("\n\n".join([throughput_table(report), verdict(report), stage_table(report),
                       memory_table(report)]))
    print(f"\nwritten to {args.out} and {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
