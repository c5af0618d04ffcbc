"""Figures for the report: label density before/after balancing, predicted vs true curves
(written through `affecttrack.figures`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from affecttrack.data.balance import BINS, va_histogram
from affecttrack.errors import AffectTrackError
from affecttrack.evaluation.evaluate import align_predictions, labelled_frames
from affecttrack.figures import save_figure


def _finite_pair(values: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    valence, arousal = (np.asarray(v, dtype=np.float64) for v in values)
    keep = np.isfinite(valence) & np.isfinite(arousal)
    return valence[keep], arousal[keep]


def plot_va_density(before: tuple[np.ndarray, np.ndarray], after: tuple[np.ndarray, np.ndarray],
                    path: Path) -> Path:
    """Training frames on the 40 x 40 valence/arousal grid before and after balancing (Fig. 3).

    Both panels share one logarithmic colour scale so that the thinning of crowded cells is visible;
    empty cells are left blank.
    """
    (v_before, a_before), (v_after, a_after) = _finite_pair(before), _finite_pair(after)
    if v_before.size == 0:
        raise AffectTrackError("plot_va_density: no labelled frames before balancing to plot")
    counts = [va_histogram(v_before, a_before), va_histogram(v_after, a_after)]
    norm = LogNorm(vmin=1, vmax=max(2, int(counts[0].max()), int(counts[1].max())))
    edges = np.linspace(-1, 1, BINS + 1)
    fig = Figure(figsize=(11, 4.8), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    titles = (f"before balancing: {v_before.size:,} frames",
              f"after balancing: {v_after.size:,} frames ({v_after.size / v_before.size:.0%})")
    for ax, grid, title in zip(axes, counts, titles):
        mesh = ax.pcolormesh(edges, edges, np.ma.masked_equal(grid.T, 0), norm=norm,
                             cmap="viridis")
        ax.axhline(0, color="grey", linewidth=0.5)
        ax.axvline(0, color="grey", linewidth=0.5)
        ax.set(title=title, xlabel="valence", xlim=(-1, 1), ylim=(-1, 1), aspect="equal")
    axes[0].set_ylabel("arousal")
    fig.colorbar(mesh, ax=axes, label="frames per cell (log scale)", shrink=0.9)
    fig.suptitle(f"Training labels in valence/arousal space ({BINS} x {BINS} cells)")
    return save_figure(fig, path)


def _on_frame_axis(aligned: pd.DataFrame) -> pd.DataFrame:
    """One row per frame of the video's span, NaN where unlabelled, so lines break at gaps."""
    frames = aligned["frame"].to_numpy()
    return aligned.set_index("frame").reindex(np.arange(frames.min(), frames.max() + 1))


def plot_prediction_curves(index: pd.DataFrame, predictions: dict[str, pd.DataFrame],
                           videos: Sequence[str], path: Path) -> Path:
    """Predicted and true valence/arousal over the frames of a few videos.

    One row per video (valence left, arousal right), the labels in black and one line per model.
    Predictions are shown as evaluated: frames without a prediction are interpolated.
    """
    if not videos:
        raise AffectTrackError("plot_prediction_curves: no videos to plot")
    labelled = labelled_frames(index, split=None)
    unknown = sorted(set(videos) - set(labelled["video"]))
    if unknown:
        raise AffectTrackError(f"plot_prediction_curves: no valence/arousal labels for video(s) "
                               f"{', '.join(unknown)}")
    fig = Figure(figsize=(12, 2.7 * len(videos) + 0.8), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(videos), 2, sharey=True))
    for row, video in enumerate(videos):
        truth = labelled[labelled["video"] == video]
        for name, pred in predictions.items():
            aligned = _on_frame_axis(align_predictions(truth, pred, name))
            for column, dimension in enumerate(("valence", "arousal")):
                axes[row, column].plot(aligned.index, aligned[f"{dimension}_pred"], linewidth=1.0,
                                       label=name)
        truth_axis = _on_frame_axis(truth)
        for column, dimension in enumerate(("valence", "arousal")):
            ax = axes[row, column]
            ax.plot(truth_axis.index, truth_axis[dimension], color="black", linewidth=1.6,
                    label="ground truth")
            ax.set(title=f"{video}: {dimension}", ylabel=dimension, ylim=(-1.05, 1.05))
            ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("frame")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels))
    fig.suptitle("Predicted vs true valence and arousal")
    return save_figure(fig, path)
