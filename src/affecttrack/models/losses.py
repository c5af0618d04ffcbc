"""Concordance correlation coefficient as a differentiable loss, and MSE.

CCC rewards getting the scale and offset right as well as the correlation, which is what the
challenges score; training on it directly (1 - CCC) is the paper's main loss. Statistics are
population ones (divide by n), as in the formula and the reference code, and are computed in
float32 even under bf16 autocast: sums over a batch lose too much in bf16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_EPS = 1e-8


def ccc(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CCC per column of (N, K) tensors -> (K,); (N,) tensors -> a scalar.

    Leading dimensions beyond the first are folded into N, so (B, T, K) sequence outputs are scored
    over all their steps. The tiny epsilon only keeps the degenerate case (both inputs constant)
    finite.
    """
    if pred.shape != target.shape:
        raise ValueError(f"ccc: prediction shape {tuple(pred.shape)} != target shape "
                         f"{tuple(target.shape)}")
    squeeze = pred.ndim == 1
    x = pred.float().reshape(-1, 1 if squeeze else pred.shape[-1])
    y = target.float().reshape(x.shape)
    mean_x, mean_y = x.mean(dim=0), y.mean(dim=0)
    var_x = x.var(dim=0, unbiased=False)
    var_y = y.var(dim=0, unbiased=False)
    cov = ((x - mean_x) * (y - mean_y)).mean(dim=0)
    value = 2 * cov / (var_x + var_y + (mean_x - mean_y) ** 2 + _EPS)
    return value[0] if squeeze else value


def ccc_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - mean CCC over the columns (valence, arousal): the paper's main loss."""
    return 1 - ccc(pred, target).mean()


def mse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all values, in float32."""
    return F.mse_loss(pred.float(), target.float())


VA_LOSSES = {"ccc": ccc_loss, "mse": mse_loss}
