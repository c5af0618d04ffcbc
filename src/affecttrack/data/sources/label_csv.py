"""Label CSVs written by people: find the columns whatever they are called, read values safely.

Shared by the folder source (one row per image) and the video source (one row per frame).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from affecttrack.errors import InputError

LABEL_COLUMNS: tuple[str, ...] = ("label", "emotion", "expression", "class", "category")
VALENCE_COLUMNS: tuple[str, ...] = ("valence",)
AROUSAL_COLUMNS: tuple[str, ...] = ("arousal",)


def find_column(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    """The first of `candidates` among `columns`, matched case-insensitively (spaces as `_`)."""
    normal = {column.strip().lower().replace(" ", "_"): column for column in columns}
    return next((normal[name] for name in candidates if name in normal), None)


def read_label_csv(path: Path) -> pd.DataFrame:
    """The CSV as strings (nothing guessed, empty cells as ""); a one-line InputError if it
    cannot be read."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as error:
        text = str(error).strip()
        raise InputError(path, f"cannot read the CSV ({text.splitlines()[0] if text else error!r})"
                         ) from None


def unit_value(text: str, what: str) -> float | str:
    """A valence or arousal in [-1, 1] (NaN for an empty cell), or why the text is not one."""
    text = text.strip()
    if not text:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        return f"{what} {text!r} is not a number"
    if not math.isfinite(value) or not -1 <= value <= 1:
        return f"{what} {value:g} lies outside [-1, 1]"
    return value
