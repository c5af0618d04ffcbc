"""HTML tables from rows of values, and nested JSON flattened into such rows.

Every text that reaches a table is escaped here, so that a label or a file name can never turn
into markup; cells that callers pass as HTML (`html_table`) must have been escaped by them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from typing import Any

MISSING = "–"
MAX_ROWS = 200
MAX_LIST_ITEMS = 40


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]],
               align: Sequence[str] | None = None) -> str:
    """A table whose header and cells are already HTML; `align` gives a CSS text-align per
    column ("" for the default)."""
    styles = [f' style="text-align:{a}"' if a else "" for a in (align or [""] * len(header))]
    head = "".join(f"<th{style}>{cell}</th>" for cell, style in zip(header, styles))
    body = "".join(
        "<tr>" + "".join(f"<td{style}>{cell}</td>" for cell, style in zip(row, styles)) + "</tr>\n"
        for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n"


def format_value(value: Any) -> str:
    """A JSON value as short text: 4 significant digits for floats, lists of values joined by
    commas (the first `MAX_LIST_ITEMS`: a split.json lists thousands of subjects)."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list) and all(not isinstance(v, (list, dict)) for v in value):
        shown = ", ".join(format_value(v) for v in value[:MAX_LIST_ITEMS])
        hidden = len(value) - MAX_LIST_ITEMS
        return f"{shown}, … ({hidden} more, {len(value)} in all)" if hidden > 0 else shown
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(", ", ": "))
    return str(value)


def text_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A table of plain values (escaped, formatted by `format_value`); beyond `MAX_ROWS` rows
    the rest is counted in a note rather than shown, so one huge file cannot swamp the page."""
    shown = [[escape(format_value(value)) for value in row] for row in rows[:MAX_ROWS]]
    table = html_table([escape(name) for name in header], shown)
    if len(rows) > MAX_ROWS:
        table += f'<p class="note">… {len(rows) - MAX_ROWS:,} more rows not shown.</p>\n'
    return table


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, leaf) pairs of nested dicts and lists of dicts, in file order; lists of
    plain values stay one leaf."""
    if isinstance(value, dict) and value:
        items = value.items()
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return [(prefix, value)]
    pairs: list[tuple[str, Any]] = []
    for key, child in items:
        pairs.extend(flatten(child, f"{prefix}.{key}" if prefix else str(key)))
    return pairs


def key_value_table(value: Any) -> str:
    """Nested JSON as a two-column table of dotted keys and values."""
    return text_table(("key", "value"), flatten(value))
