"""Where each expression category lies in the valence/arousal plane, as a figure.

One colour per category (the same as in prediction timelines), a light scatter of the points,
each category's 1-sigma ellipse (the covariance of its points) and its centroid marked and named.
A dense dataset would bury the ellipses under points, so at most `MAX_POINTS` are scattered (a
fixed random subset); ellipses and centroids always use every point.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse

from affecttrack.errors import AffectTrackError
from affecttrack.evaluation.va_mapping import labelled_points
from affecttrack.figures import expression_colours, save_figure

MAX_POINTS = 5000


def _sigma_ellipse(points: np.ndarray, colour: str) -> Ellipse | None:
    """The 1-sigma ellipse of the points' covariance (None for fewer than 2 points)."""
    if len(points) < 2:
        return None
    variances, axes = np.linalg.eigh(np.cov(points, rowvar=False, ddof=0))
    width, height = 2 * np.sqrt(np.clip(variances, 0, None))
    angle = np.degrees(np.arctan2(axes[1, 0], axes[0, 0]))
    return Ellipse(points.mean(axis=0), width, height, angle=angle,
                   facecolor=to_rgba(colour, 0.12), edgecolor=colour, linewidth=1.6, zorder=2)


def _draw_map(ax: Axes, valence: np.ndarray, arousal: np.ndarray, classes: np.ndarray,
              names: Sequence[str], title: str) -> int:
    """One panel: scatter, ellipses and centroids; returns the number of points drawn on."""
    table = labelled_points(valence, arousal, classes, len(names))
    shown = table.sample(min(len(table), MAX_POINTS), random_state=0)
    colours = expression_colours(list(names))
    for k, (name, colour) in enumerate(zip(names, colours)):
        points = table.loc[table["category"] == k, ["valence", "arousal"]].to_numpy()
        if not len(points):
            continue
        scattered = shown.loc[shown["category"] == k]
        ax.scatter(scattered["valence"], scattered["arousal"], s=4, color=colour, alpha=0.25,
                   linewidths=0, rasterized=True)
        ellipse = _sigma_ellipse(points, colour)
        if ellipse is not None:
            ax.add_patch(ellipse)
        centre = points.mean(axis=0)
        ax.scatter(*centre, s=70, color=colour, edgecolor="black", zorder=3,
                   label=f"{name} ({len(points):,})")
        ax.annotate(name, centre, xytext=(5, 5), textcoords="offset points", fontsize=9,
                    weight="bold", zorder=4)
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.axvline(0, color="grey", linewidth=0.6)
    ax.set(xlim=(-1, 1), ylim=(-1, 1), aspect="equal", xlabel="valence", ylabel="arousal",
           title=title)
    ax.grid(alpha=0.2)
    return len(table)


def _figure(panels: int) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(6.4 * panels, 6.2), layout="constrained")
    return fig, list(np.atleast_1d(fig.subplots(1, panels, sharex=True, sharey=True)))


def _finish(fig: Figure, axes: list[Axes], counts: list[int], title: str, path: Path) -> Path:
    if not max(counts):
        raise AffectTrackError(f"{path}: no point with valence, arousal and a category to plot")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize=8, markerscale=0.7)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_category_map(valence: np.ndarray, arousal: np.ndarray, classes: np.ndarray,
                      names: Sequence[str], path: Path, title: str = "") -> Path:
    """The categories of `classes` (indices into `names`, -1 = none) in the valence/arousal
    plane; points with a NaN or class -1 are left out. Written as a PNG at `path`."""
    fig, axes = _figure(1)
    count = _draw_map(axes[0], valence, arousal, classes, names, "")
    return _finish(fig, axes, [count], title or f"Categories in valence/arousal space "
                                                f"({count:,} points)", path)


def plot_category_maps(va_true: np.ndarray, classes_true: np.ndarray, va_pred: np.ndarray,
                       classes_pred: np.ndarray, names: Sequence[str], path: Path,
                       title: str = "") -> Path:
    """Two panels side by side on the same axes: the labels (valence/arousal and category
    annotated) and a model's predictions (its VA head grouped by its expression head), so the
    learned layout of the categories can be compared with the annotated one."""
    fig, axes = _figure(2)
    va_true, va_pred = np.asarray(va_true, np.float64), np.asarray(va_pred, np.float64)
    counts = [_draw_map(axes[0], va_true[:, 0], va_true[:, 1], classes_true, names, "labels"),
              _draw_map(axes[1], va_pred[:, 0], va_pred[:, 1], classes_pred, names,
                        "predictions")]
    return _finish(fig, axes, counts, title or "Categories in valence/arousal space: labels vs "
                                               "predictions", path)
