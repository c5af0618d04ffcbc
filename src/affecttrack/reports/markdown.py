"""The markdown this toolkit writes (headings, paragraphs, pipe tables, lists, code fences) as
escaped HTML.

A tiny converter rather than the `markdown` package: that would be a new dependency and passes
raw HTML through, while every text of a report must come out escaped.
"""

from __future__ import annotations

import re
from html import escape

from affecttrack.reports.tables import html_table

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_SEPARATOR = re.compile(r"^\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_BULLET = re.compile(r"^\s*[-*+]\s+(.*)$")
_CODE_SPAN = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


def inline(text: str) -> str:
    """Escaped text with `code` spans and **bold**; bold is not looked for inside code."""
    parts = _CODE_SPAN.split(text)
    return "".join(f"<code>{escape(part)}</code>" if i % 2 else
                   _BOLD.sub(r"<strong>\1</strong>", escape(part))
                   for i, part in enumerate(parts))


def _cells(line: str) -> list[str]:
    line = line.strip()
    line = line.removeprefix("|")
    line = line[:-1] if line.endswith("|") and not line.endswith("\\|") else line
    return [cell.strip().replace("\\|", "|") for cell in _CELL_SPLIT.split(line)]


def _alignment(separator: str) -> list[str]:
    def side(cell: str) -> str:
        if cell.startswith(":") and cell.endswith(":"):
            return "center"
        return "right" if cell.endswith(":") else ""
    return [side(cell) for cell in _cells(separator)]


def _table(lines: list[str]) -> str:
    header = _cells(lines[0])
    rows = [(_cells(line) + [""] * len(header))[:len(header)] for line in lines[2:]]
    return html_table([inline(c) for c in header], [[inline(c) for c in row] for row in rows],
                      align=(_alignment(lines[1]) + [""] * len(header))[:len(header)])


def _is_table_start(lines: list[str], i: int) -> bool:
    return (lines[i].lstrip().startswith("|") and i + 1 < len(lines)
            and bool(_SEPARATOR.match(lines[i + 1].strip())))


def _take(lines: list[str], i: int, keep) -> tuple[list[str], int]:
    """The run of lines from `i` for which `keep(line)` holds, and the index after it."""
    end = i
    while end < len(lines) and keep(lines[end]):
        end += 1
    return lines[i:end], end


def markdown_to_html(text: str, heading_offset: int = 0) -> str:
    """HTML of `text`; `# ` becomes `<h{1 + heading_offset}>` (at most h6) so a file's headings
    nest under the page's own."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        heading = _HEADING.match(line)
        if not line.strip():
            i += 1
        elif line.lstrip().startswith("```"):
            code, i = _take(lines, i + 1, lambda item: not item.lstrip().startswith("```"))
            out.append(f"<pre><code>{escape(chr(10).join(code))}</code></pre>")
            i += 1
        elif heading:
            level = min(6, len(heading.group(1)) + heading_offset)
            out.append(f"<h{level}>{inline(heading.group(2))}</h{level}>")
            i += 1
        elif _is_table_start(lines, i):
            table, i = _take(lines, i, lambda item: item.lstrip().startswith("|"))
            out.append(_table(table))
        elif _BULLET.match(line):
            items, i = _take(lines, i, lambda item: bool(_BULLET.match(item)))
            out.append("<ul>" + "".join(f"<li>{inline(_BULLET.match(item).group(1))}</li>"
                                        for item in items) + "</ul>")
        else:
            paragraph, i = _take(lines, i + 1, lambda item: bool(
                item.strip() and not _HEADING.match(item) and not _BULLET.match(item)
                and not item.lstrip().startswith(("|", "```"))))
            joined = " ".join(part.strip() for part in [line, *paragraph])
            out.append(f"<p>{inline(joined)}</p>")
    return "\n".join(out) + "\n"
