"""The results table, shaped like the paper's Table III, in markdown.

The paper's own Aff-Wild2 figures can be listed under this run's rows as a point of reference.
They are marked as the paper's in the table itself, so they are never taken for this run's results.
Only their CCCs exist; the paper reports no PCC or RMSE for them.
"""

from __future__ import annotations

from collections.abc import Mapping

# (model, CCC valence, CCC arousal) on the Aff-Wild2 validation set, as the paper reports them.
PAPER_RESULTS: tuple[tuple[str, float, float], ...] = (
    ("ABAW 2020 baseline", 0.14, 0.24),
    ("CNN, whole data", 0.20, 0.23),
    ("CNN, balanced subset 3", 0.22, 0.22),
    ("CNN + SimpleRNN 1 layer", 0.21, 0.22),
    ("CNN + GRU 1 layer", 0.20, 0.35),
    ("CNN + GRU 3 layers", 0.23, 0.39),
)

PAPER_SOURCE = "paper, Aff-Wild2 val"
_HEADER = ("model", "source", "CCC valence", "CCC arousal", "mean CCC", "PCC valence",
           "PCC arousal", "RMSE valence", "RMSE arousal", "frames (interpolated)")
_MISSING = "–"


def _number(value: float) -> str:
    return f"{value:.3f}"


def _row(cells: tuple[str, ...] | list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _run_row(name: str, metrics: Mapping, source: str) -> list[str]:
    valence, arousal = metrics["valence"], metrics["arousal"]
    frames = (f"{metrics['n_frames']} ({metrics['n_interpolated']})"
              if "n_frames" in metrics else _MISSING)
    return [name, source, _number(valence["ccc"]), _number(arousal["ccc"]),
            _number(metrics["mean_ccc"]), _number(valence["pcc"]), _number(arousal["pcc"]),
            _number(valence["rmse"]), _number(arousal["rmse"]), frames]


def _paper_row(name: str, valence: float, arousal: float) -> list[str]:
    return [name, PAPER_SOURCE, f"{valence:.2f}", f"{arousal:.2f}",
            f"{(valence + arousal) / 2:.3f}", *[_MISSING] * 5]


def metrics_table(metrics: Mapping[str, Mapping], reference_rows: bool = True,
                  source: str = "this run") -> str:
    """Markdown table: one row per model of `metrics` (as `evaluate_predictions` returns them).

    With `reference_rows`, the paper's Aff-Wild2 validation CCCs follow, labelled as the paper's in
    the `source` column and in a note under the table.
    """
    lines = [_row(_HEADER), _row(["---"] * len(_HEADER))]
    lines += [_row(_run_row(name, values, source)) for name, values in metrics.items()]
    if reference_rows:
        lines += [_row(_paper_row(*result)) for result in PAPER_RESULTS]
        lines += ["", (f"Rows marked '{PAPER_SOURCE}' are the CCCs the paper reports on the "
                      "Aff-Wild2 validation set (its Table III), not results of this run; they "
                      "are comparable only when this run is on Aff-Wild2 too.")]
    return "\n".join(lines) + "\n"
