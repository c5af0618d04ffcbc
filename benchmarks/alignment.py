"""Face alignment by the eyes on real photos: how many faces get landmarks, and what it costs.

    .venv/bin/python benchmarks/alignment.py             # first 500 images, ~1 min on one core
    .venv/bin/python benchmarks/alignment.py --count 100

On the first COUNT images (by name) of shared/data/expressions-in-the-wild, the default detector
finds the largest face; each face is then cut twice, as `prepare` cuts it: the box crop with
margin 0.1 (`crop_box`) and the aligned crop (`crop_face` with `ALIGNMENT`: three landmark runs,
the checks, one warp; the box crop where the landmarks cannot be trusted). Prints how many
faces were aligned and how many fell back, and why, and the milliseconds per face of each crop
(median wall time, and this process's CPU time per face, which other processes disturb less),
with OpenCV on one thread: a per-core figure. Needs the extra [align].
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from affecttrack.data.align import ALIGNMENT, aligner_for, crop_face
from affecttrack.data.detect import FaceBox, create_detector, crop_box
from affecttrack.data.images import is_image, read_grey

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path,
                        default=ROOT.parent / "shared/data/expressions-in-the-wild/images")
    parser.add_argument("--count", type=int, default=500, help="images measured (first by name)")
    parser.add_argument("--threads", type=int, default=1, help="OpenCV threads")
    return parser.parse_args(argv)


def measure(faces: list[tuple[np.ndarray, FaceBox]],
            cut: Callable[[np.ndarray, FaceBox], object]) -> dict[str, float]:
    """Median wall ms and CPU ms per face of `cut` over every face, after one warm-up call."""
    cut(*faces[0])
    walls = []
    cpu = time.process_time()
    for grey, box in faces:
        start = time.perf_counter()
        cut(grey, box)
        walls.append(time.perf_counter() - start)
    cpu = time.process_time() - cpu
    return {"wall_ms": 1000 * statistics.median(walls), "cpu_ms": 1000 * cpu / len(faces)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cv2.setNumThreads(args.threads)
    if not args.images.is_dir():
        print(f"{args.images}: image folder not found (pass --images)", file=sys.stderr)
        return 2
    files = sorted(path for path in args.images.iterdir() if is_image(path))[:args.count]
    detector = create_detector()
    aligner_for(ALIGNMENT)  # the landmark model loaded before timing
    faces, detect_s = [], 0.0
    for path in files:
        grey = read_grey(path)
        if not isinstance(grey, np.ndarray):
            continue
        start = time.perf_counter()
        found = detector.detect(grey)
        detect_s += time.perf_counter() - start
        if found:
            faces.append((grey, found[0]))
    # fallback reasons with their numbers as N, so that alike ones count together
    outcomes = Counter(re.sub(r"\d+(\.\d+)?", "N",
                              crop_face(grey, box, 0.1, alignment=ALIGNMENT)[1] or "aligned")
                       for grey, box in faces)
    box_time = measure(faces, lambda grey, box: crop_box(grey, box, 0.1))
    aligned_time = measure(faces, lambda grey, box: crop_face(grey, box, 0.1,
                                                               alignment=ALIGNMENT))
    fell_back = len(faces) - outcomes["aligned"]
    print(f"images: {len(files)} (first by name in {args.images}); faces found: {len(faces)} "
          f"(default detector, {1000 * detect_s / max(1, len(files)):.1f} ms an image)")
    print(f"aligned: {outcomes['aligned']} ({100 * outcomes['aligned'] / len(faces):.1f}%); "
          f"fell back to the box crop: {fell_back} ({100 * fell_back / len(faces):.1f}%)")
    for reason, count in outcomes.most_common():
        if reason != "aligned":
            print(f"  {count} x {reason}")
    print(f"\n| crop ({args.threads} OpenCV thread) | median wall ms / face | CPU ms / face |")
    print("|---|---|---|")
    for name, figures in (("box crop, margin 0.1", box_time),
                          (f"aligned ({ALIGNMENT['method']})", aligned_time)):
        print(f"| {name} | {figures['wall_ms']:.3f} | {figures['cpu_ms']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
