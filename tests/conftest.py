"""Shared fixtures: tiny hand-written dataset trees in the real layouts."""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest


@dataclass(frozen=True)
class TinyVideo:
    """One video of a hand-made Aff-Wild2 tree.

    `faces`: frame numbers that get an image. `split`: "train" / "val", or None for a video
    without annotation files (a test-set video). `va` / `expr`: the annotation lines after the
    header (None: no such file).
    """

    faces: Sequence[int]
    split: str | None = "train"
    va: Sequence[tuple[float, float]] | None = None
    expr: Sequence[int] | None = None


def face_value(video: str, frame: int) -> int:
    """The grey level of a tiny tree's image, so a test can tell which frame a face row holds."""
    return 30 + zlib.crc32(f"{video}/{frame}".encode()) % 190


_SPLIT_FOLDERS = {"train": "Train_Set", "val": "Validation_Set"}
EXPR_HEADER = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise"


def write_affwild2_tree(root: Path, videos: dict[str, TinyVideo], *, va_folder: str = "VA_Set",
                        expr_folder: str = "EXPR_Set", expr_header: str = EXPR_HEADER) -> Path:
    """Write `root/cropped_aligned/<video>/00001.jpg ...` (112x112 colour, flat grey level
    `face_value`) and the VA / EXPR annotation files; returns root."""
    for name, video in videos.items():
        folder = root / "cropped_aligned" / name
        folder.mkdir(parents=True, exist_ok=True)
        for frame in video.faces:
            image = np.full((112, 112, 3), face_value(name, frame), dtype=np.uint8)
            cv2.imwrite(str(folder / f"{frame:05d}.jpg"), image)
        if video.split is None:
            continue
        split = _SPLIT_FOLDERS[video.split]
        if video.va is not None:
            lines = ["valence,arousal"] + [f"{v},{a}" for v, a in video.va]
            _write_lines(root / "annotations" / va_folder / split / f"{name}.txt", lines)
        if video.expr is not None:
            lines = [expr_header] + [str(label) for label in video.expr]
            _write_lines(root / "annotations" / expr_folder / split / f"{name}.txt", lines)
    return root


def _write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def tiny_videos() -> dict[str, TinyVideo]:
    """Four videos covering the layout's ordinary cases.

    train_a: faces 1-12, VA with two -5,-5 lines, EXPR with -1s.
    val_b_left: faces 1-8 without 4 and 5, VA file 10 lines long (frames 9, 10 labelled, no face).
    val_b_right: faces 1-6, EXPR only.
    train_c: faces 1-8, VA file 5 lines long (frames 6-8 unlabelled).
    test_d: faces 1-4, no annotation files.
    """
    va_a = [(round(0.1 * i - 0.5, 2), round(0.5 - 0.05 * i, 2)) for i in range(1, 13)]
    va_a[2] = va_a[7] = (-5, -5)
    return {
        "train_a": TinyVideo(range(1, 13), "train", va=va_a,
                             expr=[0, 1, -1, 2, 3, 4, 5, 6, -1, 0, 1, 2]),
        "val_b_left": TinyVideo([1, 2, 3, 6, 7, 8], "val",
                                va=[(0.5, 0.5)] * 3 + [(-0.2, 0.3)] * 7),
        "val_b_right": TinyVideo(range(1, 7), "val", expr=[6, 6, 5, 5, -1, 4]),
        "train_c": TinyVideo(range(1, 9), "train", va=[(0.0, 0.0), (1.0, -1.0), (0.3, 0.4),
                                                        (-0.9, 0.1), (0.25, 0.5)]),
        "test_d": TinyVideo(range(1, 5), None),
    }


@pytest.fixture
def make_affwild2_tree() -> Callable[..., Path]:
    """The tree writer, for tests that need their own videos or folder names."""
    return write_affwild2_tree


@pytest.fixture
def affwild2_tree(tmp_path: Path) -> Path:
    """A tiny, valid Aff-Wild2 tree of `tiny_videos()` at tmp_path / "affwild2"."""
    return write_affwild2_tree(tmp_path / "affwild2", tiny_videos())


# Every layout of the synthetic generator, small: read (never written) by the source tests.
PHOTO_SYNTH = {"train_videos": 1, "val_videos": 1, "frames_per_video": 12,
               "full_frame_videos": 2, "full_frame_size": (320, 192),
               "layouts": ("ckplus", "ckplus48", "jaffe"), "ckplus_subjects": 4,
               "ckplus_sequences": 3, "jaffe_subjects": 2, "jaffe_per_expression": 1}


@pytest.fixture(scope="session")
def synthetic_layouts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """(folder, summary) of a synthetic run with the CK+, CK+48 and JAFFE layouts and videos.

    Shared by the tests of every source, so copy a tree before changing it.
    """
    from affecttrack.synth import SynthConfig, synthesize

    out = tmp_path_factory.mktemp("synthetic_layouts")
    return out, synthesize(out, SynthConfig(**PHOTO_SYNTH), progress=False)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow end-to-end tests run in CI (CI is set) or with --runslow; locally the suite stays fast."""
    if config.getoption("--runslow") or os.environ.get("CI"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow (CI runs them)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
