"""Which past frames drive the sequence network's current prediction.

Integrated Gradients (captum) of the output at the last step of a window with respect to the
300-d features of every step, summed |.| over the features: one importance per frame. The baseline
is the sequence network's `input_mean` (the training set's mean feature, zeros for a network that
was never standardised): a frame's importance is how much the output changes when that frame is
replaced by an average one, and the importances of all frames, signed, add up to the output's
change when the whole window is. Plain gradient x input would instead measure each frame against
an all-zero feature vector, which no face produces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from captum.attr import IntegratedGradients
from matplotlib.figure import Figure
from torch import nn

from affecttrack.errors import AffectTrackError
from affecttrack.figures import save_figure


def temporal_importance(model: nn.Module, features: np.ndarray, output: int = 0, *,
                        baseline: np.ndarray | None = None, n_steps: int = 32) -> np.ndarray:
    """(T,) importance of each step of a (T, F) window for output `output` at its last step.

    `model` maps (B, T, F) to (B, T, outputs) (`SequenceRNN`); `baseline` is one (F,) feature
    vector standing for "an average frame" (default: the model's `input_mean`, else zeros).
    """
    x = torch.as_tensor(np.asarray(features, dtype=np.float32))[None]
    if x.ndim != 3 or x.shape[1] == 0:
        raise AffectTrackError(f"a window must be (T, F) features with T >= 1, got "
                               f"{tuple(np.shape(features))}")
    reference = _baseline(model, baseline, x.shape[-1]).expand_as(x).contiguous()
    attributions = IntegratedGradients(lambda s: model(s)[:, -1, :]).attribute(
        x, baselines=reference, target=output, n_steps=n_steps)
    return attributions[0].abs().sum(dim=-1).detach().numpy()


def _baseline(model: nn.Module, baseline: np.ndarray | None, width: int) -> torch.Tensor:
    if baseline is not None:
        return torch.as_tensor(np.asarray(baseline, dtype=np.float32)).reshape(1, 1, width)
    mean = getattr(model, "input_mean", None)
    if isinstance(mean, torch.Tensor):
        return mean.detach().float().reshape(1, 1, width)
    return torch.zeros(1, 1, width)


def plot_temporal_importance(frames: np.ndarray, importance: np.ndarray, title: str,
                             path: Path) -> Path:
    """Bars of each frame's importance, the explained (last) frame highlighted."""
    frames = np.asarray(frames)
    share = np.asarray(importance, dtype=np.float64) / max(float(np.sum(importance)), 1e-12)
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    ax = fig.subplots()
    colours = ["tab:blue"] * (len(frames) - 1) + ["tab:red"]
    ax.bar(frames, share, width=0.85, color=colours)
    ax.set(xlabel="frame", ylabel="share of |attribution|", title=title,
           xlim=(frames[0] - 0.5, frames[-1] + 0.5))
    ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, path)
