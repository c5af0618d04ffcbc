"""Names in the order people expect: frame2 before frame10, fold_2 before fold_10.

Frame folders, run folders and report sections are all listed this way, so the rule lives once.
"""

from __future__ import annotations

import re


def natural_key(text: str) -> list[tuple[int, int | str]]:
    """Sort key in which numbers inside names compare as numbers (tagged, so that a number and a
    word in the same place still compare) and letters ignore case."""
    return [(0, int(part)) if part.isdigit() else (1, part.casefold())
            for part in re.split(r"(\d+)", text) if part]
