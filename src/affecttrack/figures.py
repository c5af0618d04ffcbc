"""What every figure of the toolkit shares: how it is written, and one colour per expression.

Figures are built on `matplotlib.figure.Figure` (Agg canvas) instead of pyplot, so plotting never
needs a display, keeps no global figure state, and is safe to call from training or a server.
Each file is written under a temporary name and renamed, like every other output. The colours
are fixed per canonical expression so that Happiness looks the same in a video's timeline, a
category map and a report.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from affecttrack.labels import canonical_expression
from affecttrack.runinfo import atomic_path

_DPI = 110
EXPRESSION_COLOURS: dict[str, str] = {
    "Neutral": "#b0b0b0", "Anger": "#d62728", "Contempt": "#8c564b", "Disgust": "#2ca02c",
    "Fear": "#9467bd", "Happiness": "#f2c300", "Sadness": "#1f77b4", "Surprise": "#ff7f0e",
    "Other": "#e377c2"}
# For class names outside the basic expressions, in the order they appear.
_SPARE_COLOURS = ("#17becf", "#bcbd22", "#7f7f7f", "#aec7e8", "#98df8a", "#ff9896", "#c5b0d5",
                  "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5", "#393b79")


def save_figure(fig: Figure, path: Path) -> Path:
    """PNG under a temporary name, then renamed: readers never see half an image."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI)
    return Path(path)


def expression_colours(labels: Sequence[str]) -> list[str]:
    """One colour per class: the fixed one of its canonical expression, else a spare one."""
    spare = iter(_SPARE_COLOURS * (1 + len(labels) // len(_SPARE_COLOURS)))
    return [EXPRESSION_COLOURS.get(canonical_expression(name) or "") or next(spare)
            for name in labels]
