"""Saliency figures: one face with its maps, per-class averages, the first layer's filters.

Maps are drawn over the face in grey; each map is scaled to its own 99th percentile, because
what a reader compares within a map is where it is high, and a few extreme Integrated Gradients
pixels would otherwise leave the rest invisible. A map's opacity follows its value, so the face
stays readable where the map is low.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from affecttrack.figures import save_figure

_HEAT = "inferno"
_MAX_ALPHA = 0.8


def scaled(heat: np.ndarray) -> np.ndarray:
    """A non-negative map scaled to [0, 1] by its 99th percentile (all zeros stays zeros)."""
    top = float(np.percentile(heat, 99))
    return np.clip(heat / top, 0.0, 1.0) if top > 0 else np.zeros_like(heat)


def _overlay(ax: Axes, face: np.ndarray, heat: np.ndarray | None, title: str) -> None:
    ax.imshow(face, cmap="gray", vmin=0, vmax=255)
    if heat is not None:
        level = scaled(heat)
        ax.imshow(level, cmap=_HEAT, alpha=_MAX_ALPHA * level, vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def plot_face_saliency(face: np.ndarray, ig: np.ndarray, cam: np.ndarray, title: str,
                       path: Path) -> Path:
    """Face | |Integrated Gradients| over it | Grad-CAM over it, `title` (the prediction) above."""
    fig = Figure(figsize=(8.4, 3.3), layout="constrained")
    axes = fig.subplots(1, 3)
    _overlay(axes[0], face, None, "face (96 x 96, as the network sees it)")
    _overlay(axes[1], face, np.abs(ig), "|integrated gradients|")
    _overlay(axes[2], face, cam, "Grad-CAM (last convolution)")
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_class_saliency(mean_faces: np.ndarray, ig: np.ndarray, cam: np.ndarray,
                        names: Sequence[str], counts: Sequence[int], title: str,
                        path: Path) -> Path:
    """One column per class: mean |IG| (top) and mean Grad-CAM (bottom) over the class's mean
    face; a class without faces is left blank."""
    fig = Figure(figsize=(1.9 * len(names) + 0.6, 4.6), layout="constrained")
    axes = np.asarray(fig.subplots(2, len(names), squeeze=False))
    for column, (name, count) in enumerate(zip(names, counts)):
        for row, maps in enumerate((ig, cam)):
            ax = axes[row, column]
            if count == 0:
                ax.set_axis_off()
                ax.set_title(f"{name}\n(no faces)" if row == 0 else "", fontsize=9)
                continue
            label = f"{name} (n={count})\n|IG|" if row == 0 else "Grad-CAM"
            _overlay(ax, mean_faces[column], maps[column], label)
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_filters(weights: np.ndarray, path: Path) -> Path:
    """The first convolution's kernels ((k, 1, h, w)) as one mosaic on one symmetric colour
    scale, so that both the patterns and which filters are strong can be read."""
    kernels = np.asarray(weights, dtype=np.float64)[:, 0]
    limit = float(np.abs(kernels).max()) or 1.0
    fig = Figure(figsize=(7.5, 6.6), layout="constrained")
    ax = fig.subplots()
    colours = colormaps["RdBu_r"].with_extremes(bad="white")
    image = ax.imshow(filter_mosaic(kernels), cmap=colours, vmin=-limit, vmax=limit)
    ax.set_axis_off()
    fig.colorbar(image, ax=ax, shrink=0.8, label="weight")
    ax.set_title(f"first-layer filters ({len(kernels)} x {kernels.shape[1]}x{kernels.shape[2]})")
    return save_figure(fig, path)


def filter_mosaic(kernels: np.ndarray) -> np.ndarray:
    """(k, h, w) kernels tiled row by row in a near-square grid, NaN (blank) between and after
    them: one image draws in a fraction of the time of k subplots."""
    count, height, width = kernels.shape
    columns = int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    mosaic = np.full((rows * (height + 1) - 1, columns * (width + 1) - 1), np.nan)
    for i, kernel in enumerate(kernels):
        top, left = (i // columns) * (height + 1), (i % columns) * (width + 1)
        mosaic[top:top + height, left:left + width] = kernel
    return mosaic
