"""Moving-average baseline: windows count frames, videos stay apart, causal never looks ahead."""

import numpy as np
import pandas as pd
import pytest

from affecttrack.errors import AffectTrackError
from affecttrack.predictions.smoothing import moving_average


def table(video, frames, valence, arousal=None):
    frames = np.asarray(frames)
    valence = np.asarray(valence, dtype=float)
    arousal = valence if arousal is None else np.asarray(arousal, dtype=float)
    return pd.DataFrame({"video": video, "frame": frames, "valence": valence, "arousal": arousal})


def test_linear_trend_survives_a_centred_window_across_gaps():
    # Frames 11-19 and 40-44 have no face: counting rows instead of frames would bend the ramp.
    frames = np.r_[1:11, 20:40, 45:80]
    pred = table("a", frames, frames / 100, -frames / 200)
    smoothed = moving_average(pred, window=7)
    interior = (smoothed["frame"] > 3) & (smoothed["frame"] < 77)
    np.testing.assert_allclose(smoothed.loc[interior, "valence"], frames[interior] / 100, atol=1e-6)
    np.testing.assert_allclose(smoothed.loc[interior, "arousal"], -frames[interior] / 200,
                               atol=1e-6)


def test_centred_window_spreads_a_spike_symmetrically():
    values = np.zeros(41)
    values[20] = 15.0
    smoothed = moving_average(table("a", np.arange(1, 42), values), window=15)
    expected = np.where(np.abs(np.arange(41) - 20) <= 7, 1.0, 0.0)
    np.testing.assert_allclose(smoothed["valence"], expected, atol=1e-6)


def test_causal_window_only_spreads_forward_and_lags_a_ramp():
    values = np.zeros(41)
    values[20] = 15.0
    smoothed = moving_average(table("a", np.arange(1, 42), values), window=15, causal=True)
    expected = np.where((np.arange(41) >= 20) & (np.arange(41) < 35), 1.0, 0.0)
    np.testing.assert_allclose(smoothed["valence"], expected, atol=1e-12)

    ramp = np.arange(1, 61)
    lagged = moving_average(table("a", ramp, ramp / 60), window=5, causal=True)
    np.testing.assert_allclose(lagged["valence"].to_numpy()[4:], (ramp[4:] - 2) / 60, atol=1e-12)


def test_causal_result_does_not_depend_on_future_frames():
    rng = np.random.default_rng(0)
    frames = np.r_[1:30, 34:60]
    values = rng.uniform(-1, 1, frames.size)
    changed = values.copy()
    changed[frames > 40] = 0.9
    past = frames <= 40
    first = moving_average(table("a", frames, values), window=9, causal=True)
    second = moving_average(table("a", frames, changed), window=9, causal=True)
    np.testing.assert_array_equal(first["valence"].to_numpy()[past],
                                  second["valence"].to_numpy()[past])


def test_causal_fills_gaps_by_holding_the_last_prediction():
    pred = table("a", np.r_[1:6, 11:16], np.r_[np.zeros(5), np.ones(5)])
    smoothed = moving_average(pred, window=3, causal=True).set_index("frame")["valence"]
    assert smoothed[11] == pytest.approx(1 / 3)
    assert smoothed[12] == pytest.approx(2 / 3)


def test_videos_are_smoothed_separately_and_rows_are_kept():
    pred = pd.concat([table("b", np.arange(1, 21), np.full(20, 0.5)),
                      table("a", np.r_[1:5, 9:21], np.full(16, -0.5))])
    smoothed = moving_average(pred, window=5)
    assert list(smoothed.columns) == ["video", "frame", "valence", "arousal"]
    assert len(smoothed) == len(pred)
    assert list(smoothed["video"].unique()) == ["a", "b"]
    assert smoothed.loc[smoothed["video"] == "a", "frame"].tolist() == list(np.r_[1:5, 9:21])
    np.testing.assert_allclose(smoothed.loc[smoothed["video"] == "a", "valence"], -0.5)
    np.testing.assert_allclose(smoothed.loc[smoothed["video"] == "b", "arousal"], 0.5)


def test_window_of_one_frame_changes_nothing():
    rng = np.random.default_rng(1)
    pred = table("a", np.arange(1, 31), rng.uniform(-1, 1, 30), rng.uniform(-1, 1, 30))
    for causal in (False, True):
        smoothed = moving_average(pred, window=1, causal=causal)
        np.testing.assert_allclose(smoothed[["valence", "arousal"]], pred[["valence", "arousal"]],
                                   atol=1e-6)


@pytest.mark.parametrize("pred, kwargs, message", [
    (table("a", [1, 2, 3], [0.1, 0.2, 0.3]), {"window": 4}, "odd"),
    (table("a", [1, 2, 3], [0.1, 0.2, 0.3]), {"window": 0}, ">= 1"),
    (table("a", [1, 2, 2], [0.1, 0.2, 0.3]), {"window": 3}, "frame 2"),
    (table("a", [1, 2, 3], [0.1, 0.2, 0.3]).drop(columns="arousal"), {"window": 3}, "arousal"),
])
def test_bad_input_is_a_clear_error(pred, kwargs, message):
    with pytest.raises(AffectTrackError, match=message):
        moving_average(pred, **kwargs)
