"""How each kind of run file is shown: run.json as a header, markdown as HTML, metrics and
other JSON as tables, predict summaries as a table of inputs, PNG figures embedded.

Each function returns an HTML fragment, or raises `InputError` naming the file and why it could
not be read, so that the page can report it and go on with the rest.
"""

from __future__ import annotations

import base64
import io
import json
import shlex
from html import escape
from pathlib import Path
from typing import Any

from PIL import Image

from affecttrack.errors import InputError
from affecttrack.reports.markdown import markdown_to_html
from affecttrack.reports.tables import format_value, key_value_table, text_table

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_RUN_FIELDS = ("stage", "created", "seed", "python", "platform", "cpu_count")
_PREDICT_COLUMNS = ("input", "status", "frames", "faces", "message")


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(path, "not UTF-8 text") from None
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror})") from None


def _json(path: Path) -> Any:
    try:
        return json.loads(_text(path))
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON (line {exc.lineno}: {exc.msg})") from None


def _details(summary: str, body: str) -> str:
    return f"<details><summary>{escape(summary)}</summary>\n{body}</details>\n"


def run_header(path: Path) -> str:
    """run.json: command, creation time, seed and environment in one table, the data summary
    as another, the full config folded away."""
    info = _json(path)
    if not isinstance(info, dict):
        raise InputError(path, "not a run.json (expected an object)")
    command = info.get("command")
    rows: list[tuple[str, Any]] = [("command", shlex.join(map(str, command))
                                    if isinstance(command, list) else command)]
    rows += [(name, info[name]) for name in _RUN_FIELDS if name in info]
    packages = info.get("packages")
    if isinstance(packages, dict):
        rows.append(("packages", ", ".join(f"{name} {version or 'not installed'}"
                                           for name, version in packages.items())))
    html = text_table(("run", ""), rows)
    if info.get("data"):
        html += "<h4>data</h4>\n" + key_value_table(info["data"])
    if info.get("config"):
        html += _details("config", key_value_table(info["config"]))
    return html


def markdown_file(path: Path) -> str:
    """A markdown file (tables, headings, notes) as HTML, its headings below the file's own."""
    return markdown_to_html(_text(path), heading_offset=3)


def _predict_summary(summary: dict) -> str:
    counts = ", ".join(f"{count} {status}" for status, count in summary["counts"].items())
    rows = [[item.get(column) for column in _PREDICT_COLUMNS]
            for item in summary["inputs"] if isinstance(item, dict)]
    return (f"<p>{len(summary['inputs'])} input(s): {escape(counts)}</p>\n"
            + text_table(_PREDICT_COLUMNS, rows))


def json_file(path: Path) -> str:
    """`affecttrack predict`'s summary.json as its table of inputs, other JSON (metrics, store
    summaries, splits, timings) as a table of keys and values."""
    data = _json(path)
    if (isinstance(data, dict) and isinstance(data.get("inputs"), list)
            and isinstance(data.get("counts"), dict)):
        return _predict_summary(data)
    if isinstance(data, (dict, list)):
        return key_value_table(data)
    return f"<p>{escape(format_value(data))}</p>\n"


def png_file(path: Path, alt: str) -> str:
    """The figure embedded as a data: URI, after checking it is a whole, decodable PNG."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror})") from None
    if not data.startswith(PNG_SIGNATURE):
        raise InputError(path, "not a PNG image")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except (OSError, SyntaxError, ValueError, EOFError):  # what Pillow raises for bad data
        raise InputError(path, "damaged or truncated PNG image") from None
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img src="data:image/png;base64,{encoded}" alt="{escape(alt)}">\n'
