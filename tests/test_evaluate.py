"""Evaluation scores every labelled frame of the split, pooled, and writes a readable report."""

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from affecttrack.errors import AffectTrackError
from affecttrack.evaluation.evaluate import (
    align_predictions,
    evaluate_predictions,
    labelled_frames,
)
from affecttrack.evaluation.metrics import va_metrics
from affecttrack.evaluation.report import write_evaluation
from affecttrack.evaluation.tables import PAPER_SOURCE, metrics_table


def video_rows(video, split, n, seed):
    """One video's index rows: wavy labels, frames 5-7 without a face, frames 9-10 unlabelled."""
    rng = np.random.default_rng(seed)
    frames = np.arange(1, n + 1)
    valence = np.sin(frames / 4 + rng.uniform(0, 3)) * 0.6
    arousal = np.cos(frames / 3 + rng.uniform(0, 3)) * 0.4
    valence[8:10] = np.nan
    arousal[8:10] = np.nan
    rows = np.where((frames >= 5) & (frames <= 7), -1, frames)
    return pd.DataFrame({"video": video, "frame": frames.astype(np.int32), "row": rows,
                         "split": split, "valence": valence.astype(np.float32),
                         "arousal": arousal.astype(np.float32), "expression": -1,
                         "subject": video})


@pytest.fixture
def index():
    return pd.concat([video_rows("v1", "val", 30, 1), video_rows("v2", "val", 20, 2),
                      video_rows("t1", "train", 25, 3)], ignore_index=True)


def perfect(index, split="val"):
    """Exact predictions for every labelled frame that has a face."""
    chosen = index[(index["split"] == split) & (index["row"] >= 0) & index["valence"].notna()]
    return chosen[["video", "frame", "valence", "arousal"]].reset_index(drop=True)


def test_perfect_predictions_score_one_on_all_labelled_frames(index):
    metrics = evaluate_predictions(index, {"model": perfect(index)})["model"]
    assert metrics["n_frames"] == 46
    assert metrics["n_videos"] == 2
    assert metrics["n_interpolated"] == 6
    truth = labelled_frames(index, "val")
    assert len(truth) == 46 and truth["valence"].notna().all()
    # The no-face frames are interpolated, so the score is just below 1, not 1 on a subset.
    assert 0.9 < metrics["valence"]["ccc"] < 1.0

    with_faces_everywhere = index[(index["split"] == "val") & index["valence"].notna()]
    exact = with_faces_everywhere[["video", "frame", "valence", "arousal"]]
    metrics = evaluate_predictions(index, {"model": exact})["model"]
    assert metrics["valence"]["ccc"] == 1.0 and metrics["arousal"]["ccc"] == 1.0
    assert metrics["n_interpolated"] == 0


def test_missing_frames_are_interpolated_linearly_and_counted():
    truth = pd.DataFrame({"video": "v", "frame": np.arange(1, 8), "valence": 0.0, "arousal": 0.0})
    pred = pd.DataFrame({"video": "v", "frame": [2, 6], "valence": [0.0, 0.4],
                         "arousal": [0.2, -0.2]})
    aligned = align_predictions(truth, pred)
    np.testing.assert_allclose(aligned["valence_pred"], [0.0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.4],
                               atol=1e-6)
    np.testing.assert_allclose(aligned["arousal_pred"], [0.2, 0.2, 0.1, 0.0, -0.1, -0.2, -0.2],
                               atol=1e-6)
    assert aligned["interpolated"].tolist() == [True, False, True, True, True, False, True]


def test_metrics_pool_frames_over_videos_and_ignore_other_splits(index):
    rng = np.random.default_rng(0)
    pred = perfect(index)
    pred[["valence", "arousal"]] += rng.normal(0, 0.2, (len(pred), 2))
    pred_with_train = pd.concat([pred, perfect(index, "train").assign(valence=-1.0)])
    metrics = evaluate_predictions(index, {"a": pred, "b": pred_with_train})
    aligned = align_predictions(labelled_frames(index, "val"), pred)
    pooled = va_metrics(aligned[["valence_true", "arousal_true"]].to_numpy(),
                        aligned[["valence_pred", "arousal_pred"]].to_numpy())
    assert metrics["a"]["valence"] == pytest.approx(pooled["valence"])
    assert metrics["a"]["mean_ccc"] == pytest.approx(pooled["mean_ccc"])
    assert metrics["b"] == metrics["a"]


def test_a_labelled_video_without_predictions_is_an_error_naming_it(index):
    pred = perfect(index)
    with pytest.raises(AffectTrackError, match=r"frame_model.*v2"):
        evaluate_predictions(index, {"frame_model": pred[pred["video"] != "v2"]})


def test_a_split_without_labels_is_an_error(index):
    with pytest.raises(AffectTrackError, match="test"):
        evaluate_predictions(index, {"model": perfect(index)}, split="test")


def test_table_lists_models_and_labels_the_paper_rows():
    metrics = {"frame_model": va_metrics(np.array([[0.1, 0.2], [0.3, -0.1], [0.5, 0.4]]),
                                         np.array([[0.2, 0.1], [0.3, 0.0], [0.4, 0.5]]))}
    metrics["frame_model"].update(n_frames=3, n_interpolated=1)
    text = metrics_table(metrics)
    lines = text.splitlines()
    assert lines[0].startswith("| model | source | CCC valence | CCC arousal | mean CCC")
    ours = next(line for line in lines if line.startswith("| frame_model "))
    assert f"{metrics['frame_model']['valence']['ccc']:.3f}" in ours and "3 (1)" in ours
    gru3 = next(line for line in lines if "CNN + GRU 3 layers" in line)
    assert PAPER_SOURCE in gru3 and "| 0.23 | 0.39 |" in gru3
    assert "not results of this run" in text
    assert "GRU" not in metrics_table(metrics, reference_rows=False)


def test_write_evaluation_writes_metrics_table_and_figures(index, tmp_path):
    rng = np.random.default_rng(4)
    frame_model = perfect(index)
    frame_model[["valence", "arousal"]] += rng.normal(0, 0.1, (len(frame_model), 2))
    predictions = {"frame_model": frame_model, "sequence_model": perfect(index)}
    train = index[index["split"] == "train"].dropna(subset=["valence"])
    before = (train["valence"].to_numpy(), train["arousal"].to_numpy())
    after = (before[0][::2], before[1][::2])

    metrics = write_evaluation(tmp_path, index, predictions, balance_before_after=(before, after))

    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert list(saved) == ["frame_model", "sequence_model"]
    assert saved["sequence_model"]["valence"]["ccc"] == pytest.approx(
        metrics["sequence_model"]["valence"]["ccc"])
    assert "| sequence_model |" in (tmp_path / "table.md").read_text()
    for name in ("curves.png", "va_density.png"):
        image = imread(tmp_path / name)
        assert image.ndim == 3 and image.shape[0] > 200 and image.std() > 0
    assert not list(tmp_path.glob("*.tmp"))


def test_curves_reject_unknown_videos(index, tmp_path):
    with pytest.raises(AffectTrackError, match="nope"):
        write_evaluation(tmp_path, index, {"m": perfect(index)}, curve_videos=["v1", "nope"])
