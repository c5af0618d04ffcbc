"""The timeline of one face in a video: valence and arousal over time above a band of colours that
shows the expression of each frame.

Each expression keeps one colour whatever model or dataset named it (Happiness is always the same
yellow), so timelines of different videos and models can be compared at a glance.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from affecttrack.errors import AffectTrackError
from affecttrack.evaluation.plots import save_figure
from affecttrack.labels import canonical_expression

if TYPE_CHECKING:
    from affecttrack.inference.results import FramePredictions

EXPRESSION_COLOURS: dict[str, str] = {
    "Neutral": "#b0b0b0", "Anger": "#d62728", "Contempt": "#8c564b", "Disgust": "#2ca02c",
    "Fear": "#9467bd", "Happiness": "#f2c300", "Sadness": "#1f77b4", "Surprise": "#ff7f0e",
    "Other": "#e377c2"}
# For class names outside the basic expressions, in the order they appear.
_SPARE_COLOURS = ("#17becf", "#bcbd22", "#7f7f7f", "#aec7e8", "#98df8a", "#ff9896", "#c5b0d5",
                  "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5", "#393b79")


def expression_colours(labels: Sequence[str]) -> list[str]:
    """One colour per class: the fixed one of its canonical expression, else a spare one."""
    spare = iter(_SPARE_COLOURS * (1 + len(labels) // len(_SPARE_COLOURS)))
    return [EXPRESSION_COLOURS.get(canonical_expression(name) or "") or next(spare)
            for name in labels]


def _time_axis(predictions: FramePredictions) -> tuple[np.ndarray, np.ndarray, str]:
    """Every frame of the table, its x position (seconds, or the frame number when times are
    unknown or not increasing) and the axis label."""
    times = pd.DataFrame(predictions).groupby("frame")["time_s"].first()
    frames = times.index.to_numpy()
    seconds = times.to_numpy(dtype=np.float64)
    if np.isfinite(seconds).all() and np.all(np.diff(seconds) > 0):
        return frames, seconds, "time (s)"
    return frames, frames.astype(np.float64), "frame"


def _edges(x: np.ndarray) -> np.ndarray:
    """Cell edges around each frame's position, so the band fills the time between frames."""
    step = np.median(np.diff(x)) if x.size > 1 else 1.0
    middles = (x[1:] + x[:-1]) / 2
    return np.concatenate([[x[0] - step / 2], middles, [x[-1] + step / 2]])


def _draw_band(ax, edges: np.ndarray, expressions: pd.Series,
               labels: tuple[str, ...]) -> list[Patch]:
    """The expression band (blank where the face is absent) and its legend entries."""
    codes = pd.Categorical(expressions, categories=list(labels)).codes.astype(np.float64)
    colours = expression_colours(labels)
    band = np.ma.masked_less(codes, 0)[None, :]
    ax.pcolormesh(edges, [0, 1], band, cmap=ListedColormap(colours), vmin=-0.5,
                  vmax=len(labels) - 0.5)
    ax.set(yticks=[], ylabel="expression")
    return [Patch(color=colour, label=name) for name, colour in zip(labels, colours)]


def plot_timeline(predictions: FramePredictions, path: Path | None = None,
                  face: int | None = None) -> Figure:
    """Valence and arousal of `face` (default: the main face) over time, y from -1 to 1, lines
    broken where the face is not seen, above the per-frame expression band; saved when `path`."""
    rows = predictions.main_face() if face is None else predictions.face(face)
    if rows.empty:
        raise AffectTrackError(f"{predictions.source}: no face in the predictions to plot")
    frames, x, x_label = _time_axis(predictions)
    edges = _edges(x)
    track = pd.DataFrame(rows).set_index("frame").reindex(frames)
    labels = predictions.labels
    fig = Figure(figsize=(12, 4.6 if labels else 3.8), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True, height_ratios=[5, 1]) if labels else [fig.subplots()]
    lines = axes[0]
    for dimension in ("valence", "arousal"):
        lines.plot(x, track[dimension].to_numpy(dtype=np.float64), linewidth=1.2,
                   label=dimension)
    lines.axhline(0, color="grey", linewidth=0.5)
    lines.set(ylim=(-1.05, 1.05), ylabel="valence / arousal", xlim=(edges[0], edges[-1]))
    lines.grid(alpha=0.3)
    lines.legend(loc="upper right")
    if labels:
        patches = _draw_band(axes[1], edges, track["expression"], labels)
        fig.legend(handles=patches, loc="outside lower center", ncols=min(len(patches), 9))
    axes[-1].set_xlabel(x_label)
    face_id = int(rows["face_id"].iloc[0])
    fig.suptitle(f"{Path(predictions.source).name or 'predictions'}: face {face_id}")
    if path is not None:
        save_figure(fig, path)
    return fig
