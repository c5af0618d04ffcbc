"""The command line: one clear line for user errors, and the demo end to end on tiny data."""

import json

import pytest
from cli_runner import run_cli


def test_help_lists_every_stage(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "--help")
    assert code == 0
    for command in ("synth", "prepare", "train", "extract", "evaluate", "demo", "models"):
        assert command in out


def test_missing_dataset_root_is_one_line_naming_it(monkeypatch, capsys, tmp_path):
    missing = tmp_path / "no-such-root"
    code, _, err = run_cli(monkeypatch, capsys, "prepare", "affwild2", "--root", str(missing),
                           "--out", str(tmp_path / "store"))
    assert code == 2
    assert err.count("\n") == 1 and str(missing) in err and "Traceback" not in err


def test_missing_annotation_folder_is_one_line_naming_it(monkeypatch, capsys, tmp_path):
    root = tmp_path / "affwild2"
    (root / "cropped_aligned" / "video1").mkdir(parents=True)
    code, _, err = run_cli(monkeypatch, capsys, "prepare", "affwild2", "--root", str(root),
                           "--out", str(tmp_path / "store"))
    assert code == 2
    assert err.count("\n") == 1 and "annotations" in err


def test_unknown_config_field_is_reported(monkeypatch, capsys, tmp_path):
    code, _, err = run_cli(monkeypatch, capsys, "train", "frame", "--store", str(tmp_path),
                           "--out", str(tmp_path / "run"), "--set", "frame.learning_rate=0.1")
    assert code == 2
    assert "learning_rate" in err and err.count("\n") == 1


def test_models_lists_the_paper_configurations(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "models")
    assert code == 0
    for name in ("cnn_va", "rnn1", "gru1", "gru3"):
        assert name in out


TINY_DEMO = ["synth.train_videos=4", "synth.val_videos=2", "synth.frames_per_video=150",
             "synth.full_frame_videos=1", "frame.max_steps=12", "frame.max_time_s=null",
             "frame.val_check_interval=6", "sequence.max_steps=8", "sequence.max_time_s=null",
             "sequence.stride=25"]


@pytest.mark.slow
def test_demo_runs_end_to_end_and_resumes(monkeypatch, capsys, tmp_path):
    out = tmp_path / "demo"
    overrides = [arg for item in TINY_DEMO for arg in ("--set", item)]
    code = _demo(monkeypatch, capsys, out, overrides)
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for model in ("frame_model", "frame_model_smoothed", "sequence_model"):
        for dim in ("valence", "arousal"):
            assert set(metrics[model][dim]) >= {"ccc", "pcc", "rmse"}
    for name in ("table.md", "va_density.png", "curves.png", "timings.json"):
        assert (out / name).is_file(), name
    frame_model = out / "frame" / "frame_model.pt"
    trained_at = frame_model.stat().st_mtime_ns
    assert _demo(monkeypatch, capsys, out, overrides) == 0
    assert frame_model.stat().st_mtime_ns == trained_at, "a finished stage was redone"


def _demo(monkeypatch, capsys, out, overrides) -> int:
    return run_cli(monkeypatch, capsys, "demo", "--out", str(out), *overrides)[0]
