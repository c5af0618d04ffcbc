"""The timeline of one face in a video: valence and arousal over time above a band of colours that
shows the expression of each frame.

Each expression keeps one colour whatever model or dataset named it (Happiness is always the same
yellow), so timelines of different videos and models can be compared at a glance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from affecttrack.figures import expression_colours, save_figure


def _time_axis(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, str]:
    """Every frame of the table, its x position (seconds, or the frame number when times are
    unknown or not increasing) and the axis label."""
    times = pd.DataFrame(table).groupby("frame")["time_s"].first()
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


def plot_timeline(table: pd.DataFrame, rows: pd.DataFrame, labels: tuple[str, ...], title: str,
                  path: Path | None = None) -> Figure:
    """Valence and arousal of one face (its `rows` of a video's prediction `table`, which gives
    the time axis) over time, y from -1 to 1, lines broken where the face is not seen, above the
    per-frame expression band of `labels`; saved when `path`."""
    frames, x, x_label = _time_axis(table)
    edges = _edges(x)
    track = pd.DataFrame(rows).set_index("frame").reindex(frames)
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
    fig.suptitle(title)
    if path is not None:
        save_figure(fig, path)
    return fig
