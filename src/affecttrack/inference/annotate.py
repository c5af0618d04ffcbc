"""The input video with its predictions drawn on: every face's box and a caption per frame.

What a person checks first after `predict`: did the tracker keep the ids, and do the values move
with the face. The video is decoded again (colour, the shared decoder) rather than kept from the
prediction pass, so predicting never has to hold colour frames. OpenCV draws the boxes and text
(C++, no Python loop over pixels) and FFmpeg encodes H.264 through PyAV.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd

from affecttrack.data.video_frames import (
    TruncatedVideo,
    decode_frames,
    open_video_writer,
    probe_video,
)
from affecttrack.errors import AffectTrackError
from affecttrack.inference.results import FramePredictions
from affecttrack.runinfo import atomic_path

log = logging.getLogger(__name__)

# matplotlib's tab10 in BGR: one colour per face id, repeating after ten faces.
FACE_COLOURS: tuple[tuple[int, int, int], ...] = (
    (180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148),
    (75, 86, 140), (194, 119, 227), (127, 127, 127), (34, 189, 188), (207, 190, 23))
CONTAINERS: dict[str, str] = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FALLBACK_FPS = 25.0


@dataclass(frozen=True)
class Overlay:
    """What is drawn for one face in one frame."""

    box: tuple[int, int, int, int]   # x, y, w, h in full-frame pixels
    colour: tuple[int, int, int]     # BGR
    caption: str
    interpolated: bool


def _caption(face_id: int, valence: float, arousal: float, expression: object,
             probability: float, interpolated: bool) -> str:
    """"id 0  V +0.42  A -0.10  Happiness 87%", leaving out what the model did not predict."""
    parts = [f"id {face_id}"]
    if np.isfinite(valence) and np.isfinite(arousal):
        parts.append(f"V {valence:+.2f}  A {arousal:+.2f}")
    if not pd.isna(expression):
        parts.append(f"{expression} {probability:.0%}")
    if interpolated:
        parts.append("(interp.)")
    return "  ".join(parts)


def overlays_by_frame(predictions: FramePredictions) -> dict[int, list[Overlay]]:
    """The overlays of every frame that has a face, keyed by frame number."""
    faces = pd.DataFrame(predictions).dropna(subset=["face_id"]).reset_index(drop=True)
    codes = pd.Categorical(faces["expression"], categories=list(predictions.labels)).codes
    probabilities = faces[predictions.probability_columns].to_numpy(dtype=np.float64)
    chosen = np.full(len(faces), np.nan)
    if probabilities.shape[1]:
        chosen = np.where(codes >= 0, probabilities[np.arange(len(faces)), codes], np.nan)
    overlays: dict[int, list[Overlay]] = {}
    for row, probability in zip(faces.itertuples(index=False), chosen):
        face_id = int(row.face_id)
        caption = _caption(face_id, row.valence, row.arousal, row.expression, probability,
                           bool(row.interpolated))
        overlay = Overlay((int(row.x), int(row.y), int(row.w), int(row.h)),
                          FACE_COLOURS[face_id % len(FACE_COLOURS)], caption,
                          bool(row.interpolated))
        overlays.setdefault(int(row.frame), []).append(overlay)
    return overlays


def draw_overlay(image: np.ndarray, overlay: Overlay, scale: float, thickness: int) -> None:
    """Box (thin for an interpolated face) and caption on a filled strip above it, or inside
    its top edge when the box touches the top of the frame; shifted left to stay in the frame."""
    x, y, w, h = overlay.box
    line = 1 if overlay.interpolated else thickness
    cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), overlay.colour, line, cv2.LINE_AA)
    (text_w, text_h), baseline = cv2.getTextSize(overlay.caption, _FONT, scale, 1)
    strip = text_h + baseline + 4
    top = y - strip if y - strip >= 0 else y
    left = max(0, min(x, image.shape[1] - text_w - 4))  # a face at the right edge keeps its text
    cv2.rectangle(image, (left, top), (left + text_w + 4, top + strip), overlay.colour,
                  cv2.FILLED)
    cv2.putText(image, overlay.caption, (left + 2, top + text_h + 2), _FONT, scale, (0, 0, 0), 1,
                cv2.LINE_AA)


def _even(image: np.ndarray) -> np.ndarray:
    """H.264 in yuv420p needs even sides: an odd-sized frame gets one replicated row/column."""
    height, width = image.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return image
    return cv2.copyMakeBorder(image, 0, height % 2, 0, width % 2, cv2.BORDER_REPLICATE)


def write_annotated_video(video: Path, predictions: FramePredictions, out: Path) -> Path:
    """`video` re-encoded (H.264, the input's frame rate) with each frame's faces drawn on;
    frames without rows are copied as they are. Written under a temporary name, then renamed.

    A video whose decoding fails midway gives the frames before the failure, with a warning.
    """
    video, out = Path(video), Path(out)
    container_format = CONTAINERS.get(out.suffix.lower())
    if container_format is None:
        raise AffectTrackError(f"{out}: annotated videos are written as {sorted(CONTAINERS)}")
    info = probe_video(video)
    rate = Fraction(info.fps or predictions.fps or _FALLBACK_FPS).limit_denominator(1001)
    overlays = overlays_by_frame(predictions)
    scale = max(0.35, min(info.width, info.height) / 900)
    thickness = max(1, round(min(info.width, info.height) / 360))
    with atomic_path(out) as tmp:
        container, stream = open_video_writer(tmp, rate, info.width + info.width % 2,
                                              info.height + info.height % 2, container_format)
        with container:
            try:
                for decoded in decode_frames(video, colour=True):
                    image = np.ascontiguousarray(decoded.image)
                    for overlay in overlays.get(decoded.number, ()):
                        draw_overlay(image, overlay, scale, thickness)
                    frame = av.VideoFrame.from_ndarray(_even(image), format="bgr24")
                    container.mux(stream.encode(frame))
            except TruncatedVideo as error:
                if error.frames == 0:
                    raise
                log.warning("%s; the annotated video stops there", error)
            container.mux(stream.encode(None))
    return out
