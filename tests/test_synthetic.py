"""The synthetic generator writes real Aff-Wild2 and video layouts, deterministically, resumably."""

import csv
import hashlib
import json
import re
import shutil
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from affecttrack.errors import AffectTrackError
from affecttrack.labels import AFFWILD2_EXPRESSIONS, expression_from_va
from affecttrack.synth import SynthConfig, synthesize
from affecttrack.synth.face import (
    Pose,
    draw_face,
    expression_controls,
    sample_identity,
)

SMALL = SynthConfig(train_videos=2, val_videos=1, frames_per_video=40, full_frame_videos=1,
                    full_frame_size=(160, 96))


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    return out, synthesize(out, SMALL, progress=False)


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _va_rows(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


def _all_annotations(root: Path, task: str) -> list[Path]:
    return sorted((root / "annotations" / task).glob("*/*.txt"))


def test_same_seed_same_bytes_other_seed_other_data(synth, tmp_path):
    out, _ = synth
    synthesize(tmp_path / "again", SMALL, progress=False)
    assert _digests(out / "affwild2") == _digests(tmp_path / "again" / "affwild2")
    other = SynthConfig(**{**SMALL.__dict__, "seed": 1, "full_frame_videos": 0})
    synthesize(tmp_path / "other", other, progress=False)
    first = _all_annotations(out / "affwild2", "VA_Set")[0]
    assert first.read_bytes() != (tmp_path / "other" / first.relative_to(out)).read_bytes()


def test_affwild2_layout_and_quirks(synth):
    out, summary = synth
    root = out / "affwild2"
    va_files = _all_annotations(root, "VA_Set")
    expr_files = _all_annotations(root, "EXPR_Set")
    assert {p.parent.name for p in va_files} == {"Train_Set", "Validation_Set"}
    assert [p.name for p in va_files] == [p.name for p in expr_files]
    names = [p.stem for p in va_files]
    assert any(n.endswith("_left") for n in names) and any(n.endswith("_right") for n in names)
    assert sorted(names) == sorted(summary["splits"]["train"] + summary["splits"]["val"])

    longer, missing_faces = [], 0
    for va_file in va_files:
        lines = va_file.read_text().splitlines()
        assert lines[0] == "valence,arousal"
        frames_dir = root / "cropped_aligned" / va_file.stem
        jpgs = sorted(p.name for p in frames_dir.iterdir())
        assert all(re.fullmatch(r"\d{5}\.jpg", name) for name in jpgs)
        numbers = [int(name[:5]) for name in jpgs]
        assert min(numbers) >= 1 and max(numbers) <= SMALL.frames_per_video
        missing_faces += SMALL.frames_per_video - len(numbers)
        longer += [va_file.stem] if len(lines) - 1 > SMALL.frames_per_video else []
        assert len(lines) - 1 >= SMALL.frames_per_video
    assert missing_faces > 0 and longer
    assert summary["missing_faces"] == missing_faces
    assert sorted(summary["longer_annotation_files"]) == sorted(longer)
    image = cv2.imread(str(next((root / "cropped_aligned").rglob("*.jpg"))))
    assert image.shape == (112, 112, 3)


def test_labels_in_range_with_unannotated_markers(synth):
    out, _ = synth
    root = out / "affwild2"
    saw_va_marker = saw_expr_marker = False
    for va_file in _all_annotations(root, "VA_Set"):
        va = _va_rows(va_file)
        expr_file = root / "annotations" / "EXPR_Set" / va_file.relative_to(
            root / "annotations" / "VA_Set")
        lines = expr_file.read_text().splitlines()
        assert lines[0] == ",".join(AFFWILD2_EXPRESSIONS)
        expr = np.array([int(x) for x in lines[1:]])
        assert len(expr) == len(va)
        unannotated = (va == -5).all(axis=1)
        saw_va_marker |= bool(unannotated.any())
        saw_expr_marker |= bool((expr == -1).any())
        assert np.all(np.abs(va[~unannotated]) <= 1)
        assert set(expr.tolist()) <= set(range(-1, 7))
        both = ~unannotated & (expr >= 0)
        assert np.array_equal(expr[both], expression_from_va(va[both, 0], va[both, 1]))
    assert saw_va_marker and saw_expr_marker


def test_labels_are_skewed_like_affwild2(tmp_path):
    config = SynthConfig(train_videos=16, val_videos=1, frames_per_video=100,
                         full_frame_videos=0, crop_size=32)
    summary = synthesize(tmp_path, config, progress=False)
    counts = summary["expression_counts"]
    assert summary["valence_mean"] > 0
    assert 0 < summary["arousal_mean"] < 0.3
    assert max(counts, key=counts.get) == "Neutral"
    assert counts["Happiness"] > counts["Sadness"]
    assert summary["neutral_zero_frames"] > 0


def test_full_frame_video_decodes_with_opencv_and_pyav(synth):
    out, summary = synth
    video = out / "videos" / summary["full_frame_videos"][0]
    capture = cv2.VideoCapture(str(video))
    decoded = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        assert frame.shape == (96, 160, 3)
        decoded += 1
    capture.release()
    assert decoded == SMALL.frames_per_video
    with av.open(str(video)) as container:
        assert sum(1 for _ in container.decode(video=0)) == SMALL.frames_per_video
    with open(video.with_suffix(".csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["frame", "valence", "arousal", "expression"]
    assert [int(r["frame"]) for r in rows] == list(range(1, SMALL.frames_per_video + 1))
    assert all(abs(float(r["valence"])) <= 1 and 0 <= int(r["expression"]) <= 6 for r in rows)


def test_finished_run_is_reused_and_other_config_refused(synth):
    out, summary = synth
    assert synthesize(out, SMALL, progress=False) == json.loads((out / "synth.json").read_text())
    assert (out / "run.json").exists() and not (out / "synth.started.json").exists()
    with pytest.raises(AffectTrackError, match="another config"):
        synthesize(out, SynthConfig(**{**SMALL.__dict__, "seed": 7}), progress=False)


def test_interrupted_run_resumes_to_the_same_files(tmp_path):
    config = SynthConfig(**{**SMALL.__dict__, "full_frame_videos": 0})
    synthesize(tmp_path, config, progress=False)
    expected = _digests(tmp_path / "affwild2")
    victim = _all_annotations(tmp_path / "affwild2", "EXPR_Set")[0]
    victim.unlink()
    shutil.rmtree(tmp_path / "affwild2" / "cropped_aligned" / victim.stem)
    (tmp_path / "synth.json").unlink()
    synthesize(tmp_path, config, progress=False)
    assert _digests(tmp_path / "affwild2") == expected


def test_bad_config_is_one_clear_error():
    with pytest.raises(AffectTrackError, match="full_frame_size"):
        SynthConfig(full_frame_size=(641, 360))


def _clean_face(valence: float, arousal: float) -> tuple[np.ndarray, tuple]:
    """One person drawn large, without nuisances, showing (valence, arousal)."""
    person = sample_identity(np.random.default_rng(3))
    same = {g: np.array([valence]) for g in ("mouth", "eyes", "brows")}
    shown = {g: np.array([arousal]) for g in ("mouth", "eyes", "brows")}
    controls = expression_controls(person, same, shown, np.zeros(1), np.ones(1), np.zeros((1, 2)))
    img = np.zeros((400, 400, 3), np.uint8)
    draw_face(img, person, controls, 0, Pose(cx=200, cy=200, scale=150, roll=0, yaw=0, pitch=0))
    return img, person


def _mouth_corner_lift(valence: float) -> float:
    """How far (pixels) the mouth's outer thirds sit above its middle third."""
    img, person = _clean_face(valence, 0.0)
    lips = np.all(np.abs(img.astype(float) - np.round(person.lips)) <= 2, axis=2)
    rows, cols = np.nonzero(lips)
    width = cols.max() - cols.min()
    outer = (cols < cols.min() + width / 3) | (cols > cols.max() - width / 3)
    return float(rows[~outer].mean() - rows[outer].mean())


def test_faces_smile_with_valence_and_open_eyes_with_arousal():
    assert _mouth_corner_lift(0.8) > 5 > 0 > -5 > _mouth_corner_lift(-0.8)
    sclera = [int(np.all(_clean_face(0.0, a)[0] >= 230, axis=2).sum()) for a in (-0.5, 0.0, 0.8)]
    assert sclera[0] < sclera[1] < sclera[2]


@pytest.mark.slow
def test_worker_processes_write_the_same_files(synth, tmp_path):
    out, _ = synth
    synthesize(tmp_path, SMALL, progress=False, workers=2)
    assert _digests(out / "affwild2") == _digests(tmp_path / "affwild2")


def test_action_units_follow_the_drawn_face(synth):
    out, summary = synth
    root = out / "affwild2"
    au_files = _all_annotations(root, "AU_Set")
    assert [p.stem for p in au_files] == [p.stem for p in _all_annotations(root, "VA_Set")]
    active, valence = [], []
    for path in au_files:
        lines = path.read_text().splitlines()
        assert lines[0] == "AU1,AU2,AU4,AU6,AU12,AU15,AU20,AU25"
        rows = np.array([[int(v) for v in line.split(",")] for line in lines[1:]])
        va = _va_rows(root / "annotations" / "VA_Set" / path.parent.name / path.name)
        assert len(rows) == len(va) and set(np.unique(rows)) <= {-1, 0, 1}
        known = (rows >= 0).all(axis=1) & (va[:, 0] > -5)
        active.append(rows[known]), valence.append(va[known, 0])
    active, valence = np.concatenate(active), np.concatenate(valence)
    # AU12 (lip corner puller) smiles, AU15 (depressor) frowns
    assert valence[active[:, 4] == 1].mean() > valence[active[:, 4] == 0].mean() + 0.1
    assert valence[active[:, 5] == 1].mean() < valence[active[:, 5] == 0].mean() - 0.1
    assert set(summary["au_active_share"]) == {"AU1", "AU2", "AU4", "AU6", "AU12", "AU15",
                                               "AU20", "AU25"}
