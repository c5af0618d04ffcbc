"""CCC, PCC and RMSE follow the paper's formulas, behave like agreement measures, never give NaN."""

import json
import warnings

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from affecttrack.errors import AffectTrackError
from affecttrack.evaluation.metrics import ccc, pcc, rmse, va_metrics
from affecttrack.models.losses import ccc as ccc_loss_statistic

TOL = 1e-9


@st.composite
def series_pair(draw, min_size=2, max_size=60):
    """Two equally long series on a 1/256 grid in [-1, 1]: ties and constants are common."""
    n = draw(st.integers(min_size, max_size))
    grid = st.lists(st.integers(-256, 256), min_size=n, max_size=n)
    return np.array(draw(grid)) / 256, np.array(draw(grid)) / 256


def numpy_ccc(x, y):
    """The design's formula with population statistics, written out."""
    cov = np.mean((x - x.mean()) * (y - y.mean()))
    return 2 * cov / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)


@settings(max_examples=60, deadline=None)
@given(series_pair())
def test_ccc_matches_population_formula(pair):
    x, y = pair
    assume(not np.array_equal(x, y))
    assert ccc(x, y) == pytest.approx(numpy_ccc(x, y), abs=TOL)


@settings(max_examples=60, deadline=None)
@given(series_pair())
def test_pcc_and_rmse_match_numpy(pair):
    x, y = pair
    assume(x.std() > 0 and y.std() > 0)
    assert pcc(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-7)
    assert rmse(x, y) == pytest.approx(np.sqrt(np.mean((x - y) ** 2)), abs=TOL)


@settings(max_examples=40, deadline=None)
@given(series_pair(min_size=1))
def test_identical_series_score_one(pair):
    x, _ = pair
    assert ccc(x, x) == 1.0
    assert pcc(x, x) == 1.0
    assert rmse(x, x) == 0.0


@settings(max_examples=60, deadline=None)
@given(series_pair(min_size=1))
def test_symmetric_bounded_and_ccc_below_abs_pcc(pair):
    x, y = pair
    c, r = ccc(x, y), pcc(x, y)
    assert c == pytest.approx(ccc(y, x), abs=TOL)
    assert r == pytest.approx(pcc(y, x), abs=1e-7)
    assert -1 - TOL <= c <= 1 + TOL
    assert -1 - 1e-7 <= r <= 1 + 1e-7
    assert c <= abs(r) + 1e-7


@settings(max_examples=60, deadline=None)
@given(series_pair(min_size=3), st.integers(1, 200))
def test_shift_away_lowers_ccc_but_not_pcc(pair, step):
    x, y = pair
    assume(x.std() > 0 and y.std() > 0 and abs(np.corrcoef(x, y)[0, 1]) > 1e-3)
    direction = 1.0 if y.mean() >= x.mean() else -1.0
    shifted = y + direction * step / 100
    assert abs(ccc(x, shifted)) < abs(ccc(x, y))
    assert pcc(x, shifted) == pytest.approx(pcc(x, y), abs=1e-7)


def test_constant_series_give_defined_values_without_warnings():
    varying, flat, other_flat = np.array([0.1, 0.5, -0.3, 0.2]), np.full(4, 0.2), np.full(4, -0.4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ccc(varying, flat) == 0.0
        assert pcc(varying, flat) == 0.0
        assert ccc(flat, other_flat) == 0.0
        assert pcc(flat, other_flat) == 0.0
        assert ccc(flat, flat.copy()) == 1.0
        assert pcc(np.array([0.3]), np.array([0.7])) == 0.0


def test_ccc_agrees_with_the_training_loss_statistic():
    rng = np.random.default_rng(3)
    truth = rng.uniform(-1, 1, (500, 2))
    pred = 0.6 * truth + 0.2 + rng.normal(0, 0.3, truth.shape)
    from_loss = ccc_loss_statistic(torch.from_numpy(pred), torch.from_numpy(truth)).numpy()
    metrics = va_metrics(truth, pred)
    assert metrics["valence"]["ccc"] == pytest.approx(from_loss[0], abs=1e-5)
    assert metrics["arousal"]["ccc"] == pytest.approx(from_loss[1], abs=1e-5)


def test_va_metrics_structure_is_plain_json():
    truth = np.array([[0.1, -0.2], [0.4, 0.0], [-0.5, 0.3], [0.2, 0.6]])
    pred = truth * 0.5
    metrics = va_metrics(truth, pred)
    assert set(metrics) == {"valence", "arousal", "mean_ccc"}
    for dimension in ("valence", "arousal"):
        assert set(metrics[dimension]) == {"ccc", "pcc", "rmse"}
        assert all(type(value) is float for value in metrics[dimension].values())
    assert metrics["mean_ccc"] == pytest.approx(
        (metrics["valence"]["ccc"] + metrics["arousal"]["ccc"]) / 2)
    assert metrics["valence"]["pcc"] == pytest.approx(1.0)
    assert metrics["valence"]["ccc"] < 1.0
    json.dumps(metrics, allow_nan=False)


@pytest.mark.parametrize("truth, pred", [
    (np.array([0.1, np.nan, 0.3]), np.array([0.1, 0.2, 0.3])),
    (np.array([0.1, 0.2]), np.array([0.1, 0.2, 0.3])),
    (np.zeros(0), np.zeros(0)),
])
def test_unscorable_series_raise_a_clear_error(truth, pred):
    with pytest.raises(AffectTrackError):
        ccc(truth, pred)


def test_va_metrics_rejects_wrong_shapes():
    with pytest.raises(AffectTrackError, match=r"\(n, 2\)"):
        va_metrics(np.zeros((5, 3)), np.zeros((5, 3)))
