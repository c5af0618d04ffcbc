"""The evaluation report: metrics.json, table.md and the figures, written into one folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from affecttrack.evaluation.evaluate import evaluate_predictions, labelled_frames
from affecttrack.evaluation.plots import plot_prediction_curves, plot_va_density
from affecttrack.evaluation.tables import metrics_table
from affecttrack.runinfo import write_json_atomic, write_text_atomic

VAPair = tuple[np.ndarray, np.ndarray]


def write_evaluation(out: Path, index: pd.DataFrame, predictions: dict[str, pd.DataFrame],
                     balance_before_after: tuple[VAPair, VAPair] | None = None,
                     reference_rows: bool = True, split: str = "val",
                     curve_videos: Sequence[str] | None = None) -> dict[str, dict]:
    """Score `predictions` on `split` and write the report into `out`; returns the metrics.

    Writes `metrics.json` (model name -> `evaluate_predictions` entry), `table.md` (Table III
    layout, with the paper's rows if `reference_rows`), `curves.png` (the first three labelled
    videos of the split unless `curve_videos` names others) and, when the training labels before
    and after balancing are given as ((valence, arousal), (valence, arousal)), `va_density.png`.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = evaluate_predictions(index, predictions, split=split)
    write_json_atomic(out / "metrics.json", metrics)
    write_text_atomic(out / "table.md",
                       f"# Valence/arousal on split {split!r}\n\n"
                       + metrics_table(metrics, reference_rows=reference_rows))
    if curve_videos is None:
        curve_videos = list(labelled_frames(index, split)["video"].unique()[:3])
    plot_prediction_curves(index, predictions, curve_videos, out / "curves.png")
    if balance_before_after is not None:
        before, after = balance_before_after
        plot_va_density(before, after, out / "va_density.png")
    return metrics
