"""Synthetic lab photo datasets in the CK+, CK+48 and JAFFE layouts, drawn like the demo's faces.

So that the CK+ and JAFFE readers are exercised by the same kind of files as real copies, with
their quirks:
- CK+ (``ckplus/``): per subject a few sequences that go from a neutral face to a posed peak over
  10-20 frames, 640x490 / 640x480 / 720x480 frames with the face somewhere in them, some saved
  grey and some colour; ``Emotion/`` files holding ``   3.0000000e+00``-style labels for about
  two thirds of the sequences (the rest are unlabelled, some with an empty Emotion folder, as in
  CK+).
- CK+48 (``CK+48/<class>/``): 48x48 grey crops of the last 3 frames of each labelled sequence.
- JAFFE (``jaffe/``): 256x256 grey TIFFs named ``KA.AN1.39.tiff``, some written as palette ("P")
  TIFFs.

Faces follow valence/arousal (`synth.face`), and each category is drawn at its point of
`labels.EXPRESSION_VA`. Contempt, absent there, is drawn at `CONTEMPT_VA` (-0.35, -0.1):
unpleasant and slightly deactivated (a cool, withdrawn displeasure), in the empty region between
Neutral, Disgust and Sadness, so that its drawn face stays distinguishable from theirs; the drawing
has no one-sided smirk, so that is all that tells it apart. OpenCV's Haar cascade finds these faces
in about 95% of frames.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from affecttrack.labels import CKPLUS_EXPRESSIONS, EXPRESSION_VA, JAFFE_EXPRESSIONS
from affecttrack.runinfo import write_text_atomic
from affecttrack.synth.face import (
    Expression,
    Identity,
    Pose,
    draw_face,
    expression_controls,
    sample_identity,
)

LAYOUTS: tuple[str, ...] = ("ckplus", "ckplus48", "jaffe")
CONTEMPT_VA: tuple[float, float] = (-0.35, -0.1)
CK48_FOLDERS = {"Anger": "anger", "Contempt": "contempt", "Disgust": "disgust", "Fear": "fear",
                "Happiness": "happy", "Sadness": "sadness", "Surprise": "surprise"}
JAFFE_CODES = {"Neutral": "NE", "Happiness": "HA", "Sadness": "SA", "Surprise": "SU",
               "Anger": "AN", "Disgust": "DI", "Fear": "FE"}
_JAFFE_HAIR = (24.0, 24.0, 28.0)  # BGR: JAFFE's ten women all have black hair
_JAFFE_MIN_SKIN = 140.0  # grey level
JAFFE_SUBJECTS = ("KA", "KL", "KM", "KR", "MK", "NA", "NM", "TM", "UY", "YM")
_CK_SIZES = ((640, 490), (640, 480), (720, 480))
# CK+'s own label counts (anger 45, contempt 18, disgust 59, fear 25, happy 69, sadness 28,
# surprise 83): the generated sequences are as imbalanced.
_CK_LABEL_WEIGHTS = np.array([45, 18, 59, 25, 69, 28, 83], dtype=np.float64)
_PEAK = 3  # frames of the peak a CK+ labelled sequence gives (and CK+48 keeps)
_FACE_GROUPS = ("mouth", "eyes", "brows")


def category_va(name: str) -> tuple[float, float]:
    """Where a category is drawn in valence/arousal space (Contempt: `CONTEMPT_VA`)."""
    return CONTEMPT_VA if name == "Contempt" else EXPRESSION_VA[name]


@dataclass(frozen=True)
class PhotoCounts:
    """How much of each layout to draw (`SynthConfig` holds the defaults)."""

    ckplus_subjects: int
    ckplus_sequences: int  # per subject
    jaffe_subjects: int
    jaffe_per_expression: int  # per subject


def _studio(rng: np.random.Generator, width: int, height: int,
            skin: tuple[float, float, float]) -> np.ndarray:
    """A plain lab wall with a soft vertical light falloff, as behind CK+ and JAFFE subjects.

    Its grey level stays 50-90 levels away from the skin's, so that grey photos keep the face's
    outline, which the Haar cascade relies on.
    """
    skin_level = _luminance(skin)
    offset = rng.uniform(50, 90) * rng.choice([-1.0, 1.0])
    if not 30 <= skin_level + offset <= 225:
        offset = -offset
    wall = np.clip(skin_level + offset + rng.normal(0, 12, 3), 10, 245)
    ramp = np.linspace(rng.uniform(0.9, 1.0), rng.uniform(1.0, 1.1), height)[:, None, None]
    return np.clip(wall * ramp * np.ones((1, width, 1)), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class _Shot:
    """A posed face in front of a lab wall: everything needed to draw its frames on demand.

    Lab photos are clean, and PNG encodes noise-free frames several times faster, so no camera
    noise is added.
    """

    key: tuple[int, ...]  # seeds the wall
    person: Identity
    valence: np.ndarray  # per frame
    arousal: np.ndarray
    pose: Pose
    size: tuple[int, int]  # width, height
    grey: bool

    @cached_property
    def _wall(self) -> np.ndarray:
        return _studio(np.random.default_rng([*self.key, 0]), *self.size, self.person.skin)

    @cached_property
    def _controls(self) -> Expression:
        n = len(self.valence)
        return expression_controls(
            self.person, dict.fromkeys(_FACE_GROUPS, self.valence),
            dict.fromkeys(_FACE_GROUPS, self.arousal), np.zeros(n), np.ones(n), np.zeros((n, 2)))

    def frame(self, i: int) -> np.ndarray:
        """Frame i (0-based): BGR, or grey when the shot is grey."""
        image = self._wall.copy()
        draw_face(image, self.person, self._controls, i, self.pose)
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if self.grey else image


@dataclass(frozen=True)
class _Sequence:
    """A CK+ sequence: neutral to the peak of one posed expression."""

    subject: str
    number: str
    label: int  # index in CKPLUS_EXPRESSIONS (1-7)
    labelled: bool
    shot: _Shot

    @property
    def frames(self) -> int:
        return len(self.shot.valence)

    def name(self, frame: int) -> str:
        """File name of 1-based `frame`, as CK+ names them."""
        return f"{self.subject}_{self.number}_{frame:08d}.png"


def _ck_sequence(seed: int, subject: int, person: Identity, index: int, label: int,
                 labelled: bool) -> _Sequence:
    key = (seed, 3, subject, index)
    rng = np.random.default_rng(key)
    n = int(rng.integers(10, 21))
    onset = np.clip((np.arange(n) - rng.integers(1, 3)) / (n * rng.uniform(0.6, 0.8)), 0, 1)
    ramp = onset * onset * (3 - 2 * onset)  # smoothstep: neutral, then onset, then the apex
    v, a = np.array(category_va(CKPLUS_EXPRESSIONS[label])) * rng.uniform(1.0, 1.3)
    width, height = _CK_SIZES[int(rng.integers(len(_CK_SIZES)))]
    pose = Pose(cx=width * rng.uniform(0.35, 0.65), cy=height * rng.uniform(0.42, 0.55),
                scale=height * rng.uniform(0.13, 0.17), roll=rng.normal(0, 3),
                yaw=rng.normal(0, 0.1), pitch=rng.normal(0, 0.1))
    shot = _Shot(key, person, np.clip(v * ramp, -1, 1), np.clip(a * ramp, -1, 1), pose,
                 (width, height), grey=bool(rng.random() < 0.4))
    return _Sequence(f"S{subject:03d}", f"{index + 1:03d}", label, labelled, shot)


def _ck_labels(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Which sequences are labelled (about two thirds; the first is and the last is not) and
    their labels: the first seven labelled ones show every class once, the rest follow CK+'s
    imbalance."""
    labelled = rng.random(n) < 0.67
    labelled[-1] = False
    labelled[0] = True
    labels = 1 + rng.choice(7, n, p=_CK_LABEL_WEIGHTS / _CK_LABEL_WEIGHTS.sum())
    first = np.flatnonzero(labelled)[:7]
    labels[first] = 1 + rng.permutation(7)[:len(first)]
    return labelled, labels


def _ck_person(rng: np.random.Generator) -> Identity:
    """A person with hair: OpenCV's Haar cascade misses most bald, dark-skinned drawn faces (a
    bias real detectors share), which would leave whole CK+ subjects without a face."""
    person = sample_identity(rng)
    return replace(person, hair_style=0) if person.hair_style == 2 else person


def _ck_sequences(seed: int, counts: PhotoCounts) -> list[_Sequence]:
    """Every subject's sequences."""
    rng = np.random.default_rng([seed, 3])
    subjects = np.sort(rng.choice(np.arange(5, 200), counts.ckplus_subjects, replace=False))
    labelled, labels = _ck_labels(rng, counts.ckplus_subjects * counts.ckplus_sequences)
    people = {int(subject): _ck_person(np.random.default_rng([seed, 3, int(subject)]))
              for subject in subjects}
    keys = [(int(subject), k) for subject in subjects for k in range(counts.ckplus_sequences)]
    return [_ck_sequence(seed, subject, people[subject], k, int(labels[i]), bool(labelled[i]))
            for i, (subject, k) in enumerate(keys)]


def _write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise OSError(f"{path}: cannot write PNG")


def _write_ckplus(root: Path, sequences: list[_Sequence]) -> None:
    for k, sequence in enumerate(sequences):
        folder = root / "cohn-kanade-images" / sequence.subject / sequence.number
        for i in range(sequence.frames):
            _write_png(folder / sequence.name(i + 1), sequence.shot.frame(i))
        emotion = root / "Emotion" / sequence.subject / sequence.number
        if sequence.labelled:
            name = sequence.name(sequence.frames).replace(".png", "_emotion.txt")
            write_text_atomic(emotion / name, f"   {float(sequence.label):.7e}\n")
        elif k % 2:
            emotion.mkdir(parents=True, exist_ok=True)  # CK+ keeps empty folders of unlabelled


def _face_square(image: np.ndarray, pose: Pose, size: int) -> np.ndarray:
    """The face's square (forehead to chin) as a size x size grey crop, as CK+48 cuts them."""
    half = 1.25 * pose.scale
    top, left = round(pose.cy + 0.1 * pose.scale - half), round(pose.cx - half)
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    side = round(2 * half)
    pad = side
    padded = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    square = padded[top + pad:top + pad + side, left + pad:left + pad + side]
    return cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)


def _write_ck48(root: Path, sequences: list[_Sequence]) -> None:
    for sequence in (s for s in sequences if s.labelled):
        folder = root / CK48_FOLDERS[CKPLUS_EXPRESSIONS[sequence.label]]
        for frame in range(sequence.frames - _PEAK + 1, sequence.frames + 1):
            _write_png(folder / sequence.name(frame),
                       _face_square(sequence.shot.frame(frame - 1), sequence.shot.pose, 48))


def _ck_stats(sequences: list[_Sequence]) -> dict[str, dict[str, Any]]:
    labelled = [s for s in sequences if s.labelled]
    labels = [CKPLUS_EXPRESSIONS[s.label] for s in labelled]
    return {
        "ckplus": {"root": "ckplus", "subjects": len({s.subject for s in sequences}),
                   "sequences": len(sequences), "labelled_sequences": len(labelled),
                   "frames": sum(s.frames for s in sequences),
                   "images_of_labelled": (1 + _PEAK) * len(labelled),
                   "label_counts": _counts(labels)},
        "ckplus48": {"root": "CK+48", "images": _PEAK * len(labelled),
                     "label_counts": _counts([name for name in labels for _ in range(_PEAK)])},
    }


def _luminance(colour: tuple[float, float, float]) -> float:
    return 0.114 * colour[0] + 0.587 * colour[1] + 0.299 * colour[2]


def _jaffe_person(rng: np.random.Generator) -> Identity:
    """A person like JAFFE's: long black hair, a light to medium skin tone."""
    person = sample_identity(rng)
    while _luminance(person.skin) < _JAFFE_MIN_SKIN:
        person = sample_identity(rng)
    return replace(person, hair_style=1, hair=_JAFFE_HAIR)


def _jaffe_shots(seed: int, counts: PhotoCounts) -> list[tuple[str, _Shot]]:
    """(file name, shot) of each JAFFE image; image numbers run over the whole set, as JAFFE's."""
    shots = []
    for s, subject in enumerate(JAFFE_SUBJECTS[:counts.jaffe_subjects]):
        rng = np.random.default_rng([seed, 4, s])
        person = _jaffe_person(rng)
        for name in JAFFE_EXPRESSIONS:
            for repeat in range(1, counts.jaffe_per_expression + 1):
                v, a = np.array(category_va(name)) * rng.uniform(0.9, 1.2)
                pose = Pose(cx=128 + rng.normal(0, 6), cy=128 + rng.normal(0, 6),
                            scale=256 * rng.uniform(0.16, 0.19), roll=rng.normal(0, 3),
                            yaw=rng.normal(0, 0.08), pitch=rng.normal(0, 0.08))
                number = len(shots) + 1
                shots.append((f"{subject}.{JAFFE_CODES[name]}{repeat}.{number}.tiff",
                              _Shot((seed, 4, s, number), person, np.array([v]), np.array([a]),
                                    pose, (256, 256), grey=True)))
    return shots


def _write_jaffe(root: Path, shots: list[tuple[str, _Shot]]) -> None:
    """256x256 grey TIFFs, every third one in palette ("P") mode as some JAFFE copies hold."""
    root.mkdir(parents=True, exist_ok=True)
    for number, (name, shot) in enumerate(shots, start=1):
        image = Image.fromarray(shot.frame(0), "L")
        (image.quantize(256) if number % 3 == 0 else image).save(root / name)


def _jaffe_stats(shots: list[tuple[str, _Shot]]) -> dict[str, Any]:
    codes = {code: name for name, code in JAFFE_CODES.items()}
    labels = [codes[name.split(".")[1][:2]] for name, _ in shots]
    return {"root": "jaffe", "subjects": len({name[:2] for name, _ in shots}),
            "images": len(shots), "palette_images": len(shots) // 3,
            "label_counts": _counts(labels)}


def _counts(names: list[str]) -> dict[str, int]:
    return {name: names.count(name) for name in CKPLUS_EXPRESSIONS if name in names}


def _write_layout(final: Path, write: Callable[[Path], None]) -> None:
    """Write into `final`.partial, then rename: a layout folder that exists is complete."""
    if final.exists():
        return
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    write(partial)
    os.replace(partial, final)


def write_photo_layouts(out: Path, layouts: tuple[str, ...], seed: int,
                        counts: PhotoCounts) -> dict[str, dict[str, Any]]:
    """Write the requested layouts (of `LAYOUTS`) under `out`; returns what each holds.

    Deterministic for a seed. A layout's folder appears complete or not at all, so an
    interrupted run resumes layout by layout.
    """
    out = Path(out)
    stats: dict[str, dict[str, Any]] = {}
    if {"ckplus", "ckplus48"} & set(layouts):
        sequences = _ck_sequences(seed, counts)
        if "ckplus" in layouts:
            _write_layout(out / "ckplus", lambda root: _write_ckplus(root, sequences))
        if "ckplus48" in layouts:
            _write_layout(out / "CK+48", lambda root: _write_ck48(root, sequences))
        stats.update({name: value for name, value in _ck_stats(sequences).items()
                      if name in layouts})
    if "jaffe" in layouts:
        shots = _jaffe_shots(seed, counts)
        _write_layout(out / "jaffe", lambda root: _write_jaffe(root, shots))
        stats["jaffe"] = _jaffe_stats(shots)
    return stats
