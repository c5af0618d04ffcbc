"""Markdown tables of a classification experiment: class counts (the paper's Table II) and scores
per fold with their mean and standard deviation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_MISSING = "–"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def class_count_table(class_names: Sequence[str],
                      columns: Mapping[str, Mapping[str, float]]) -> str:
    """One row per class and a total row; one column per named count (e.g. in the store, used for
    training after balancing, test), each a mapping class name -> count (missing: –)."""
    header = ["class", *columns]
    lines = [_row(header), _row(["---"] * len(header))]
    for name in class_names:
        lines.append(_row([name, *(_count(counts.get(name)) for counts in columns.values())]))
    totals = [_count(sum(v for v in counts.values() if v is not None))
              for counts in columns.values()]
    lines.append(_row(["**total**", *totals]))
    return "\n".join(lines) + "\n"


def _count(value: float | None) -> str:
    if value is None:
        return _MISSING
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def fold_table(folds: Sequence[Mapping[str, Any]], summary: Mapping[str, Any],
               fold_names: Sequence[str]) -> str:
    """Accuracy, macro-F1, unmapped predictions and test frames per fold, then mean ± std."""
    header = ["fold", "accuracy", "macro-F1", "unmapped predictions", "test frames"]
    lines = [_row(header), _row(["---"] * len(header))]
    for name, fold in zip(fold_names, folds):
        lines.append(_row([name, _percent(fold["accuracy"]), _number(fold["macro_f1"]),
                           _percent(fold["unmapped_fraction"]), f"{fold['n']:,}"]))
    mean, std = summary["mean"], summary["std"]
    lines.append(_row(["**mean ± std**", _plus_minus(mean["accuracy"], std["accuracy"], True),
                       _plus_minus(mean["macro_f1"], std["macro_f1"], False),
                       _plus_minus(mean["unmapped_fraction"], std["unmapped_fraction"], True),
                       f"{sum(fold['n'] for fold in folds):,}"]))
    return "\n".join(lines) + "\n"


def recall_table(summary: Mapping[str, Any]) -> str:
    """Recall per class, mean ± std over the folds that hold the class."""
    lines = [_row(["class", "recall"]), _row(["---", "---"])]
    for name, mean in summary["mean"]["recall"].items():
        lines.append(_row([name, _plus_minus(mean, summary["std"]["recall"][name], True)]))
    return "\n".join(lines) + "\n"


def _percent(value: float | None) -> str:
    return _MISSING if value is None else f"{100 * value:.1f}%"


def _number(value: float | None) -> str:
    return _MISSING if value is None else f"{value:.3f}"


def _plus_minus(mean: float | None, std: float | None, percent: bool) -> str:
    show = _percent if percent else _number
    return show(mean) if std is None else f"{show(mean)} ± {show(std)}"
