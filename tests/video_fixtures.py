"""Small real-looking videos for tests: a real face (skimage's astronaut) moving over a grey
background, written with PyAV, plus broken files of the kinds users meet."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import av
import cv2
import numpy as np

from affecttrack.data.video_frames import open_video_writer

HEAD = (slice(20, 240), slice(130, 320))  # rows, cols of the astronaut's head and shoulders


def astronaut_head() -> np.ndarray:
    from skimage import data
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[HEAD]


def moving_face_frames(count: int, size: tuple[int, int] = (360, 640), step: int = 3,
                       start: tuple[int, int] = (60, 40)) -> list[np.ndarray]:
    """`count` BGR frames (height, width = `size`) with the head moving `step` px a frame."""
    head = astronaut_head()
    frames = []
    for i in range(count):
        frame = np.full((*size, 3), 90, np.uint8)
        y, x = start[0], start[1] + i * step
        frame[y:y + head.shape[0], x:x + head.shape[1]] = head
        frames.append(frame)
    return frames


def blank_frames(count: int, size: tuple[int, int] = (360, 640)) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(60, 120, (*size, 3), dtype=np.uint8) for _ in range(count)]


def write_video(path: Path, frames: Sequence[np.ndarray], fps: int = 25) -> Path:
    """A video file of BGR `frames` (the container from the suffix: mp4, avi, mkv, ...)."""
    height, width = frames[0].shape[:2]
    container_format = {".mkv": "matroska", ".m4v": "mp4"}.get(path.suffix, path.suffix[1:])
    container, stream = open_video_writer(path, fps, width, height, container_format)
    with container:
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode())
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a video file to `keep` of its bytes, as an interrupted download leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    return path
