"""Decoding a video file into grey frames, numbered from 1, with their times; and encoding one.

One decoder for every stage that reads videos (`prepare videos`, `predict`), so that frame numbers,
times and what counts as a broken video mean the same everywhere; one encoder set-up for every
video the project writes (synthetic data, annotated predictions). PyAV converts to grey in
FFmpeg's scaler (no colour frame is ever built in Python) and decodes with FFmpeg's own threads.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from affecttrack.errors import InputError

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi", ".mov", ".webm", ".mkv", ".m4v")
# A cut-off file often just ends without a decoding error; fewer frames than this share of the
# count its header announces means it was truncated. Not 1.0: edit lists and B-frames make the
# announced count a few frames off on whole files (shared/data's no_face.mp4: 98 announced, 95).
ANNOUNCED_SHARE = 0.9
# What PyAV raises on a damaged or hostile file (ValueError: also bytes of metadata that are no
# text, or frames it cannot convert): each means "this file", never "the run".
DECODE_ERRORS: tuple[type[Exception], ...] = (av.FFmpegError, OSError, ValueError, IndexError,
                                              MemoryError)


class TruncatedVideo(InputError):
    """Decoding stopped before the end of the file; the frames before it were delivered."""

    def __init__(self, path: Path, frames: int, reason: object) -> None:
        super().__init__(path, f"decoding stopped after frame {frames} ({reason}); "
                               "the rest is unreadable")
        self.frames = frames


@dataclass(frozen=True)
class VideoInfo:
    """What the container says before decoding (frame count and rate may be unknown)."""

    width: int
    height: int
    fps: float | None
    frames: int | None


@dataclass(frozen=True)
class DecodedFrame:
    number: int          # 1-based, in decoding order
    time_s: float        # presentation time from the start of the stream
    image: np.ndarray    # (h, w) grey uint8, or (h, w, 3) BGR when decoded in colour


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES and not path.name.startswith(".")


def probe_video(path: Path) -> VideoInfo:
    """The video's size, rate and announced frame count; InputError if it cannot be opened."""
    try:
        with _open(path) as container:
            if not container.streams.video:
                raise InputError(path, "holds no video stream")
            stream = container.streams.video[0]
            if stream.codec_context is None:
                raise InputError(path, "no decoder for its video codec")
            rate = float(stream.average_rate) if stream.average_rate else None
            return VideoInfo(stream.codec_context.width, stream.codec_context.height,
                             rate if rate and math.isfinite(rate) else None, stream.frames or None)
    except DECODE_ERRORS as error:
        raise InputError(path, f"cannot open video ({_one_line(error)})") from None


def decode_frames(path: Path, colour: bool = False) -> Iterator[DecodedFrame]:
    """Every frame of the first video stream, grey (or BGR when `colour`), in order.

    Raises InputError before the first frame when the file cannot be opened, and TruncatedVideo
    after the last good frame when decoding fails midway or ends well short of the frame count
    the file announces.
    """
    info = probe_video(path)
    fmt = "bgr24" if colour else "gray"
    number = 0
    try:
        with _open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                number += 1
                yield DecodedFrame(number, _time_of(frame, number, info.fps),
                                   frame.to_ndarray(format=fmt))
    except DECODE_ERRORS as error:
        raise TruncatedVideo(path, number, _one_line(error)) from None
    if info.frames and number < ANNOUNCED_SHARE * info.frames:
        raise TruncatedVideo(path, number, f"the file announces {info.frames} frames")


def _open(path: Path) -> av.container.InputContainer:
    """The file opened for reading; metadata that is not UTF-8 is read with replacements, not
    refused (it is never used, but PyAV decodes it on opening)."""
    return av.open(str(path), metadata_errors="replace")


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:200] or type(error).__name__


def _time_of(frame: av.VideoFrame, number: int, fps: float | None) -> float:
    """The frame's presentation time; from its number and the rate when the stream has none."""
    if frame.time is not None:
        return float(frame.time)
    return (number - 1) / fps if fps else math.nan


def open_video_writer(path: Path, rate: float | Fraction, width: int, height: int,
                      container_format: str = "mp4"
                      ) -> tuple[av.container.OutputContainer, av.VideoStream]:
    """An H.264 encoder (MPEG-4 Part 2 where this FFmpeg lacks libx264) for yuv420p frames of
    `width` x `height` (even sides) at `rate` frames/s; mux `stream.encode(frame)` into the
    container, then `stream.encode(None)` to flush, inside `with container:`."""
    container = av.open(str(path), mode="w", format=container_format)
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    stream = container.add_stream(codec, rate=rate)
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuv420p"
    stream.options = {"crf": "20", "preset": "veryfast"} if codec == "libx264" else {}
    return container, stream
