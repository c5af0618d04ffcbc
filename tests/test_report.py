"""`affecttrack report`: one self-contained HTML page of a run folder."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from cli_runner import run_cli
from matplotlib.figure import Figure
from PIL import Image

from affecttrack.errors import InputError
from affecttrack.reports import layout
from affecttrack.reports.html import build_report
from affecttrack.reports.markdown import markdown_to_html
from affecttrack.runinfo import write_json_atomic, write_run_info

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TABLE_MD = """# Results <of> the run

Accuracy on the **test** split.

| fold | accuracy | note |
| --- | ---: | --- |
| fold_01 | 84.7% | <script>alert(1)</script> |
| **mean** | 84.7% | a \\| b |
"""
VOID_TAGS = {"meta", "img", "br", "hr", "link", "input"}


def _figure(path: Path, title: str) -> None:
    figure = Figure(figsize=(2, 1.5), dpi=40)
    axes = figure.add_subplot()
    axes.plot([0, 1, 2], [1, 0, 1])
    axes.set_title(title)
    figure.savefig(path)


def write_tiny_run(run: Path) -> Path:
    """A classification-like run: run.json, table.md, metrics.json, two figures, and a fold
    folder with its own metrics, a figure, a Parquet file and a checkpoint."""
    write_run_info(run, stage="classification", config={"lr": 0.01, "frame": {"model": "cnn"}},
                   seed=7, data_summary={"frames": 12, "classes": ["Neutral", "Happiness"]})
    (run / "table.md").write_text(TABLE_MD)
    write_json_atomic(run / "metrics.json", {"accuracy": 0.847, "recall": {"Neutral": 0.9}})
    _figure(run / "confusion_counts.png", "counts")
    _figure(run / "curves.png", "curves")
    fold = run / "folds" / "fold_01"
    write_json_atomic(fold / "metrics.json", {"accuracy": 0.5})
    _figure(fold / "confusion_percent.png", "fold")
    (fold / "predictions.parquet").write_bytes(b"PAR1" + bytes(5000))
    (fold / "model" / "checkpoints").mkdir(parents=True)
    (fold / "model" / "checkpoints" / "best.ckpt").write_bytes(bytes(100))
    return run


class _PageChecker(HTMLParser):
    """Collects images, anchors, ids, table cells and tag-nesting errors of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.errors: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.ids: list[str] = []
        self.cells: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if attributes.get("id"):
            self.ids.append(attributes["id"])
        if tag == "img":
            self.images.append(attributes.get("src") or "")
        if tag == "a" and (attributes.get("href") or "").startswith("#"):
            self.links.append(attributes["href"][1:])
        if tag in ("td", "th"):
            self._cell = []
        if tag not in VOID_TAGS:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")
            return
        self.open.pop()
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def check_page(path: Path) -> _PageChecker:
    checker = _PageChecker()
    checker.feed(path.read_text(encoding="utf-8"))
    checker.close()
    return checker


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory) -> tuple[Path, _PageChecker]:
    run = write_tiny_run(tmp_path_factory.mktemp("run"))
    path = build_report(run)
    return path, check_page(path)


def test_report_is_written_into_the_run_as_well_formed_html(tiny_report):
    path, page = tiny_report
    assert path.name == "report.html" and path.parent.name.startswith("run")
    assert page.errors == [] and page.open == []
    assert path.read_text().startswith("<!DOCTYPE html>")


def test_every_figure_is_embedded_and_decodes(tiny_report):
    _, page = tiny_report
    assert len(page.images) == 3
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data.startswith(PNG_SIGNATURE)
        with Image.open(io.BytesIO(data)) as image:
            image.verify()


def test_page_needs_nothing_from_outside(tiny_report):
    text = tiny_report[0].read_text()
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", text)
    assert "<script" not in text and "<link" not in text


def test_every_table_is_rendered(tiny_report):
    _, page = tiny_report
    cells = page.cells
    assert {"fold", "accuracy", "note"} <= set(cells)          # table.md header
    assert "mean" in cells and "a | b" in cells                 # bold cell, escaped pipe
    assert "0.847" in cells and "recall.Neutral" in cells       # metrics.json
    assert "7" in cells and "Neutral, Happiness" in cells       # run.json: seed, data summary
    assert "frame.model" in cells                               # run.json: config
    assert "predictions.parquet" in cells and "5.0 KB" in cells  # listed, not embedded
    assert "model/checkpoints/best.ckpt" in cells


def test_text_from_files_is_escaped(tiny_report):
    text = tiny_report[0].read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "Results &lt;of&gt; the run" in text


def test_every_contents_link_has_its_target(tiny_report):
    _, page = tiny_report
    assert len(page.ids) == len(set(page.ids))
    assert page.links and set(page.links) <= set(page.ids)
    for name in ("table.md", "metrics.json", "confusion_counts.png", "confusion_percent.png"):
        assert any(name.replace(".", "-") in link for link in page.links)


def test_run_files_come_before_fold_folders(tiny_report):
    text = tiny_report[0].read_text()
    body = text[text.index("</nav>"):]
    assert body.index("run.json") < body.index("table.md") < body.index("folds/fold_01")


def test_damaged_files_are_reported_and_the_rest_is_shown(tmp_path):
    run = write_tiny_run(tmp_path / "run")
    (run / "broken.png").write_bytes(PNG_SIGNATURE + b"not really")
    (run / "timings.json").write_text("{not json")
    problems: list[str] = []
    page = check_page(build_report(run, on_problem=problems.append))
    assert sorted(Path(line.split(":")[0]).name for line in problems) == ["broken.png",
                                                                          "timings.json"]
    assert len(page.images) == 3 and page.errors == []
    assert "problems" in page.ids and "problems" in page.links


def test_predict_summary_is_a_table_of_inputs(tmp_path):
    summary = {"counts": {"ok": 1, "no_face": 1}, "inputs": [
        {"input": "a.mp4", "status": "ok", "frames": 72, "faces": 1, "message": ""},
        {"input": "b.mp4", "status": "no_face", "frames": 95, "faces": 0,
         "message": "b.mp4: no face found"}]}
    write_json_atomic(tmp_path / "summary.json", summary)
    page = check_page(build_report(tmp_path))
    assert {"input", "status", "frames", "message"} <= set(page.cells)
    assert "b.mp4: no face found" in page.cells and "no_face" in page.cells


def test_folders_of_many_files_are_listed_by_type(tmp_path):
    write_json_atomic(tmp_path / "metrics.json", {"ccc": 0.5})
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(30):
        (frames / f"{i:05d}.jpg").write_bytes(bytes(10))
    page = check_page(build_report(tmp_path, tmp_path / "elsewhere" / "page.html"))
    assert "frames/*.jpg" in page.cells and "30" in page.cells
    assert not any(cell.endswith("00001.jpg") for cell in page.cells)


def test_a_second_report_does_not_list_the_first(tiny_report):
    path, _ = tiny_report
    page = check_page(build_report(path.parent))
    assert "report.html" not in page.cells


def test_missing_or_empty_run_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        build_report(tmp_path / "missing")
    (tmp_path / "log.csv").write_text("a,b\n")
    with pytest.raises(InputError, match="nothing to report"):
        build_report(tmp_path)


def test_markdown_headings_nest_and_code_is_kept_literal():
    html = markdown_to_html("# Title\n\nuse `**x**` and **y**\n\n- one\n- two\n",
                            heading_offset=3)
    assert "<h4>Title</h4>" in html
    assert "<code>**x**</code>" in html and "<strong>y</strong>" in html
    assert "<li>one</li><li>two</li>" in html


def test_cli_writes_the_report_and_names_bad_folders(monkeypatch, capsys, tmp_path):
    run = write_tiny_run(tmp_path / "run")
    code, out, _ = run_cli(monkeypatch, capsys, "report", str(run))
    assert code == 0 and (run / "report.html").is_file() and "report.html" in out
    code, _, err = run_cli(monkeypatch, capsys, "report", str(tmp_path / "nope"))
    assert code == 2 and err.strip().count("\n") == 0 and "nope: no such folder" in err


def test_json_values_are_shown_compactly(tmp_path):
    write_json_atomic(tmp_path / "split.json", {"train": [f"s{i}" for i in range(1000)]})
    page = check_page(build_report(tmp_path))
    assert any(cell.startswith("s0, s1,") and cell.endswith("(960 more, 1000 in all)")
               for cell in page.cells)


def test_files_over_the_size_limit_are_listed_not_embedded(tmp_path, monkeypatch):
    monkeypatch.setitem(layout.SHOWN_LIMITS, ".png", 100)
    write_json_atomic(tmp_path / "metrics.json", {"ccc": 0.5})
    _figure(tmp_path / "huge.png", "huge")
    page = check_page(build_report(tmp_path))
    assert page.images == []
    assert "huge.png" in page.cells and "too large to show" in page.cells
