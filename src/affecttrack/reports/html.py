"""`affecttrack report RUN_DIR`: a run folder as one HTML file that works offline.

Figures are embedded as data: URIs and the style is inline, so the page can be moved or mailed
on its own; nothing is fetched and no script runs. Files that cannot be read are named at the
top of the page (and to `on_problem`) and the rest of the report is still written.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from html import escape
from pathlib import Path

from affecttrack.errors import InputError
from affecttrack.reports.files import json_file, markdown_file, png_file, run_header
from affecttrack.reports.layout import Listed, Section, plan_sections
from affecttrack.reports.tables import html_table
from affecttrack.runinfo import write_text_atomic

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em;
       color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { border-bottom: 2px solid #ccc; margin-top: 2em; }
h3 { margin-top: 1.5em; color: #444; } h4, h5, h6 { margin-bottom: 0.3em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #f2f2f2; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
code, pre { font-family: ui-monospace, monospace; background: #f6f6f6; }
.note { color: #666; font-size: 0.9em; }
.problem { color: #a00; }
nav ul { margin: 0.2em 0; }
"""

ProblemSink = Callable[[str], None]


class _Anchors:
    """Unique, readable id attributes for the table of contents."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def new(self, text: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "run"
        anchor, n = base, 1
        while anchor in self._used:
            n += 1
            anchor = f"{base}-{n}"
        self._used.add(anchor)
        return anchor


def _size(size: int) -> str:
    """Bytes in decimal units, as file managers show them."""
    if size < 1000:
        return f"{size} B"
    exponent = min(4, int(math.log(size, 1000)))
    return f"{size / 1000 ** exponent:.1f} {'KMGT'[exponent - 1]}B"


def _render(path: Path, label: str) -> str:
    suffix = path.suffix.lower()
    if path.name == "run.json":
        return run_header(path)
    if suffix == ".md":
        return markdown_file(path)
    if suffix == ".json":
        return json_file(path)
    return png_file(path, alt=label)


def _listing(listed: list[Listed]) -> str:
    rows = [[escape(item.name), "" if item.files == 1 else str(item.files), _size(item.size),
             escape(item.note)] for item in listed]
    return html_table(["file", "files", "size", ""], rows, align=["", "right", "right", ""])


class _Page:
    """The page being assembled: sections, their table-of-contents entries, problems."""

    def __init__(self, run_dir: Path, on_problem: ProblemSink | None) -> None:
        self.run_dir = run_dir
        self.name = run_dir.resolve().name
        self.anchors = _Anchors()
        self.contents_anchor = self.anchors.new("contents")
        self.toc: list[str] = []
        self.body: list[str] = []
        self.problems: list[str] = []
        self.on_problem = on_problem

    def _item(self, relative: Path, path: Path) -> tuple[str, str]:
        """One file's heading and content; a file that cannot be read becomes a problem line."""
        anchor = self.anchors.new(relative.as_posix())
        try:
            content = _render(path, relative.as_posix())
        except InputError as exc:
            self.problems.append(f'<li><a href="#{anchor}">{escape(str(exc))}</a></li>')
            if self.on_problem is not None:
                self.on_problem(str(exc))
            content = f'<p class="problem">{escape(exc.problem)}</p>\n'
        heading = f'<h3 id="{anchor}">{escape(path.name)}</h3>\n'
        return f'<li><a href="#{anchor}">{escape(path.name)}</a></li>', heading + content

    def add(self, section: Section) -> None:
        title = (f"{self.name} (the run)" if section.folder == Path(".")
                 else section.folder.as_posix())
        anchor = self.anchors.new(section.folder.as_posix())
        entries, parts = [], [f'<section>\n<h2 id="{anchor}">{escape(title)}</h2>\n']
        for relative in section.shown:
            entry, html = self._item(relative, self.run_dir / relative)
            entries.append(entry)
            parts.append(html)
        if section.listed:
            files_anchor = self.anchors.new(f"{section.folder.as_posix()}-files")
            entries.append(f'<li><a href="#{files_anchor}">other files</a></li>')
            parts.append(f'<h3 id="{files_anchor}">other files</h3>\n'
                         '<p class="note">Listed, not shown: data, models and logs.</p>\n'
                         + _listing(section.listed))
        self.toc.append(f'<li><a href="#{anchor}">{escape(title)}</a><ul>{"".join(entries)}'
                        "</ul></li>")
        self.body.append("".join(parts) + "</section>\n")

    def html(self) -> str:
        title = f"affecttrack report: {self.name}"
        toc, problems = "".join(self.toc), ""
        if self.problems:
            anchor = self.anchors.new("problems")
            heading = f"{len(self.problems)} file(s) could not be shown"
            toc = f'<li><a href="#{anchor}">{heading}</a></li>{toc}'
            problems = (f'<section>\n<h2 id="{anchor}" class="problem">{heading}</h2>\n<ul>'
                        + "\n".join(self.problems) + "</ul>\n</section>\n")
        return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
                f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
                f"<h1>{escape(title)}</h1>\n"
                f'<p class="note">{escape(str(self.run_dir.resolve()))}, report written '
                f'{escape(time.strftime("%Y-%m-%d %H:%M:%S %z"))}</p>\n'
                f'<nav>\n<h2 id="{self.contents_anchor}">Contents</h2>\n<ul>{toc}</ul>\n</nav>\n'
                f'{problems}{"".join(self.body)}</body>\n</html>\n')


def build_report(run_dir: Path, out: Path | None = None,
                 on_problem: ProblemSink | None = None) -> Path:
    """Write the report on `run_dir` to `out` (default `run_dir/report.html`) and return its
    path; `on_problem` hears of each file that could not be shown."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(run_dir, "no such folder" if not run_dir.exists() else "not a folder")
    out = Path(out) if out is not None else run_dir / "report.html"
    if out.is_dir():
        raise InputError(out, "is a folder; --out names the HTML file to write")
    exclude = {out.resolve(), out.with_name(out.name + ".tmp").resolve()}
    sections = plan_sections(run_dir, exclude)
    if not any(section.shown for section in sections):
        raise InputError(run_dir, "nothing to report: no run.json, markdown, JSON or PNG "
                                  "files in it or its sub-folders")
    page = _Page(run_dir, on_problem)
    for section in sections:
        page.add(section)
    write_text_atomic(out, page.html())
    return out
