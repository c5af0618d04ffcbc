"""Where prediction's frames come from: video files, folders of frames, images, live sources.

Every source yields `DecodedFrame`s (number from 1, time, grey image) so the engine is the same for
all of them. Decoding runs in a background thread (`Prefetch`): PyAV and OpenCV release the GIL
while they decode, so the next frames are ready while the CNN runs on the current ones.
"""

from __future__ import annotations

import glob
import queue
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Generic, TypeVar

import cv2
import numpy as np

from affecttrack.data.detect import to_grey
from affecttrack.data.groups import Problem
from affecttrack.data.images import is_image, read_grey
from affecttrack.data.video_frames import DecodedFrame, decode_frames, is_video
from affecttrack.errors import AffectTrackError, InputError
from affecttrack.natural_order import natural_key

T = TypeVar("T")
_DONE = object()


@dataclass(frozen=True)
class PredictInput:
    """One thing to predict on, and the name its output files get.

    kind: "video" (a file), "frames" (a folder of images, one frame each, in natural order) or
    "image" (one photo: one frame). `files` are the frames' images for the last two.
    """

    kind: str
    path: Path
    name: str
    files: tuple[Path, ...] = field(default=())

    def frames(self, problems: list[Problem], fps: float | None = None
               ) -> Iterator[DecodedFrame]:
        """Its frames; unreadable images are appended to `problems` and skipped. `fps` times
        images (a video's own times are used)."""
        if self.kind == "video":
            return decode_frames(self.path)
        return image_frames(self.files, problems, fps)


def collect_inputs(paths: Iterable[str | Path]) -> tuple[list[PredictInput], list[Problem]]:
    """The inputs named by files, folders and glob patterns, and the ones that do not exist.

    A folder holding videos stands for those videos; a folder holding images is one video whose
    frames they are. Output names are the file (or folder) names without suffix, made unique
    where two inputs share one (`_unique_names`).
    """
    inputs: list[PredictInput] = []
    problems: list[Problem] = []
    for given in paths:
        matches = _expand(str(given))
        if not matches:
            problems.append(Problem("missing_input", Path(given), "no such file or folder"))
        for path in matches:
            found = _inputs_at(path)
            if found:
                inputs.extend(found)
            else:
                problems.append(Problem("unsupported_input", path, "not a video, an image or a "
                                        "folder of videos or images"))
    return _unique_names(inputs), problems


def _expand(given: str) -> list[Path]:
    if Path(given).exists():
        return [Path(given)]
    return [Path(match) for match in sorted(glob.glob(given, recursive=True))]


def _inputs_at(path: Path) -> list[PredictInput]:
    if path.is_file():
        if is_video(path):
            return [PredictInput("video", path, path.stem)]
        if is_image(path):
            return [PredictInput("image", path, path.stem, (path,))]
        return []
    if not path.is_dir():
        return []
    children = sorted(path.iterdir(), key=lambda child: natural_key(child.name))
    videos = [child for child in children if child.is_file() and is_video(child)]
    if videos:
        return [PredictInput("video", video, video.stem) for video in videos]
    images = tuple(child for child in children if child.is_file() and is_image(child))
    return [PredictInput("frames", path, path.name, images)] if images else []


def _unique_names(inputs: list[PredictInput]) -> list[PredictInput]:
    """Names that collide get the file's suffix (clip_mp4, clip_jpg), then the parent folder's
    name in front, until they are unique."""
    for rename in (_with_suffix, _with_parent):
        counts = Counter(item.name for item in inputs)
        inputs = [rename(item) if counts[item.name] > 1 else item for item in inputs]
    return inputs


def _with_suffix(item: PredictInput) -> PredictInput:
    suffix = item.path.suffix.lstrip(".").lower() if item.path.is_file() else "frames"
    return replace(item, name=f"{item.name}_{suffix}")


def _with_parent(item: PredictInput) -> PredictInput:
    return replace(item, name=f"{item.path.parent.name}_{item.name}")


def image_frames(files: Iterable[Path], problems: list[Problem],
                 fps: float | None = None) -> Iterator[DecodedFrame]:
    """Image files as frames 1, 2, ... (times from `fps`, NaN without); unreadable ones are
    reported in `problems` and keep their number, so later frames keep theirs."""
    for number, path in enumerate(files, start=1):
        image = read_grey(path)
        if isinstance(image, Problem):
            problems.append(image)
            continue
        yield DecodedFrame(number, (number - 1) / fps if fps else float("nan"), image)


def array_frames(frames: np.ndarray | Iterable[np.ndarray],
                 fps: float | None = None) -> Iterator[DecodedFrame]:
    """Frames already in memory (grey, BGR or BGRA uint8) as decoded frames."""
    for number, image in enumerate(frames, start=1):
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise AffectTrackError(f"frame {number}: expected a uint8 (h, w) or (h, w, 3|4) "
                                   f"image, got {image.dtype} {image.shape}")
        yield DecodedFrame(number, (number - 1) / fps if fps else float("nan"), to_grey(image))


def camera_frames(source: str, stop: threading.Event) -> Iterator[DecodedFrame]:
    """A camera (its index, e.g. "0") or a stream URL, read with OpenCV until it ends or `stop`
    is set; InputError when it cannot be opened."""
    capture = cv2.VideoCapture(int(source) if source.isdigit() else source)
    if not capture.isOpened():
        raise InputError(source, "cannot open this camera or stream")
    fps = capture.get(cv2.CAP_PROP_FPS) or None
    number = 0
    try:
        while not stop.is_set():
            ok, image = capture.read()
            if not ok:
                return
            number += 1
            millis = capture.get(cv2.CAP_PROP_POS_MSEC)
            time_s = millis / 1000 if millis > 0 else ((number - 1) / fps if fps else 0.0)
            yield DecodedFrame(number, time_s, to_grey(image))
    finally:
        capture.release()


class Prefetch(Generic[T]):
    """`items` produced in a background thread, up to `depth` ahead, taken in batches.

    `batches(n)` waits for one item, then takes whatever else is ready, up to n: a file (whose
    decoder runs ahead) gives full batches, which the CNN runs fastest; a live source gives what
    has arrived, so a frame waits for at most one batch's processing. `drop_oldest`: a live
    source must not wait for a slow consumer (its latency would grow without bound), so a full
    queue drops its oldest frame instead; `dropped` counts them. The producer's exception is
    raised in the consumer, after the items produced before it.
    """

    def __init__(self, items: Iterator[T], depth: int = 64, drop_oldest: bool = False) -> None:
        self.dropped = 0
        self._items = items
        self._buffer: queue.Queue = queue.Queue(maxsize=depth)
        self._drop_oldest = drop_oldest
        self._failure: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, daemon=True)

    def batches(self, size: int) -> Iterator[list[T]]:
        self._thread.start()
        try:
            done = False
            while not done:
                batch: list[T] = []
                item = self._buffer.get()
                while item is not _DONE:
                    batch.append(item)
                    if len(batch) == size:
                        break
                    try:
                        item = self._buffer.get_nowait()
                    except queue.Empty:
                        break
                done = item is _DONE
                if batch:
                    yield batch
        finally:
            self._stop.set()
            self._thread.join(timeout=5)
        if self._failure:
            raise self._failure[0]

    def _produce(self) -> None:
        try:
            for item in self._items:
                if self._stop.is_set():
                    return
                self._put(item)
        except Exception as error:  # noqa: BLE001 - re-raised in the consumer thread
            self._failure.append(error)
        finally:
            self._put(_DONE)

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            if self._drop_oldest and self._buffer.full():
                self._drop_one()
            try:
                self._buffer.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _drop_one(self) -> None:
        try:
            self._buffer.get_nowait()
            self.dropped += 1
        except queue.Empty:
            pass
