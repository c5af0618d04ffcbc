"""One video predicted one way, in a process of its own: prints one JSON line (times, peak memory).

Run by `predict.py` in a fresh interpreter per (way, video), so that each run's peak resident
memory is its own and the 1x and 10x videos can be compared. Both ways are warmed up on the
video's first frames (untimed), then timed from opening the video to the CSV written:

- "ours": what `affecttrack predict` runs (`inference/batch.py`, `_predict_one`) minus the summary
  files: `AffectModel.start()`, `run()` over `Prefetch(decode_frames(...))`, `result()`,
  `to_csv_file` and `to_abaw`. The timeline PNG is timed apart (`plot_s`).
- "reference": the paper's public code's way with the same libraries and the same networks:
  cv2.VideoCapture, the Haar cascade on every full-size frame (scaleFactor 1.1, minNeighbors 5),
  the largest face cropped to 96x96 grey, one fp32 CNN call per frame, one 100-step GRU forward
  per frame over the last 100 faces' features (zero-padded before the 100th face, as Keras'
  `pad_sequences` pads), the rows written with pandas.

    python benchmarks/predict_ways.py ours|reference --video V --bundle B --out DIR [--frames N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch
from measure import peak_rss_mb, phase_cpu

from affecttrack.data.faces import to_face_crop
from affecttrack.data.video_frames import decode_frames, probe_video
from affecttrack.errors import AffectTrackError, InputError
from affecttrack.inference.bundle import Bundle, load_bundle
from affecttrack.inference.frame_sources import Prefetch
from affecttrack.inference.predictor import load_model
from affecttrack.models.cnn import faces_to_input

WINDOW = 100
HAAR = {"scaleFactor": 1.1, "minNeighbors": 5}
REFERENCE_STAGES = ("decode", "detect", "crop", "cnn", "sequence", "writing")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("way", choices=("ours", "reference"))
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="folder for the written files")
    parser.add_argument("--frames", type=int, default=None, help="only the first N frames")
    parser.add_argument("--warmup", type=int, default=16, help="untimed frames first")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="reference: stop after N s (its frames/s is over the frames done)")
    parser.add_argument("--wait-idle", type=float, default=0.0,
                        help="wait up to N s for other processes to go quiet before timing")
    return parser.parse_args(argv)


@contextmanager
def stage(times: dict[str, float], name: str) -> Iterator[None]:
    """Add the block's wall time to times[name]."""
    start = time.perf_counter()
    yield
    times[name] += time.perf_counter() - start


class Ours:
    """`affecttrack predict`'s steps for one video, each timed (the PNG apart)."""

    def __init__(self, bundle_path: Path) -> None:
        self.model = load_model(bundle_path)
        self.settings = {"precision": self.model.precision, "va_source": self.model.va_source,
                         "detector": self.model.bundle.preprocessing.detector,
                         "detect_every": self.model.config.detect_every,
                         "batch_frames": self.model.config.batch_frames}

    def predict(self, video: Path, out: Path, frames: int | None) -> dict[str, Any]:
        """Every frame (or the first `frames`) to `out/<stem>.csv, .txt, .png`; seconds, counts."""
        times = dict.fromkeys(("run", "result", "writing", "plot"), 0.0)
        with stage(times, "run"):
            fps = probe_video(video).fps
            run = self.model.start()
            run.run(Prefetch(islice(decode_frames(video), frames)))
        with stage(times, "result"):
            predictions = run.result(fps, str(video))
        with stage(times, "writing"):
            predictions.to_csv_file(out / f"{video.stem}.csv")
            predictions.to_abaw(out / f"{video.stem}.txt")
        with stage(times, "plot"):
            predictions.plot(out / f"{video.stem}.png")
        engine = run.times
        in_loop = engine.faces + engine.cnn + engine.sequence + engine.table
        stages = {"faces": engine.faces, "cnn": engine.cnn, "sequence": engine.sequence,
                  "table": engine.table + times["result"], "writing": times["writing"],
                  # the main thread's time outside the stages: mostly waiting for the decoder
                  "waiting": max(0.0, times["run"] - in_loop)}
        return {"frames": engine.frames, "frames_with_face": _frames_with_face(predictions),
                "seconds": times["run"] + times["result"] + times["writing"],
                "plot_s": times["plot"], "stages_s": stages}


def _frames_with_face(predictions: pd.DataFrame) -> int:
    return int(predictions.loc[predictions["face_id"].notna(), "frame"].nunique())


class Reference:
    """The public code's per-frame loop on our networks (fp32, batch 1, no tracking)."""

    def __init__(self, bundle: Bundle, max_seconds: float | None = None) -> None:
        if bundle.sequence is None:
            raise AffectTrackError("the reference way needs a bundle with a sequence network")
        self.frame = bundle.frame.eval().float()
        self.sequence = bundle.sequence.eval().float()
        self.labels = [label.lower() for label in bundle.labels or ()]
        self.cascade = cv2.CascadeClassifier(
            cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        if self.cascade.empty():
            raise AffectTrackError("cannot load OpenCV's haarcascade_frontalface_default.xml")
        self.max_seconds = max_seconds
        self.settings = {"precision": "32-true", "detector": "haar, full frame", **HAAR}

    def predict(self, video: Path, out: Path, frames: int | None) -> dict[str, Any]:
        """Every frame (or the first `frames`) to `out/<stem>.csv`; stage seconds, counts."""
        capture = cv2.VideoCapture(str(video))
        if not capture.isOpened():
            raise InputError(video, "OpenCV cannot open this video")
        times = dict.fromkeys(REFERENCE_STAGES, 0.0)
        window: deque[np.ndarray] = deque(maxlen=WINDOW)
        rows: list[list[float]] = []
        deadline = time.perf_counter() + (self.max_seconds or float("inf"))
        try:
            while (frames is None or len(rows) < frames) and time.perf_counter() < deadline:
                with stage(times, "decode"):
                    ok, image = capture.read()
                    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if ok else None
                if grey is None:
                    break
                rows.append([len(rows) + 1, *self._frame(grey, window, times)])
        finally:
            capture.release()
        if not rows:
            raise InputError(video, "OpenCV decoded no frame of this video")
        with stage(times, "writing"):
            columns = ["frame", "valence", "arousal", *self.labels]
            pd.DataFrame(rows, columns=columns).to_csv(out / f"{video.stem}.reference.csv",
                                                       index=False)
        return {"frames": len(rows), "frames_with_face": sum(not np.isnan(r[1]) for r in rows),
                "seconds": sum(times.values()), "stages_s": times}

    def _frame(self, grey: np.ndarray, window: deque[np.ndarray],
               times: dict[str, float]) -> list[float]:
        """Valence, arousal and class probabilities of one frame's largest face (NaN: none)."""
        with stage(times, "detect"):
            boxes = self.cascade.detectMultiScale(grey, **HAAR)
        if len(boxes) == 0:
            return [float("nan")] * (2 + len(self.labels))
        with stage(times, "crop"):
            x, y, w, h = max(boxes, key=lambda box: box[2] * box[3])
            crop = to_face_crop(np.ascontiguousarray(grey[y:y + h, x:x + w]))
        with torch.inference_mode():
            with stage(times, "cnn"):
                features = self.frame.forward_features(faces_to_input(crop[None]))
                probabilities = torch.softmax(self.frame.heads["expression"](features), dim=1)
            window.append(features[0].numpy())
            with stage(times, "sequence"):
                padded = np.zeros((WINDOW, features.shape[1]), np.float32)
                padded[WINDOW - len(window):] = np.stack(window)
                va = self.sequence(torch.from_numpy(padded)[None])[0, -1]
        return [*va.tolist(), *probabilities[0].tolist()]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Load, warm up, time one video; the JSON line's content."""
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    way = Ours(args.bundle) if args.way == "ours" else Reference(load_bundle(args.bundle), args.max_seconds)
    load_s = time.perf_counter() - start
    way.predict(args.video, args.out, args.warmup)
    cpu: dict[str, dict[str, float]] = {}
    with phase_cpu(cpu, "predict", wait_idle_s=args.wait_idle):
        result = way.predict(args.video, args.out, args.frames)
    return {"way": args.way, "video": args.video.name, **result, "load_s": round(load_s, 3),
            "phase_cpu": cpu["predict"], "peak_rss_mb": round(peak_rss_mb(), 1),
            "torch_threads": torch.get_num_threads(), "opencv_threads": cv2.getNumThreads(),
            **way.settings}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = run(args)
    except AffectTrackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
