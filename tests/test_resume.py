"""Interrupted training resumes exactly; damaged checkpoints and non-finite losses stop in one line.

A run killed (SIGKILL) after a checkpoint and resumed must end with the weights and the best
validation score of the same run left alone: same batches, augmentations, dropout masks and
learning rates after the restart as without it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli_runner import run_cli
from store_fixtures import write_face_store, write_feature_store

from affecttrack.data.store import FaceStore
from affecttrack.errors import AffectTrackError
from affecttrack.features.store import FeatureStore
from affecttrack.training.frame import FrameTrainConfig, train_frame_model
from affecttrack.training.sequence import SequenceTrainConfig, train_sequence_model
from affecttrack.training.trainer import TrainResult, discard_unfinished_runs

# 14 training frames (FRAMES_PER_VIDEO), 3 batches an epoch: the first checkpoint (step 2) falls
# mid-epoch and the run goes on into the next epoch; augmentation, dropout and a warm-up are on.
FRAMES_PER_VIDEO = 8
FRAME = dict(batch_size=4, balance="none", val_check_interval=2, max_steps=5, val_max_frames=4,
             optimizer="adam", lr=1e-3, warmup_steps=3, precision="32-true")
# 18 windows, 2 batches an epoch, validated at each epoch's end: a checkpoint between epochs.
SEQUENCE = dict(model="gru1", window=6, stride=2, batch_size=8, max_steps=5, precision="32-true")

# Run in a subprocess: train through the CLI, but hold still right after the first checkpoint,
# so that the test kills the process there.
KILLED_RUN = """
import sys, time
from affecttrack.training import trainer
save = trainer.SaveLast.on_validation_end
def save_then_wait(self, trainer_, module):
    save(self, trainer_, module)
    if not trainer_.sanity_checking:
        time.sleep(600)
trainer.SaveLast.on_validation_end = save_then_wait
from affecttrack.cli import main
main()
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> FaceStore:
    """Small enough for a few cheap steps of the frame model."""
    return write_face_store(tmp_path_factory.mktemp("store"), frames=FRAMES_PER_VIDEO)


@pytest.fixture(scope="module")
def sequence_data(tmp_path_factory) -> tuple[FaceStore, FeatureStore]:
    """Videos long enough for the sequence model's windows, and their features."""
    store = write_face_store(tmp_path_factory.mktemp("long_store"))
    return store, FeatureStore.open(write_feature_store(store, tmp_path_factory.mktemp("feat")))


def _sets(section: str, settings: dict) -> list[str]:
    return [arg for key, value in settings.items()
            for arg in ("--set", f"{section}.{key}={value}")]


def _start(args: list[str], out: Path) -> subprocess.Popen:
    """`affecttrack ARGS --out OUT` in a subprocess that stops still after its first checkpoint."""
    return subprocess.Popen([sys.executable, "-c", KILLED_RUN, *args, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_after_first_checkpoint(process: subprocess.Popen, out: Path) -> int:
    """SIGKILL `process` once `out` has its first checkpoint; returns its exit status."""
    last = out / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.is_file():
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "no checkpoint within two minutes"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    return process.wait()


def _assert_same_run(resumed: TrainResult, whole: TrainResult) -> None:
    """Same steps, best score, exported model and final weights (last.ckpt)."""
    assert resumed.global_step == whole.global_step
    assert resumed.best_score == pytest.approx(whole.best_score, abs=1e-6)
    for a, b in ((resumed.model_path, whole.model_path),
                 (resumed.out_dir / "checkpoints" / "last.ckpt",
                  whole.out_dir / "checkpoints" / "last.ckpt")):
        got = torch.load(a, map_location="cpu", weights_only=True)["state_dict"]
        expected = torch.load(b, map_location="cpu", weights_only=True)["state_dict"]
        assert got.keys() == expected.keys()
        for name in expected:
            torch.testing.assert_close(got[name], expected[name], msg=name)


def _checkpoint_step(out: Path) -> int:
    return torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]


@pytest.mark.slow
def test_killed_runs_resume_to_the_weights_of_uninterrupted_ones(store, sequence_data,
                                                                 tmp_path) -> None:
    long_store, features = sequence_data
    frame_args = ["train", "frame", "--store", str(store.path), *_sets("frame", FRAME)]
    sequence_args = ["train", "sequence", "--store", str(long_store.path), "--features",
                     str(features.path), *_sets("sequence", SEQUENCE)]
    runs = {tmp_path / "frame": frame_args, tmp_path / "sequence": sequence_args}
    processes = {out: _start(args, out) for out, args in runs.items()}    # both at once
    for out, process in processes.items():
        assert _kill_after_first_checkpoint(process, out) == -signal.SIGKILL
        assert not (out / "done.json").exists()
    assert _checkpoint_step(tmp_path / "frame") == 2          # mid-epoch
    assert _checkpoint_step(tmp_path / "sequence") == 2       # between epochs

    frame_config = FrameTrainConfig(**FRAME)
    assert frame_config.augment
    resumed = train_frame_model(store, tmp_path / "frame", frame_config, progress=False)
    whole = train_frame_model(store, tmp_path / "frame_whole", frame_config, progress=False)
    _assert_same_run(resumed, whole)

    sequence_config = SequenceTrainConfig(**SEQUENCE)
    resumed = train_sequence_model(long_store, features, tmp_path / "sequence", sequence_config,
                                   progress=False)
    whole = train_sequence_model(long_store, features, tmp_path / "sequence_whole",
                                 sequence_config, progress=False)
    _assert_same_run(resumed, whole)


@pytest.mark.parametrize("check_every", [2, pytest.param(None, marks=pytest.mark.slow)],
                         ids=["mid_epoch", "epoch_end"])
def test_a_run_continued_from_its_checkpoint_ends_as_one_left_alone(store, tmp_path,
                                                                    check_every) -> None:
    """The same in one process: the first session stops at its checkpoint, the second goes on
    with generators that the first session's end left elsewhere."""
    config = FrameTrainConfig(**{**FRAME, "val_check_interval": check_every})
    first = train_frame_model(store, tmp_path / "run",
                              FrameTrainConfig(**{**FRAME, "val_check_interval": check_every,
                                                  "max_steps": 2 if check_every else 3}),
                              progress=False)
    assert first.global_step == (2 if check_every else 3)
    (tmp_path / "run" / "done.json").unlink()
    torch.rand(5)                                  # whatever the process drew in between
    resumed = train_frame_model(store, tmp_path / "run", config, progress=False)
    whole = train_frame_model(store, tmp_path / "whole", config, progress=False)
    _assert_same_run(resumed, whole)


def _unfinished_run(store, out: Path) -> Path:
    """A frame run in `out` that stopped after its checkpoint; returns its last.ckpt."""
    train_frame_model(store, out, FrameTrainConfig(**{**FRAME, "max_steps": 2}), progress=False)
    (out / "done.json").unlink()
    (out / "frame_model.pt").unlink()
    return out / "checkpoints" / "last.ckpt"


def test_a_damaged_checkpoint_is_one_line_and_restart_starts_over(store, tmp_path,
                                                                   monkeypatch, capsys) -> None:
    out = tmp_path / "run"
    last = _unfinished_run(store, out)
    data = last.read_bytes()
    args = ["train", "frame", "--store", str(store.path), "--out", str(out),
            *_sets("frame", FRAME)]
    for damaged, problem in ((data[: len(data) // 2], "truncated or corrupt"), (b"", "empty")):
        last.write_bytes(damaged)
        code, stdout, err = run_cli(monkeypatch, capsys, *args)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert f"{last}: unreadable checkpoint ({problem}" in err and "--restart" in err
    with pytest.raises(AffectTrackError, match="unreadable checkpoint"):
        train_frame_model(store, out, FrameTrainConfig(**FRAME), progress=False)
    code, stdout, err = run_cli(monkeypatch, capsys, *args, "--restart")
    assert code == 0, err
    result = TrainResult.read(out)
    assert result is not None and result.global_step == FRAME["max_steps"]
    assert not (out / "csv" / "version_1").exists()       # the discarded run's logs went too


def test_a_checkpoint_without_the_data_position_is_refused(store, tmp_path) -> None:
    last = _unfinished_run(store, tmp_path / "run")
    state = torch.load(last, weights_only=True)
    del state["loops"]["fit_loop"]["state_dict"]["combined_loader"]   # as affecttrack 0.x saved
    torch.save(state, last)
    with pytest.raises(AffectTrackError, match=r"last\.ckpt: checkpoint of an older affecttrack.*"
                                               r"cannot resume exactly.*--restart"):
        train_frame_model(store, tmp_path / "run", FrameTrainConfig(**FRAME), progress=False)
    result = train_frame_model(store, tmp_path / "run", FrameTrainConfig(**FRAME),
                               progress=False, restart=True)
    assert result.global_step == FRAME["max_steps"]


def test_restart_of_a_pipeline_discards_only_unfinished_training(store, tmp_path) -> None:
    finished = train_frame_model(store, tmp_path / "a" / "frame",
                                 FrameTrainConfig(**{**FRAME, "max_steps": 1}), progress=False)
    _unfinished_run(store, tmp_path / "b" / "model")
    (tmp_path / "data" / "checkpoints").mkdir(parents=True)    # not a training run
    (tmp_path / "data" / "checkpoints" / "x.ckpt").write_text("")
    assert discard_unfinished_runs(tmp_path) == [tmp_path / "b" / "model"]
    assert not (tmp_path / "b" / "model" / "checkpoints").exists()
    assert not (tmp_path / "b" / "model" / "csv").exists()
    assert finished.checkpoint.is_file() and (tmp_path / "data" / "checkpoints").is_dir()


@pytest.mark.parametrize("command", ["run", "demo"])
def test_pipelines_offer_restart(monkeypatch, capsys, command) -> None:
    code, stdout, _ = run_cli(monkeypatch, capsys, command, "--help")
    assert code == 0 and "--restart" in stdout


def test_a_non_finite_loss_stops_training_without_a_model(store, tmp_path, monkeypatch,
                                                          capsys) -> None:
    """lr 1e12 makes the training loss nan at once; lr 1e6 keeps it finite (1 - CCC saturates)
    but leaves only non-finite validation scores: neither run may leave a model behind."""
    diverging = {**FRAME, "optimizer": "sgd", "warmup_steps": 0, "max_steps": 4}
    for lr, message in (
            (1e12, "the training loss is nan at step 2, so training stopped without writing a "
                   "model"),
            (1e6, "the best validation val/ccc is -inf: the weights diverged, so no model was "
                  "written")):
        out = tmp_path / f"lr{lr:g}"
        code, _, err = run_cli(monkeypatch, capsys, "train", "frame", "--store", str(store.path),
                               "--out", str(out), *_sets("frame", {**diverging, "lr": lr}))
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert f"{out}: {message}" in err and "--restart" in err
        assert not (out / "done.json").exists() and not (out / "frame_model.pt").exists()
    with pytest.raises(AffectTrackError, match="training loss is nan"):
        train_frame_model(store, tmp_path / "api", FrameTrainConfig(**{**diverging, "lr": 1e12}),
                          progress=False)


def test_the_resumable_shuffle_draws_the_batches_of_a_plain_shuffle() -> None:
    """Seeded runs keep their batches: the same per-epoch draws from torch's generator."""
    from torch.utils.data import RandomSampler

    from affecttrack.training.resume import ShuffleSampler
    data = range(23)
    torch.manual_seed(5)
    plain = [list(RandomSampler(data)) for _ in range(3)]
    torch.manual_seed(5)
    sampler = ShuffleSampler(data)
    resumable = [list(sampler) for _ in range(3)]
    assert resumable == plain
    sampler.resume(sampler.epoch_seed, 10)
    assert list(sampler) == plain[2][10:]          # the rest of the epoch, as it was


def test_augmentations_continue_from_a_saved_state() -> None:
    import numpy as np

    from affecttrack.data.augment import (
        augmentation_state,
        set_augmentation_state,
        training_augmentation,
    )
    face = np.random.default_rng(0).integers(0, 255, (96, 96), dtype=np.uint8)
    running = training_augmentation(seed=3)
    running(image=face)
    state = augmentation_state(running)
    expected = [running(image=face)["image"] for _ in range(3)]
    restored = training_augmentation(seed=99)
    set_augmentation_state(restored, state)
    for image in expected:
        np.testing.assert_array_equal(restored(image=face)["image"], image)
