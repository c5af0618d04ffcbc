"""CCC as the paper defines it (population statistics), usable as a loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from affecttrack.models.losses import ccc, ccc_loss, mse_loss


def numpy_ccc(x: np.ndarray, y: np.ndarray) -> float:
    """DESIGN's formula: 2 cov / (var x + var y + (mean x - mean y)^2), population statistics."""
    cov = np.mean((x - x.mean()) * (y - y.mean()))
    return 2 * cov / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)


finite = st.floats(-1, 1, allow_nan=False, width=32)
pairs = st.integers(3, 40).flatmap(
    lambda n: st.tuples(arrays(np.float32, (n, 2), elements=finite),
                        arrays(np.float32, (n, 2), elements=finite)))


def test_ccc_matches_the_formula() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 2))
    y = 0.5 * x + rng.normal(scale=0.3, size=(50, 2)) + 0.2
    got = ccc(torch.tensor(x), torch.tensor(y)).numpy()
    np.testing.assert_allclose(got, [numpy_ccc(x[:, k], y[:, k]) for k in range(2)], rtol=1e-5)
    assert ccc(torch.tensor(x[:, 0]), torch.tensor(y[:, 0])).ndim == 0


def test_ccc_of_identical_series_is_one_and_of_mirrored_centred_is_minus_one() -> None:
    x = torch.linspace(-1, 1, 20).reshape(10, 2)
    x = x - x.mean(dim=0)
    torch.testing.assert_close(ccc(x, x), torch.ones(2))
    torch.testing.assert_close(ccc(x, -x), -torch.ones(2))
    assert ccc_loss(x, x).item() == pytest.approx(0.0, abs=1e-6)


def test_ccc_penalises_offset_and_scale_unlike_correlation() -> None:
    x = torch.linspace(-1, 1, 30)
    assert ccc(x + 0.5, x) < 0.9
    assert ccc(0.2 * x, x) < 0.5


@settings(max_examples=60, deadline=None)
@given(pairs)
def test_ccc_is_symmetric_and_bounded(pair) -> None:
    x, y = (torch.tensor(a) for a in pair)
    forward, backward = ccc(x, y), ccc(y, x)
    torch.testing.assert_close(forward, backward)
    assert torch.all(forward <= 1 + 1e-5) and torch.all(forward >= -1 - 1e-5)


def test_ccc_loss_is_differentiable_and_folds_sequence_steps() -> None:
    pred = torch.randn(4, 7, 2, requires_grad=True)
    target = torch.randn(4, 7, 2)
    loss = ccc_loss(pred, target)
    loss.backward()
    assert torch.isfinite(pred.grad).all()
    flat = ccc_loss(pred.detach().reshape(-1, 2), target.reshape(-1, 2))
    torch.testing.assert_close(loss.detach(), flat)


def test_ccc_rejects_mismatched_shapes_and_mse() -> None:
    with pytest.raises(ValueError, match="shape"):
        ccc(torch.zeros(3, 2), torch.zeros(4, 2))
    assert mse_loss(torch.ones(3, 2), torch.zeros(3, 2)).item() == pytest.approx(1.0)
    bf16 = torch.zeros(3, 2, dtype=torch.bfloat16)
    assert ccc_loss(bf16, torch.randn(3, 2)).dtype == torch.float32
