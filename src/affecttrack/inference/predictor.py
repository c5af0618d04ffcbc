"""The prediction engine: frames in, one row per frame and face out.

    frames -> faces (detect every few frames, track between: `tracking.py`) -> 96x96 grey crops
           -> frame CNN in batches (bf16 where the CPU runs it fast) -> expression probabilities,
              300-d features -> the sequence network, one hidden state per face carried across
              frames (`streaming.SequenceStream`) -> valence/arousal -> table

Cost per frame is O(1) however long the video: the recurrent state replaces the reference's
100-frame window per frame, and nothing but the result rows is kept. Valence/arousal comes from
the best source the bundle has: its sequence network, else the frame network's valence/arousal
head, else the expression probabilities mapped through the classes' places in valence/arousal
space (`labels.va_from_probabilities`; the shipped default model is expression-only, trained on
photos that carry no valence/arousal labels). `va_source` says which.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from affecttrack.config import check_settings, setting
from affecttrack.data.detect import DETECTORS, FaceDetector
from affecttrack.data.video_frames import DecodedFrame, decode_frames, probe_video
from affecttrack.errors import AffectTrackError
from affecttrack.inference.bundle import Bundle, load_bundle
from affecttrack.inference.frame_sources import Prefetch, array_frames
from affecttrack.inference.gaps import interpolate_gaps
from affecttrack.inference.results import FramePredictions, most_probable
from affecttrack.inference.streaming import SequenceStream
from affecttrack.inference.tracking import FaceTracker, TrackedFace
from affecttrack.labels import expression_va, probabilities_to_va
from affecttrack.models.cnn import head_probabilities
from affecttrack.models.precision import (
    PRECISIONS,
    autocast_for,
    channels_last_for,
    choose_precision,
)

BOX_COLUMNS = ["x", "y", "w", "h"]


@dataclass(frozen=True)
class PredictConfig:
    """How videos are read. `detect_every`: run the detector on every n-th frame and track faces
    in between (1: detect on every frame). `max_gap`: a face's track missing for at most this
    many frames is interpolated over (rows flagged `interpolated`) and its sequence state carried
    across; longer gaps start the face afresh. `batch_frames`: frames per CNN batch. `detector`:
    None uses the bundle's."""

    detect_every: int = setting(5, minimum=1)
    max_gap: int = setting(15, minimum=0)
    batch_frames: int = setting(32, minimum=1)
    precision: str = setting("auto", choices=("auto", *PRECISIONS))
    detector: str | None = setting(None, choices=DETECTORS)

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass
class StageTimes:
    """Seconds spent per stage (the decoder runs in its own thread and is timed apart)."""

    faces: float = 0.0
    cnn: float = 0.0
    sequence: float = 0.0
    table: float = 0.0
    frames: int = 0


class AffectModel:
    """A bundle ready to predict: `predict_video`, `predict_frames`, `predict_faces`."""

    def __init__(self, bundle: Bundle, config: PredictConfig | None = None) -> None:
        self.bundle = bundle
        self.config = config or PredictConfig()
        self.precision = choose_precision(self.config.precision)
        self._memory_format = (torch.channels_last if channels_last_for(self.precision)
                               else torch.contiguous_format)
        self.frame = bundle.frame.eval().to(memory_format=self._memory_format)
        self.labels: tuple[str, ...] = bundle.labels or ()
        self.action_units: tuple[str, ...] = bundle.action_units
        # Each class's place in valence/arousal space, looked up once rather than per batch.
        self._centroids = expression_va(self.labels) if self.labels else None
        self.va_source = self._va_source()

    def _va_source(self) -> str:
        sequence = self.bundle.sequence
        if sequence is not None and "va" in sequence.head_sizes:
            return "sequence model"
        if "va" in self.frame.heads:
            return "frame model"
        if self._centroids is not None:
            return "expression mapping"
        return "none"

    def detector(self) -> FaceDetector:
        """A new detector as the bundle's preprocessing (or the config) name it."""
        detector = self.bundle.preprocessing.make_detector(self.config.detector)
        if detector is None:
            raise AffectTrackError("this model was trained on ready-cropped faces and names no "
                                   "face detector; pass one (e.g. --detector hog_haar) to run "
                                   "it on whole frames, or use predict_faces on crops")
        return detector

    def start(self) -> VideoRun:
        """A fresh run over one video's frames (its own tracker and sequence states)."""
        return VideoRun(self)

    def predict_video(self, path: str | Path) -> FramePredictions:
        """Every frame of the video file: one row per frame and face (see `FramePredictions`).

        Raises InputError when it cannot be opened and TruncatedVideo when decoding stops early
        (`affecttrack predict` keeps the frames before that; here use `start().run(...)`).
        """
        path = Path(path)
        info = probe_video(path)
        run = self.start()
        run.run(Prefetch(decode_frames(path)))
        return run.result(info.fps, str(path))

    def predict_frames(self, frames: np.ndarray | Iterable[np.ndarray],
                       fps: float | None = None) -> FramePredictions:
        """Frames already in memory, in order: (n, h, w) or (n, h, w, 3) uint8 (BGR) or a list."""
        run = self.start()
        run.run(Prefetch(array_frames(frames, fps)))
        return run.result(fps, "frames in memory")

    def predict_faces(self, faces: np.ndarray) -> pd.DataFrame:
        """Expression probabilities, valence/arousal and action-unit probabilities (a model with
        such a head) of ready-cropped faces ((n, 96, 96) grey uint8), each on its own: no
        detection, tracking or sequence model."""
        outputs = self.run_network(faces)
        probabilities, va = outputs["probabilities"], outputs["va"]
        table = pd.DataFrame({"valence": va[:, 0], "arousal": va[:, 1]})
        for i, label in enumerate(self.labels):
            table[label.lower()] = probabilities[:, i]
        if self.labels:
            table["expression"] = most_probable(probabilities, self.labels)
        for i, unit in enumerate(self.action_units):
            table[unit] = outputs["au"][:, i]
        return table

    def run_network(self, faces: np.ndarray) -> dict[str, np.ndarray]:
        """The frame CNN on (n, 96, 96) crops: features, expression probabilities,
        valence/arousal from the frame head or the expression mapping (NaN without either), and
        action-unit probabilities ((n, 0) without that head)."""
        x = self.bundle.preprocessing.to_input(faces).contiguous(memory_format=self._memory_format)
        with torch.inference_mode(), autocast_for(self.precision, x.device):
            z = self.frame.forward_features(x)
            logits = self.frame.forward_heads(z)
        heads = head_probabilities(logits)    # in float32, outside autocast
        n = len(faces)
        probabilities = (heads["expression"].numpy() if "expression" in heads
                         else np.zeros((n, 0), np.float32))
        if "va" in heads:
            va = heads["va"].numpy()
        else:
            va = (probabilities_to_va(probabilities, self._centroids)
                  if self._centroids is not None else np.full((n, 2), np.nan))
        au = heads["au"].numpy() if "au" in heads else np.zeros((n, 0), np.float32)
        return {"features": z.float().numpy(), "probabilities": probabilities,
                "va": np.clip(va, -1.0, 1.0), "au": au}


class VideoRun:
    """One video's prediction state: the tracker, one sequence stream per face, the rows."""

    def __init__(self, model: AffectModel) -> None:
        self.model = model
        self.tracker = FaceTracker(model.detector(), detect_every=model.config.detect_every)
        self.streams: dict[int, SequenceStream] = {}
        self.parts: list[pd.DataFrame] = []
        self.times = StageTimes()

    def run(self, frames: Prefetch[DecodedFrame]) -> None:
        """Consume every frame; rows so far stay in `parts` if the source fails midway."""
        for batch in frames.batches(self.model.config.batch_frames):
            self.parts.append(self.process(batch))

    def process(self, frames: list[DecodedFrame]) -> pd.DataFrame:
        """Rows for consecutive frames: one per face, one empty row for a frame without."""
        clock = time.perf_counter()
        found: list[tuple[DecodedFrame, TrackedFace | None]] = []
        crops = []
        for frame in frames:
            faces = self.tracker.update(frame.image)
            found += [(frame, face) for face in faces] or [(frame, None)]
            crops += [self.model.bundle.preprocessing.crop(frame.image, face.box)
                      for face in faces]
        self.times.faces += time.perf_counter() - clock
        with_face = [i for i, (_, face) in enumerate(found) if face is not None]
        outputs = self._network(crops)
        va = outputs["va"]
        if self.model.va_source == "sequence model" and with_face:
            va = self._sequence(found, with_face, outputs["features"])
        clock = time.perf_counter()
        table = self._table(found, with_face, outputs["probabilities"], va, outputs["au"])
        self.times.table += time.perf_counter() - clock
        self.times.frames += len(frames)
        return table

    def _network(self, crops: list[np.ndarray]) -> dict[str, np.ndarray]:
        clock = time.perf_counter()
        if not crops:
            k, m = len(self.model.labels), len(self.model.action_units)
            outputs = {"features": np.zeros((0, 0), np.float32),
                       "probabilities": np.zeros((0, k), np.float32), "va": np.zeros((0, 2)),
                       "au": np.zeros((0, m), np.float32)}
        else:
            outputs = self.model.run_network(np.stack(crops))
        self.times.cnn += time.perf_counter() - clock
        return outputs

    def _sequence(self, found: list[tuple[DecodedFrame, TrackedFace | None]],
                  with_face: list[int], features: np.ndarray) -> np.ndarray:
        """Valence/arousal from each face's own sequence stream, fed in frame order."""
        clock = time.perf_counter()
        rows_of: dict[int, list[int]] = defaultdict(list)
        for row, index in enumerate(with_face):
            rows_of[found[index][1].face_id].append(row)   # type: ignore[union-attr]
        va = np.empty((len(with_face), 2), np.float32)
        with one_thread():
            for face_id, rows in rows_of.items():
                stream = self.streams.get(face_id)
                if stream is None:
                    stream = SequenceStream.from_bundle(self.model.bundle,
                                                        max_gap=self.model.config.max_gap)
                    self.streams[face_id] = stream
                numbers = [found[with_face[row]][0].number for row in rows]
                va[rows] = stream.push(features[rows], numbers)[:, stream.model.head_slice("va")]
        self.times.sequence += time.perf_counter() - clock
        return np.clip(va, -1.0, 1.0)

    def _table(self, found: list[tuple[DecodedFrame, TrackedFace | None]], with_face: list[int],
               probabilities: np.ndarray, va: np.ndarray, au: np.ndarray) -> pd.DataFrame:
        n = len(found)
        faceless = np.ones(n, bool)
        faceless[with_face] = False
        ids_boxes = np.zeros((n, 5), np.int64)
        score = np.full(n, np.nan)
        for index in with_face:
            face: TrackedFace = found[index][1]  # type: ignore[assignment]
            ids_boxes[index] = (face.face_id, face.box.x, face.box.y, face.box.w, face.box.h)
            score[index] = face.score
        k = len(self.model.labels)
        values = np.full((n, 2 + k + len(self.model.action_units)), np.nan)
        if with_face:
            values[with_face, :2] = va
            values[with_face, 2:2 + k] = probabilities
            values[with_face, 2 + k:] = au
        table = pd.DataFrame({"frame": [frame.number for frame, _ in found],
                              "time_s": [frame.time_s for frame, _ in found]})
        for j, column in enumerate(["face_id", *BOX_COLUMNS]):
            table[column] = pd.arrays.IntegerArray(ids_boxes[:, j], faceless.copy())
        table["score"] = score
        table["valence"], table["arousal"] = values[:, 0], values[:, 1]
        for j, label in enumerate(self.model.labels):
            table[label.lower()] = values[:, 2 + j]
        table["expression"] = most_probable(values[:, 2:2 + k], self.model.labels)
        table["interpolated"] = False
        for j, unit in enumerate(self.model.action_units):
            table[unit] = values[:, 2 + k + j]
        return table

    def table(self) -> pd.DataFrame:
        """The rows so far, short gaps inside tracks interpolated."""
        if not self.parts:
            return pd.DataFrame()
        rows = pd.concat(self.parts, ignore_index=True)
        return interpolate_gaps(rows, self.model.config.max_gap, self.model.labels,
                                self.model.action_units)

    def result(self, fps: float | None, source: str) -> FramePredictions:
        return FramePredictions.build(self.table(), self.model.labels, fps, source,
                                      self.model.action_units)


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block on one intra-op thread. The sequence network's steps are tiny matrix
    products: a second thread only adds synchronisation, which costs 10-15 ms a frame when
    another process holds a core (benchmarks/predict.py), against 0.1 ms on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def load_model(model: str | Path | None = None, **config: object) -> AffectModel:
    """The model in bundle file `model` (the shipped default expression model when None), ready
    to predict; `config` are `PredictConfig` fields (detect_every, max_gap, detector, ...)."""
    return AffectModel(load_bundle(None if model is None else Path(model)),
                       PredictConfig(**config))  # type: ignore[arg-type]
