"""Faces over time: detect every few frames, follow each face in between, keep its id.

Detection costs 7-8 ms a frame even on a reduced image (benchmarks/detection.py), about as much as
the CNN and the rest of the pipeline together, while a face moves only a few pixels between
frames. So the detector runs on every `detect_every`-th frame, and in between each face is
followed by template matching: its appearance at the last detection, shrunk to `template_side`
pixels, is looked for in a window around where it was (cv2.matchTemplate, well under a millisecond
a face). The template comes from the detection, never from a tracked frame, so tracking cannot
drift away over many frames; each detection re-anchors it.

Ids: at each detection the new boxes are matched to the tracks' current boxes by overlap (IoU),
largest overlap first; a box that overlaps no track starts a new id. A face the detector misses
keeps being followed while its template still matches; a track missed by `max_missed` detections
in a row ends. A frame where a track's template does not match leaves a gap in that track (no
row): short gaps are interpolated later (`inference.gaps`), never invented here.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from affecttrack.data.detect import FaceBox, FaceDetector


@dataclass(frozen=True)
class TrackedFace:
    """One face in one frame: its track id, box, and the detector's score if it was detected
    in this frame (NaN when the box comes from tracking)."""

    face_id: int
    box: FaceBox
    detected: bool

    @property
    def score(self) -> float:
        return self.box.score if self.detected else float("nan")


@dataclass
class _Track:
    face_id: int
    box: FaceBox
    template: np.ndarray
    scale: float              # template pixels per image pixel
    missed: int = 0           # detections in a row that did not find this face


def iou(a: FaceBox, b: FaceBox) -> float:
    """Intersection over union of two boxes (0 when they do not overlap)."""
    width = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    height = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / (a.area + b.area - inter)


class FaceTracker:
    """Feed grey frames in order (`update`); get the faces in each with stable ids."""

    def __init__(self, detector: FaceDetector, *, detect_every: int = 5, max_missed: int = 2,
                 min_iou: float = 0.3, min_match: float = 0.5, template_side: int = 32,
                 search: float = 0.5) -> None:
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        self.detector = detector
        self.detect_every = detect_every
        self.max_missed = max_missed
        self.min_iou = min_iou
        self.min_match = min_match
        self.template_side = template_side
        self.search = search
        self.reset()

    def reset(self) -> None:
        """Forget every face: the next frame is detected and its faces get new ids."""
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._since_detection: int | None = None

    def update(self, grey: np.ndarray) -> list[TrackedFace]:
        """The faces in this frame (the next one of the video), largest first."""
        detect = self._since_detection is None or self._since_detection + 1 >= self.detect_every
        if detect:
            faces = self._detect(grey)
            self._since_detection = 0
        else:
            faces = self._follow(grey)
            self._since_detection += 1
        return sorted(faces, key=lambda face: face.box.area, reverse=True)

    def _detect(self, grey: np.ndarray) -> list[TrackedFace]:
        boxes = self.detector.detect(grey)
        unmatched_tracks = set(range(len(self._tracks)))
        matched: dict[int, FaceBox] = {}
        pairs = sorted(((iou(self._tracks[t].box, box), t, b)
                        for t in unmatched_tracks for b, box in enumerate(boxes)), reverse=True)
        used_boxes: set[int] = set()
        for overlap, t, b in pairs:
            if overlap < self.min_iou:
                break
            if t in unmatched_tracks and b not in used_boxes:
                unmatched_tracks.discard(t)
                used_boxes.add(b)
                matched[t] = boxes[b]
        faces = []
        for t, box in matched.items():
            self._anchor(self._tracks[t], grey, box)
            faces.append(TrackedFace(self._tracks[t].face_id, box, detected=True))
        for t in unmatched_tracks:   # missed by the detector: follow it while it still matches
            track = self._tracks[t]
            track.missed += 1
            followed = self._match(track, grey) if track.missed <= self.max_missed else None
            if followed is not None:
                faces.append(followed)
        self._tracks = [track for track in self._tracks if track.missed <= self.max_missed]
        for b, box in enumerate(boxes):
            if b not in used_boxes:
                track = _Track(self._next_id, box, np.empty(0), 1.0)
                self._anchor(track, grey, box)
                self._tracks.append(track)
                self._next_id += 1
                faces.append(TrackedFace(track.face_id, box, detected=True))
        return faces

    def _follow(self, grey: np.ndarray) -> list[TrackedFace]:
        followed = (self._match(track, grey) for track in self._tracks)
        return [face for face in followed if face is not None]

    def _anchor(self, track: _Track, grey: np.ndarray, box: FaceBox) -> None:
        """Take the face's appearance at this detection as the track's template."""
        track.box, track.missed = box, 0
        track.scale = self.template_side / max(box.w, box.h)
        patch = grey[box.y:box.y + box.h, box.x:box.x + box.w]
        size = (max(1, round(box.w * track.scale)), max(1, round(box.h * track.scale)))
        track.template = cv2.resize(patch, size, interpolation=cv2.INTER_AREA)

    def _match(self, track: _Track, grey: np.ndarray) -> TrackedFace | None:
        """The track's face found near its last box, or None where its template no longer fits."""
        box = track.box
        pad_x, pad_y = round(box.w * self.search), round(box.h * self.search)
        left, top = max(0, box.x - pad_x), max(0, box.y - pad_y)
        right = min(grey.shape[1], box.x + box.w + pad_x)
        bottom = min(grey.shape[0], box.y + box.h + pad_y)
        size = (round((right - left) * track.scale), round((bottom - top) * track.scale))
        th, tw = track.template.shape
        if size[0] < tw or size[1] < th:
            return None
        window = cv2.resize(grey[top:bottom, left:right], size, interpolation=cv2.INTER_AREA)
        scores = cv2.matchTemplate(window, track.template, cv2.TM_CCOEFF_NORMED)
        _, best, _, (mx, my) = cv2.minMaxLoc(scores)
        if best < self.min_match:
            return None
        x = min(max(0, left + round(mx / track.scale)), grey.shape[1] - box.w)
        y = min(max(0, top + round(my / track.scale)), grey.shape[0] - box.h)
        track.box = FaceBox(x, y, box.w, box.h, box.score)
        return TrackedFace(track.face_id, track.box, detected=False)
