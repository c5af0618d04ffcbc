"""Confusion matrices as figures, like the paper's Fig. 6 (CK+) and Fig. 7 (JAFFE).

Cells are coloured by row percentage (the share of a true class predicted as each class) in both
figures, so that a rare class's errors show as clearly as a frequent one's; one figure writes the
counts in the cells, the other the row percentages.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from affecttrack.errors import AffectTrackError
from affecttrack.figures import save_figure


def row_percentages(counts: np.ndarray) -> np.ndarray:
    """Each row as percentages of its total (a row without frames stays 0)."""
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(100.0 * counts, totals, out=np.zeros_like(counts), where=totals > 0)


def plot_confusion_matrix(counts: np.ndarray, rows: Sequence[str], columns: Sequence[str],
                          path: Path, *, percent: bool = False, title: str = "") -> Path:
    """Write a confusion matrix (true classes `rows` x predicted classes `columns`) as a PNG with
    the class names on the axes and the counts, or with `percent` the row percentages, in the
    cells."""
    counts = np.asarray(counts)
    if counts.shape != (len(rows), len(columns)):
        raise AffectTrackError(f"plot_confusion_matrix: a {counts.shape} matrix does not match "
                               f"{len(rows)} row and {len(columns)} column names")
    shares = row_percentages(counts)
    size = 1.2 + 0.75 * max(len(rows), len(columns))
    fig = Figure(figsize=(size + 1.6, size), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=100)
    for (i, j), share in np.ndenumerate(shares):
        text = f"{share:.1f}%" if percent else f"{counts[i, j]:d}"
        ax.text(j, i, text, ha="center", va="center", fontsize=8,
                color="white" if share > 55 else "black")
    ax.set_xticks(range(len(columns)), labels=columns, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), labels=[f"{name} ({total})" for name, total
                                            in zip(rows, counts.sum(axis=1))])
    ax.set(xlabel="predicted", ylabel="true (frames)")
    fig.colorbar(image, ax=ax, label="% of the true class", shrink=0.8)
    what = "row percentages" if percent else "counts"
    ax.set_title(f"{title}: {what}" if title else f"Confusion matrix: {what}")
    return save_figure(fig, path)
