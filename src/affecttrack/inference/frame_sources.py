"""Where prediction's frames come from: video files, folders of frames, images, live sources.

Every source yields `DecodedFrame`s (number from 1, time, grey image) so the engine is the same for
all of them. Decoding runs in a background thread (`Prefetch`): PyAV and OpenCV release the GIL
while they decode, so the next frames are ready while the CNN runs on the current ones.
"""

from __future__ import annotations

import glob
import queue
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
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
_NUMBERED = re.compile(r"^(.*?)([0-9]+)([^0-9]*)$")


@dataclass(frozen=True)
class PredictInput:
    """One thing to predict on, and the name its output files get.

    kind: "video" (a file), "frames" (images that are one video's frames, in natural order) or
    "photos" (independent images: one photo given by name, or a folder of them). `files` are the
    images of the last two. `why` says how a folder of images was read, for its report line.
    """

    kind: str
    path: Path
    name: str
    files: tuple[Path, ...] = field(default=())
    why: str = ""

    def source_files(self) -> tuple[Path, ...]:
        """The files it reads (what its outputs must never overwrite)."""
        return (self.path,) if self.kind == "video" else self.files

    def frames(self, problems: list[Problem], fps: float | None = None
               ) -> Iterator[DecodedFrame]:
        """Its frames; unreadable images are appended to `problems` and skipped. `fps` times
        images (a video's own times are used)."""
        if self.kind == "video":
            return decode_frames(self.path)
        return image_frames(self.files, problems, fps)


@dataclass(frozen=True)
class CollectedInputs:
    """What the named paths hold. `missing`: paths that name no input (each a failed entry);
    `skipped`: files inside named folders that are not read, each with the reason."""

    inputs: list[PredictInput]
    missing: list[Problem]
    skipped: list[Problem]


def collect_inputs(paths: Iterable[str | Path], frames: bool | None = None) -> CollectedInputs:
    """The inputs named by files, folders and glob patterns.

    A video file is a video and an image file a photo. A folder holding videos stands for those
    videos (its other files are skipped and listed); a folder holding only images is one video's
    frames when their names are numbered (`numbered_frames`) and a set of independent photos
    otherwise; `frames` True or False reads every folder of images (and every image) as frames
    or as photos whatever their names. Output names are the file (or folder) names without
    suffix, made unique where two inputs share one (`_unique_names`).
    """
    inputs: list[PredictInput] = []
    missing: list[Problem] = []
    skipped: list[Problem] = []
    for given in paths:
        matches = _expand(str(given))
        if not matches:
            missing.append(Problem("missing_input", Path(given), "no such file or folder"))
        for path in matches:
            found, passed_over = _inputs_at(path, frames)
            if found:
                inputs.extend(found)
                skipped.extend(passed_over)
            else:
                missing.append(Problem("unsupported_input", path, "not a video, an image or a "
                                       "folder of videos or images"))
    return CollectedInputs(_unique_names(inputs), missing, skipped)


def _expand(given: str) -> list[Path]:
    if Path(given).exists():
        return [Path(given)]
    return [Path(match) for match in sorted(glob.glob(given, recursive=True))]


def _inputs_at(path: Path, frames: bool | None) -> tuple[list[PredictInput], list[Problem]]:
    """The inputs at `path` and the files of a folder that are not read."""
    if path.is_file():
        if is_video(path):
            return [PredictInput("video", path, path.stem)], []
        if is_image(path):
            kind = "frames" if frames else "photos"
            return [PredictInput(kind, path, path.stem, (path,))], []
        return [], []
    if not path.is_dir():
        return [], []
    children = [child for child in sorted(path.iterdir(), key=lambda child: natural_key(child.name))
                if not child.name.startswith(".")]
    videos = [child for child in children if child.is_file() and is_video(child)]
    images = tuple(child for child in children if child.is_file() and is_image(child))
    skipped = [_skipped(child) for child in children
               if not (child.is_file() and (is_video(child) or is_image(child)))]
    if videos:
        skipped += [Problem("image_beside_videos", image, "skipped: an image in a folder of "
                            "videos (give the image itself to predict it as a photo)")
                    for image in images]
        return [PredictInput("video", video, video.stem) for video in videos], skipped
    if images:
        return [_image_folder(path, images, frames)], skipped
    return [], skipped


def _skipped(child: Path) -> Problem:
    if child.is_dir():
        return Problem("subfolder", child, "skipped: folders inside a named folder are not read")
    return Problem("not_media", child, "skipped: not a video or an image")


def _image_folder(path: Path, images: tuple[Path, ...], frames: bool | None) -> PredictInput:
    """A folder of images as one video's frames or as photos, and why."""
    if frames is None:
        frames = numbered_frames([image.name for image in images])
        why = (f"numbered {images[0].name} ... {images[-1].name}; --photos reads them as photos"
               if frames else "names not numbered; --frames reads them as one video's frames")
    else:
        why = "--frames" if frames else "--photos"
    return PredictInput("frames" if frames else "photos", path, path.name, images, why)


def numbered_frames(names: Sequence[str]) -> bool:
    """Whether image file names are the numbered frames of one video.

    Each name is split at its last run of digits into prefix, number and rest (the rest holds the
    extension and no digit): `frame_0001.png` is ("frame_", 1, ".png"), `0001.jpg` ("", 1,
    ".jpg"), `img12.png` ("img", 12, ".png"). The names are frames when there are at least two,
    every one has a number, all share the prefix and the rest (ignoring case) and no two have the
    same number. `alice.jpg, bob.jpg` or `KA.AN1.39.tiff, KM.HA2.5.tiff` are photos.
    """
    parts = [_NUMBERED.match(name) for name in names]
    if len(parts) < 2 or not all(parts):
        return False
    shapes = {(part[1].casefold(), part[3].casefold()) for part in parts}   # type: ignore[index]
    numbers = {int(part[2]) for part in parts}                              # type: ignore[index]
    return len(shapes) == 1 and len(numbers) == len(parts)


def _unique_names(inputs: list[PredictInput]) -> list[PredictInput]:
    """Names that collide get the file's suffix (clip_mp4, clip_jpg) or, for a folder, its kind
    (clip_frames, clip_photos), then the parent folder's name in front, until they are unique."""
    for rename in (_with_suffix, _with_parent):
        counts = Counter(item.name for item in inputs)
        inputs = [rename(item) if counts[item.name] > 1 else item for item in inputs]
    return inputs


def _with_suffix(item: PredictInput) -> PredictInput:
    suffix = item.path.suffix.lstrip(".").lower() if item.path.is_file() else item.kind
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
