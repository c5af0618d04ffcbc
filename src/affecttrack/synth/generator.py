"""Synthetic face videos with known valence/arousal, written in the real datasets' layouts.

Real emotion datasets cannot ship with the project, so the demo and the tests run on generated
people whose drawn faces follow valence and arousal (see `synth.face`). The output exercises
the real readers: an Aff-Wild2 tree (`affwild2/cropped_aligned`, `annotations/VA_Set`,
`annotations/EXPR_Set`, `annotations/AU_Set` with the 2020 release's 8 action units, and
Aff-Wild2's quirks: frames without a face, `-5` / `-1` rows, an annotation file one line longer
than the video, `_left` / `_right` videos of two people) and
full-frame videos with a per-frame CSV (`videos/<name>.mp4` + `<name>.csv`). On request
(`SynthConfig.layouts`) it also writes lab photo datasets in the CK+, CK+48 and JAFFE layouts
(see `synth.photos`).

The data is built so that the paper's claims can be tested honestly:
- labels are skewed like Aff-Wild2's (mostly mild, positive valence, low arousal, stretches of
  exact neutral), so balancing matters;
- every frame is ambiguous on its own (jittered expression, speech that opens the mouth, blinks,
  occluding hands and objects, motion blur, lighting, noise, per-person resting biases), while
  the labels change slowly, so a model that sees many frames can recover what one frame hides;
- arousal also sets the pace of head motion and blinking, a cue only a temporal model can read.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from tqdm import tqdm

from affecttrack.config import SEED_MAX, check_settings, setting
from affecttrack.data.video_frames import open_video_writer
from affecttrack.errors import InputError
from affecttrack.labels import (
    ACTION_UNITS_2020,
    AFFWILD2_EXPRESSIONS,
    AU_UNANNOTATED,
    EXPRESSION_UNANNOTATED,
    VA_UNANNOTATED,
    expression_from_va,
)
from affecttrack.runinfo import (
    to_jsonable,
    write_json_atomic,
    write_run_info,
    write_text_atomic,
)
from affecttrack.synth.face import (
    Expression,
    Identity,
    Pose,
    action_units,
    draw_face,
    draw_occluder,
    expression_controls,
    sample_identity,
)
from affecttrack.synth.photos import (
    LAYOUTS,
    PhotoCounts,
    write_photo_layouts,
)

VA_HEADER = "valence,arousal"
EXPR_HEADER = ",".join(AFFWILD2_EXPRESSIONS)
AU_HEADER = ",".join(ACTION_UNITS_2020)
SPLIT_FOLDERS = {"train": "Train_Set", "val": "Validation_Set"}
_FEATURE_GROUPS = ("mouth", "eyes", "brows")
_BLINK_PROFILE = np.array([0.5, 0.08, 0.05, 0.35, 0.75])
_RESOLUTIONS = ("640x360", "1280x720", "1920x1080")  # only names: Aff-Wild2 names carry them
_CROP_FACE_UNITS = 2.45  # face units across an aligned crop: the face fills it, as in Aff-Wild2


@dataclass
class SynthConfig:
    """What to generate. The nuisance strengths set how ambiguous a single frame is."""

    seed: int = setting(0, minimum=0, maximum=SEED_MAX)
    train_videos: int = setting(40, minimum=1)
    val_videos: int = setting(10, minimum=1)
    frames_per_video: int = setting(300, minimum=2)
    full_frame_videos: int = setting(2, minimum=0)
    full_frame_size: tuple[int, int] = setting(
        (640, 360), minimum=64, test=lambda size: all(side % 2 == 0 for side in size),
        expected="two even integers >= 64 (width, height)")
    fps: int = setting(30, minimum=1)
    crop_size: int = setting(112, minimum=32)
    jpeg_quality: int = setting(90, minimum=1, maximum=100)
    # sd, in valence/arousal units, of each frame's expression
    expression_jitter: float = setting(0.3, minimum=0)
    occlusion_rate: float = setting(0.25, minimum=0, below=1)  # frames with a hand or object
    blur_rate: float = setting(0.35, minimum=0, below=1)  # fraction of frames with motion blur
    layouts: tuple[str, ...] = setting((), choices=LAYOUTS)  # photo datasets to add
    ckplus_subjects: int = setting(4, minimum=1)
    ckplus_sequences: int = setting(3, minimum=1)  # per subject
    jaffe_subjects: int = setting(3, minimum=1, maximum=10)
    jaffe_per_expression: int = setting(2, minimum=1)  # per subject

    def __post_init__(self) -> None:
        if isinstance(self.full_frame_size, list):  # YAML and JSON give lists
            self.full_frame_size = tuple(self.full_frame_size)
        if isinstance(self.layouts, list):
            self.layouts = tuple(self.layouts)
        check_settings(self)


@dataclass(frozen=True)
class _Job:
    """One video to make: an aligned-crop video of the Aff-Wild2 tree or a full-frame video."""

    index: int
    name: str
    split: str  # "train" | "val" | "video"
    frames: int
    extra_annotation_line: bool = False
    show_all_quirks: bool = False


@dataclass
class _Script:
    """Everything that happens in one video, frame by frame, before anything is drawn."""

    person: Identity
    valence: np.ndarray
    arousal: np.ndarray
    expression: np.ndarray
    controls: Expression
    pose: np.ndarray  # (n, 6): x shift, y shift (face units), scale factor, roll, yaw, pitch
    occluder_kind: np.ndarray  # -1 none, 0 hand, 1 object
    occluder: np.ndarray  # (n, 7): centre x, y (face units), size, angle, B, G, R
    blur: np.ndarray  # index into the blur kernels, -1 none
    gain: np.ndarray  # per-frame contrast
    offset: np.ndarray  # per-frame brightness
    has_face: np.ndarray
    va_annotated: np.ndarray
    expr_annotated: np.ndarray
    noise_shift: np.ndarray  # (n, 2) offset into the camera's noise field


# ---------------------------------------------------------------------------------------------
# What happens over time


def _waves(rng: np.random.Generator, n: int, periods: tuple[float, float], amplitude: float,
           count: int) -> np.ndarray:
    """A sum of `count` sines with random periods, phases and weights summing to `amplitude`."""
    t = np.arange(n, dtype=np.float64)[:, None]
    period = rng.uniform(*periods, count)
    phase = rng.uniform(0.0, 2.0 * np.pi, count)
    weight = rng.dirichlet(np.ones(count)) * amplitude
    return (weight * np.sin(2.0 * np.pi * t / period + phase)).sum(axis=1)


def _labels(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Smooth valence/arousal skewed like Aff-Wild2's: mild, mostly positive, often neutral.

    Negative excursions are compressed and a slow "calm" envelope pulls both towards zero, with
    stretches where it is exactly 0 (the frames the paper's balancing drops).
    """
    valence = rng.normal(0.15, 0.25) + _waves(rng, n, (60, 400), rng.uniform(0.5, 1.0), 4)
    arousal = rng.normal(0.12, 0.2) + _waves(rng, n, (60, 400), rng.uniform(0.4, 0.9), 4)
    valence = np.where(valence < 0, 0.7 * valence, valence)
    arousal = np.where(arousal < 0, 0.5 * arousal, arousal)
    calm = np.clip(rng.uniform(0.3, 1.5) + _waves(rng, n, (200, 600), 1.0, 2), 0.0, 1.0)
    valence = np.round(np.clip(valence * calm, -1.0, 1.0), 3) + 0.0  # + 0.0: no "-0.000"
    arousal = np.round(np.clip(arousal * calm, -1.0, 1.0), 3) + 0.0
    return valence, arousal


def _spans(rng: np.random.Generator, n: int, rate: float,
           lengths: tuple[int, int]) -> list[tuple[int, int]]:
    """Random [start, stop) stretches covering about `rate` of `n` frames."""
    if rate <= 0:
        return []
    mean_gap = (lengths[0] + lengths[1]) / 2.0 * (1.0 - rate) / rate
    spans = []
    start = int(rng.exponential(mean_gap))
    while start < n:
        stop = min(n, start + int(rng.integers(lengths[0], lengths[1] + 1)))
        spans.append((start, stop))
        start = stop + 1 + int(rng.exponential(mean_gap))
    return spans


def _blinks(rng: np.random.Generator, arousal: np.ndarray) -> np.ndarray:
    """Eye openness factor; aroused people blink more often."""
    n = arousal.size
    starts = np.flatnonzero(rng.random(n) < 0.006 + 0.02 * np.clip(arousal, 0.0, 1.0))
    openness = np.ones(n)
    for start in starts:
        stop = min(n, start + _BLINK_PROFILE.size)
        openness[start:stop] = np.minimum(openness[start:stop], _BLINK_PROFILE[:stop - start])
    return openness


def _speech(rng: np.random.Generator, n: int, fps: int) -> np.ndarray:
    """Mouth opening from talking: syllable-rate flicker in talking stretches, label-free."""
    talking = (_waves(rng, n, (90, 300), 1.0, 2) + rng.uniform(-0.4, 0.3)) > 0
    window = np.hanning(max(3, fps // 6))
    syllables = np.convolve(rng.normal(size=n), window / np.linalg.norm(window),
                            mode="same")[:n]  # a video shorter than the window: cut to it
    return talking * rng.uniform(0.04, 0.11) * np.clip(syllables, 0.0, None)


def _pose(rng: np.random.Generator, arousal: np.ndarray) -> np.ndarray:
    """Slow head motion whose pace follows arousal, plus per-frame alignment jitter."""
    n = arousal.size
    pace = 0.4 + 1.6 * np.clip(arousal, 0.0, 1.0)
    columns = []
    for amplitude, jitter in ((0.06, 0.015), (0.05, 0.015), (0.05, 0.02), (7.0, 1.0),
                              (0.35, 0.04), (0.25, 0.04)):
        phase = rng.uniform(0, 2 * np.pi) + np.cumsum(2 * np.pi / rng.uniform(50, 140) * pace)
        columns.append(amplitude * rng.uniform(0.4, 1.0) * np.sin(phase)
                       + rng.normal(0.0, jitter, n))
    pose = np.stack(columns, axis=1)
    pose[:, 2] += 1.0
    return pose


def _occluders(rng: np.random.Generator, n: int, rate: float,
               skin: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    kind = np.full(n, -1, dtype=np.int64)
    params = np.zeros((n, 7))
    for start, stop in _spans(rng, n, rate, (3, 12)):
        length = stop - start
        hand = rng.random() < 0.6
        colour = np.array(skin) * rng.uniform(0.85, 1.1) if hand else rng.uniform(20, 235, 3)
        centre = rng.uniform((-0.6, -0.3), (0.6, 0.9)) + np.outer(np.arange(length),
                                                                  rng.normal(0, 0.02, 2))
        kind[start:stop] = 0 if hand else 1
        params[start:stop, :2] = centre
        params[start:stop, 2] = rng.uniform(0.5, 0.85)
        params[start:stop, 3] = rng.uniform(-40, 40) + (180 if rng.random() < 0.3 else 0)
        params[start:stop, 4:7] = np.clip(colour, 0, 255)
    return kind, params


def _gaps(rng: np.random.Generator, n: int, chance: float, lengths: tuple[int, int],
          force: bool) -> np.ndarray:
    """True on frames that keep their data: at most one missing stretch, so windows survive."""
    keep = np.ones(n, dtype=bool)
    if force or rng.random() < chance:
        length = int(rng.integers(lengths[0], lengths[1] + 1))
        start = int(rng.integers(0, max(1, n - length)))
        keep[start:start + length] = False
    return keep


def _script(job: _Job, config: SynthConfig, rng: np.random.Generator) -> _Script:
    n = job.frames + int(job.extra_annotation_line)
    person = sample_identity(rng)
    valence, arousal = _labels(rng, n)
    jitter = config.expression_jitter
    shared_v, shared_a = rng.normal(size=n), rng.normal(size=n)
    shown_v = {g: valence + jitter * (0.6 * shared_v + 0.8 * rng.normal(size=n))
               for g in _FEATURE_GROUPS}
    shown_a = {g: arousal + jitter * (0.6 * shared_a + 0.8 * rng.normal(size=n))
               for g in _FEATURE_GROUPS}
    gaze = np.clip(_waves(rng, n, (30, 120), 0.8, 2)[:, None] + rng.normal(0, 0.15, (n, 2)),
                   -1, 1)
    controls = expression_controls(person, shown_v, shown_a, _speech(rng, n, config.fps),
                                   _blinks(rng, arousal), gaze)
    occluder_kind, occluder = _occluders(rng, n, config.occlusion_rate, person.skin)
    blur = np.full(n, -1, dtype=np.int64)
    for start, stop in _spans(rng, n, config.blur_rate, (2, 8)):
        blur[start:stop] = rng.integers(len(_BLUR_KERNELS))
    has_face = _gaps(rng, n, 0.35, (2, 10), job.show_all_quirks)
    has_face[job.frames:] = False  # the extra annotation line has no frame
    return _Script(
        person=person, valence=valence, arousal=arousal,
        expression=expression_from_va(valence, arousal), controls=controls,
        pose=_pose(rng, arousal), occluder_kind=occluder_kind, occluder=occluder, blur=blur,
        gain=rng.uniform(0.8, 1.15) * np.exp(rng.normal(0, 0.12, n)),
        offset=rng.uniform(-20, 20) + rng.normal(0, 10, n), has_face=has_face,
        va_annotated=_gaps(rng, n, 0.3, (3, 15), job.show_all_quirks),
        expr_annotated=_gaps(rng, n, 0.3, (3, 15), job.show_all_quirks),
        noise_shift=rng.integers(0, 64, (n, 2)))


def _blur_kernels() -> list[np.ndarray]:
    """Straight-line motion-blur kernels: 4 lengths x 8 directions."""
    kernels = []
    for length in (3, 5, 7, 9):
        for angle in np.arange(0, 180, 22.5):
            kernel = np.zeros((length, length), dtype=np.float32)
            half = (length - 1) / 2
            dx, dy = half * np.cos(np.deg2rad(angle)), half * np.sin(np.deg2rad(angle))
            cv2.line(kernel, (round(half - dx), round(half - dy)),
                     (round(half + dx), round(half + dy)), 1.0, 1, cv2.LINE_AA)
            kernels.append(kernel / kernel.sum())
    return kernels


_BLUR_KERNELS = _blur_kernels()


# ---------------------------------------------------------------------------------------------
# Drawing


def _backdrop(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """An out-of-focus room: a wall gradient and a few furniture-like blocks."""
    wall = rng.uniform(60, 210, 3)
    ramp = np.linspace(rng.uniform(0.7, 1.0), rng.uniform(1.0, 1.25), height)[:, None, None]
    img = np.clip(wall * ramp * np.ones((1, width, 1)), 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        w, h = rng.uniform(0.1, 0.5) * width, rng.uniform(0.1, 0.6) * height
        cv2.rectangle(img, (int(x0), int(y0)), (int(x0 + w), int(y0 + h)),
                      tuple(float(c) for c in rng.uniform(20, 240, 3)), -1)
    sigma = max(1.0, width / 150)
    return cv2.GaussianBlur(img, (0, 0), sigma)


def _lighting(rng: np.random.Generator, size: int) -> np.ndarray:
    """A directional light as a uint8 gain map (128 = 1.0) for cv2.multiply."""
    angle, strength = rng.uniform(0, 2 * np.pi), rng.uniform(0.0, 0.35)
    grid = np.linspace(-1.0, 1.0, size)
    gain = 1.0 + strength * (np.cos(angle) * grid[None, :] + np.sin(angle) * grid[:, None])
    return np.repeat(np.clip(gain * 128, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)


def _draw_frame(img: np.ndarray, script: _Script, i: int, pose: Pose) -> None:
    draw_face(img, script.person, script.controls, i, pose)
    kind = int(script.occluder_kind[i])
    if kind >= 0:
        cx, cy, size, angle, b, g, r = script.occluder[i]
        draw_occluder(img, kind, (cx, cy), size, angle, (b, g, r), pose)


def _crop_pose(script: _Script, i: int, size: int) -> Pose:
    dx, dy, scale, roll, yaw, pitch = script.pose[i]
    px = size / _CROP_FACE_UNITS * scale
    return Pose(cx=size / 2 + dx * px, cy=size * 0.47 + dy * px, scale=px, roll=roll, yaw=yaw,
                pitch=pitch)


class _CropCamera:
    """Turns a script frame into a degraded aligned crop (lighting, blur, exposure, noise)."""

    def __init__(self, rng: np.random.Generator, size: int) -> None:
        self.size = size
        self.background = _backdrop(rng, size, size)
        self.light = _lighting(rng, size)
        noise_sd = rng.uniform(2.0, 9.0)
        self.noise = np.clip(rng.normal(0, noise_sd, (size + 64, size + 64, 3)), -127,
                             127).astype(np.int16)

    def shoot(self, script: _Script, i: int) -> np.ndarray:
        img = self.background.copy()
        _draw_frame(img, script, i, _crop_pose(script, i, self.size))
        img = cv2.multiply(img, self.light, scale=1.0 / 128)
        if script.blur[i] >= 0:
            img = cv2.filter2D(img, -1, _BLUR_KERNELS[script.blur[i]])
        img = cv2.addWeighted(img, float(script.gain[i]), img, 0.0, float(script.offset[i]))
        oy, ox = script.noise_shift[i]
        noise = self.noise[oy:oy + self.size, ox:ox + self.size]
        return cv2.add(img, noise, dtype=cv2.CV_8U)


# ---------------------------------------------------------------------------------------------
# Writing


def _format_va(value: float) -> str:
    return f"{value:.3f}"


def _va_lines(script: _Script) -> list[str]:
    return [f"{_format_va(v)},{_format_va(a)}" if ok else f"{VA_UNANNOTATED:g},{VA_UNANNOTATED:g}"
            for v, a, ok in zip(script.valence, script.arousal, script.va_annotated)]


def _expr_lines(script: _Script) -> list[str]:
    return [str(int(e)) if ok else str(EXPRESSION_UNANNOTATED)
            for e, ok in zip(script.expression, script.expr_annotated)]


def _au_lines(units: np.ndarray, annotated: np.ndarray) -> list[str]:
    unknown = ",".join([str(AU_UNANNOTATED)] * units.shape[1])
    return [",".join(map(str, row)) if ok else unknown
            for row, ok in zip(units.tolist(), annotated)]


def _annotation_paths(root: Path, job: _Job) -> list[Path]:
    """The video's VA, EXPR and AU files."""
    folder = SPLIT_FOLDERS[job.split]
    return [root / "annotations" / task / folder / f"{job.name}.txt"
            for task in ("VA_Set", "EXPR_Set", "AU_Set")]


def _video_stats(job: _Job, script: _Script, units: np.ndarray,
                 au_annotated: np.ndarray) -> dict[str, Any]:
    labelled = script.va_annotated
    return {
        "name": job.name, "split": job.split, "subject": job.name, "frames": job.frames,
        "faces": int(script.has_face.sum()), "annotation_lines": int(script.valence.size),
        "va_unannotated": int((~script.va_annotated).sum()),
        "expr_unannotated": int((~script.expr_annotated).sum()),
        "valence_sum": float(script.valence[labelled].sum()),
        "arousal_sum": float(script.arousal[labelled].sum()), "va_labelled": int(labelled.sum()),
        "neutral_zero": int(((script.valence == 0) & (script.arousal == 0) & labelled).sum()),
        "expression_counts": np.bincount(script.expression[script.expr_annotated],
                                         minlength=len(AFFWILD2_EXPRESSIONS)).tolist(),
        "au_active": units[au_annotated].sum(axis=0).tolist(),
        "au_labelled": int(au_annotated.sum()),
    }


def _make_crop_video(job: _Job, config: SynthConfig, root: Path) -> dict[str, Any]:
    """Frames, then annotations: a video whose three annotation files exist is complete.

    Action units come from the drawn face (`synth.face.action_units`) and their unannotated
    stretches from a generator of their own, so adding them changed no other byte of the data.
    """
    rng = np.random.default_rng([config.seed, 0, job.index])
    script = _script(job, config, rng)
    camera = _CropCamera(rng, config.crop_size)
    units = np.stack(list(action_units(script.person, script.controls).values()), axis=1)
    au_annotated = _gaps(np.random.default_rng([config.seed, 2, job.index]), len(units), 0.3,
                         (3, 15), job.show_all_quirks)
    paths = _annotation_paths(root, job)
    if not all(path.exists() for path in paths):
        frames_dir = root / "cropped_aligned" / job.name
        frames_dir.mkdir(parents=True, exist_ok=True)
        params = [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality]
        for i in np.flatnonzero(script.has_face):
            if not cv2.imwrite(str(frames_dir / f"{i + 1:05d}.jpg"), camera.shoot(script, i),
                               params):
                raise InputError(frames_dir, "cannot write JPEG frames here")
        for path, header, lines in zip(paths, (VA_HEADER, EXPR_HEADER, AU_HEADER),
                                       (_va_lines(script), _expr_lines(script),
                                        _au_lines(units, au_annotated))):
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, "\n".join([header, *lines]) + "\n")
    return _video_stats(job, script, units, au_annotated)


class _SceneCamera:
    """A person somewhere in a room, drifting slowly, as a webcam or interview shot shows them."""

    def __init__(self, rng: np.random.Generator, size: tuple[int, int], frames: int) -> None:
        width, height = size
        self.background = _backdrop(rng, width, height)
        self.scale = rng.uniform(0.15, 0.2) * height
        self.x = width * (rng.uniform(0.3, 0.7) + _waves(rng, frames, (200, 500), 0.12, 2))
        self.y = height * (rng.uniform(0.4, 0.5) + _waves(rng, frames, (200, 500), 0.04, 2))

    def shoot(self, script: _Script, i: int) -> np.ndarray:
        img = self.background.copy()
        _, _, scale, roll, yaw, pitch = script.pose[i]
        pose = Pose(cx=self.x[i], cy=self.y[i], scale=self.scale * scale, roll=roll, yaw=yaw,
                    pitch=pitch)
        _draw_frame(img, script, i, pose)
        return img


def _make_full_frame_video(job: _Job, config: SynthConfig, videos_dir: Path) -> dict[str, Any]:
    """The mp4, then its CSV: a video whose CSV exists is complete."""
    rng = np.random.default_rng([config.seed, 1, job.index])
    script = _script(job, config, rng)
    camera = _SceneCamera(rng, config.full_frame_size, job.frames)
    csv_path = videos_dir / f"{job.name}.csv"
    if not csv_path.exists():
        videos_dir.mkdir(parents=True, exist_ok=True)
        tmp = videos_dir / f"{job.name}.mp4.tmp"
        container, stream = open_video_writer(tmp, config.fps, *config.full_frame_size)
        with container:
            for i in range(job.frames):
                frame = av.VideoFrame.from_ndarray(camera.shoot(script, i), format="bgr24")
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        os.replace(tmp, videos_dir / f"{job.name}.mp4")
        rows = io.StringIO()
        writer = csv.writer(rows, lineterminator="\n")
        writer.writerow(["frame", "valence", "arousal", "expression"])
        writer.writerows([i + 1, _format_va(script.valence[i]), _format_va(script.arousal[i]),
                          int(script.expression[i])] for i in range(job.frames))
        write_text_atomic(csv_path, rows.getvalue())
    return {"name": job.name, "split": job.split, "frames": job.frames}


# ---------------------------------------------------------------------------------------------
# The plan and the run


def _plan(config: SynthConfig) -> list[_Job]:
    """Video names in Aff-Wild2's styles; the last two videos of a split are one `_left`/`_right`
    pair when the split has room for it (train always, validation from 4 videos)."""
    rng = np.random.default_rng([config.seed, 2])
    jobs: list[_Job] = []
    splits = [("train", config.train_videos, 2), ("val", config.val_videos, 4)]
    for split, count, pair_from in splits:
        first = len(jobs)
        for k in range(count):
            index = first + k
            pair_at = first + count - 2 if count >= pair_from else None
            if pair_at is not None and index >= pair_at:
                name = f"video{pair_at + 1}_{'left' if index == pair_at else 'right'}"
            elif rng.random() < 0.5:
                name = f"{index + 1}-{config.fps}-{_RESOLUTIONS[rng.integers(len(_RESOLUTIONS))]}"
            else:
                name = f"video{index + 1}"
            jobs.append(_Job(index=index, name=name, split=split, frames=config.frames_per_video,
                             extra_annotation_line=index == 0 or rng.random() < 0.1,
                             show_all_quirks=index == 0))
    jobs += [_Job(index=k, name=f"synthetic_person_{k + 1:02d}", split="video",
                  frames=config.frames_per_video) for k in range(config.full_frame_videos)]
    return jobs


def _run_job(job: _Job, config: SynthConfig, out: Path) -> dict[str, Any]:
    if job.split == "video":
        return _make_full_frame_video(job, config, out / "videos")
    return _make_crop_video(job, config, out / "affwild2")


def _init_worker() -> None:
    cv2.setNumThreads(1)


def _run_all(jobs: list[_Job], config: SynthConfig, out: Path,
             workers: int) -> Iterator[tuple[_Job, dict[str, Any]]]:
    if workers <= 1:
        for job in jobs:
            yield job, _run_job(job, config, out)
        return
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                             initializer=_init_worker) as pool:
        futures = {pool.submit(_run_job, job, config, out): job for job in jobs}
        for future in as_completed(futures):
            yield futures[future], future.result()


def _photo_layouts(config: SynthConfig, out: Path) -> dict[str, Any]:
    counts = PhotoCounts(config.ckplus_subjects, config.ckplus_sequences, config.jaffe_subjects,
                         config.jaffe_per_expression)
    return write_photo_layouts(out, config.layouts, config.seed, counts)


def _summary(config: SynthConfig, stats: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    crops = [s for s in stats if s["split"] != "video"]
    labelled = sum(s["va_labelled"] for s in crops)
    faces = sum(s["faces"] for s in crops)
    counts = np.sum([s["expression_counts"] for s in crops], axis=0)
    return {
        "config": dataclasses.asdict(config),
        "affwild2_root": "affwild2",
        "videos_dir": "videos",
        "splits": {split: [s["name"] for s in crops if s["split"] == split]
                   for split in SPLIT_FOLDERS},
        "full_frame_videos": [f"{s['name']}.mp4" for s in stats if s["split"] == "video"],
        "frames": sum(s["frames"] for s in crops),
        "faces": faces,
        "missing_faces": sum(s["frames"] - s["faces"] for s in crops),
        "va_unannotated": sum(s["va_unannotated"] for s in crops),
        "expr_unannotated": sum(s["expr_unannotated"] for s in crops),
        "longer_annotation_files": [s["name"] for s in crops
                                    if s["annotation_lines"] > s["frames"]],
        "valence_mean": round(sum(s["valence_sum"] for s in crops) / max(1, labelled), 4),
        "arousal_mean": round(sum(s["arousal_sum"] for s in crops) / max(1, labelled), 4),
        "neutral_zero_frames": sum(s["neutral_zero"] for s in crops),
        "expression_counts": dict(zip(AFFWILD2_EXPRESSIONS, counts.tolist())),
        "au_active_share": dict(zip(ACTION_UNITS_2020, np.round(
            np.sum([s["au_active"] for s in crops], axis=0)
            / max(1, sum(s["au_labelled"] for s in crops)), 3).tolist())),
        "videos": [{k: s[k] for k in ("name", "split", "subject", "frames", "faces",
                                      "annotation_lines")} for s in crops],
        "seconds": round(seconds, 2),
        "faces_per_second": round(faces / seconds, 1) if seconds > 0 else None,
    }


def _check_previous(out: Path, config: SynthConfig) -> dict[str, Any] | None:
    """The finished summary when `out` already holds this config's data; refuse to mix."""
    wanted = to_jsonable(config)
    for name in ("synth.json", "synth.started.json"):
        path = out / name
        if not path.exists():
            continue
        try:
            previous = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise InputError(path, f"unreadable ({err}); delete the folder to start over") from err
        # Fields added since the data was made read as their defaults.
        if {**to_jsonable(SynthConfig()), **previous.get("config", {})} != wanted:
            raise InputError(out, "holds synthetic data made with another config; delete it "
                                      "or choose another folder")
        if name == "synth.json":
            return previous
    return None


def synthesize(out: Path, config: SynthConfig | None = None, progress: bool = True,
               workers: int = 1) -> dict[str, Any]:
    """Generate (or finish generating) the synthetic data under `out`; returns its summary.

    `out_dir/synth.json` is written last and marks a complete run: calling again with the same
    config returns at once; an interrupted run resumes video by video. With `workers` > 1 the
    videos are shared among that many spawned processes (a script calling this needs the
    `if __name__ == "__main__":` guard); the output does not depend on it.
    """
    config = config or SynthConfig()
    out = Path(out)
    previous = _check_previous(out, config)
    if previous is not None:
        return previous
    write_json_atomic(out / "synth.started.json", {"config": config})
    start = time.perf_counter()
    jobs = _plan(config)
    workers = min(len(jobs), workers)
    stats = {}
    with tqdm(total=sum(job.frames for job in jobs), unit="frame", desc="synthesizing",
              disable=not progress) as bar:
        for job, result in _run_all(jobs, config, out, workers):
            stats[(job.split == "video", job.index)] = result
            bar.update(job.frames)
    photos = _photo_layouts(config, out) if config.layouts else {}
    summary = _summary(config, [stats[key] for key in sorted(stats)],
                       time.perf_counter() - start)
    if photos:
        summary["photo_layouts"] = photos
    write_run_info(out, stage="synth", config=config, seed=config.seed, data_summary=summary)
    write_json_atomic(out / "synth.json", summary)
    (out / "synth.started.json").unlink()
    return summary
