"""The comparison table: each figure for us and for the Keras reference, their ratio and its target.

Both sides' raw results use the same keys (see `ours.py`), so a figure is one function applied to
either side. Throughputs come from median step times (the reference also prints mean-based ones;
medians resist the odd step another process slowed down). Every ratio is ours / reference of the
figure as shown: above 1 is better for throughputs, below 1 is better for memory.

A side is {"phases": {phase: [one raw result per round]}, "whole_run": raw result or None}.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from affecttrack.runinfo import write_json_atomic, write_text_atomic

Side = dict[str, Any]
Raw = dict[str, Any]


@dataclass(frozen=True)
class Figure:
    """One row: how to read it from each side, and what we promised."""

    label: str
    unit: str
    phase: str | None
    ours: Callable[[Raw], float]
    reference: Callable[[Raw], float]
    target: float | None = None
    higher_is_better: bool = True


def _per_step(batch: int, key: str) -> Callable[[Raw], float]:
    return lambda raw: batch / raw[key]


def _video_rate(key: str) -> Callable[[Raw], float]:
    return lambda raw: raw["video_frames"] / raw[key]


def _peak_rss(raw: Raw) -> float:
    return raw["peak_rss_mb"]


FIGURES = (
    Figure("CNN training, batch 128", "frames/s", "cnn_train",
           _per_step(128, "cnn_train_step_median_s"), _per_step(128, "cnn_train_step_median_s"),
           target=3.0),
    Figure("CNN inference, batch 256", "frames/s", "cnn_infer",
           _per_step(256, "cnn_infer_bs256_batch_median_s"),
           _per_step(256, "cnn_infer_bs256_batch_median_s"), target=2.0),
    Figure("CNN inference, batch 1", "frames/s", "cnn_infer",
           _per_step(1000, "cnn_infer_bs1_latency_median_ms"),
           _per_step(1000, "cnn_infer_bs1_latency_median_ms")),
    Figure("Feature extraction as each pipeline runs it (ours: batches of 256; reference: one "
           "`model.predict` per frame)", "frames/s", "cnn_infer",
           _per_step(256, "cnn_infer_bs256_batch_median_s"),
           _per_step(1000, "cnn_infer_bs1_keras_predict_latency_median_ms")),
    Figure("GRU 100/100/50 training, batch 256 of 100x300", "sequences/s", "gru_train",
           _per_step(256, "gru_train_step_median_s"), _per_step(256, "gru_train_step_median_s")),
    Figure("Video prediction (ours: one many-to-many pass; reference: one 100-frame window per "
           "frame)", "frames/s", "video",
           _video_rate("m2m_full_seq_s"), _video_rate("sliding_total_s")),
    Figure("Video prediction, both in one many-to-many pass", "frames/s", "video",
           _video_rate("m2m_full_seq_s"), _video_rate("m2m_full_seq_s")),
)

MEMORY_TARGET = 0.5


@dataclass(frozen=True)
class Row:
    """A figure's values; None where that side was not measured."""

    label: str
    unit: str
    ours: float | None
    ours_other: float | None
    reference: float | None
    target: float | None
    higher_is_better: bool
    other_cores_ours: float | None
    other_cores_reference: float | None
    precision: str | None = None
    other_precision: str | None = None

    @property
    def ratio(self) -> float | None:
        if self.ours is None or not self.reference:
            return None
        return self.ours / self.reference

    @property
    def met(self) -> bool | None:
        if self.ratio is None or self.target is None:
            return None
        return self.ratio >= self.target if self.higher_is_better else self.ratio <= self.target


def _samples(side: Side | None, phase: str) -> list[Raw]:
    return list((side or {}).get("phases", {}).get(phase, []))


def _median_of(side: Side | None, phase: str, value: Callable[[Raw], float]) -> float | None:
    samples = _samples(side, phase)
    return statistics.median(value(raw) for raw in samples) if samples else None


def _precision(side: Side | None, phase: str) -> str | None:
    samples = _samples(side, phase)
    return samples[0]["precisions"][phase] if samples else None


def _other_cores(side: Side | None, phase: str) -> float | None:
    samples = _samples(side, phase)
    return max(raw["phase_cpu"][phase]["other_cores"] for raw in samples) if samples else None


def _largest_phase_peak(side: Side | None) -> float | None:
    peaks = [raw["peak_rss_mb"] for samples in (side or {}).get("phases", {}).values()
             for raw in samples]
    return max(peaks) if peaks else None


def _whole_run(side: Side | None) -> Raw | None:
    return (side or {}).get("whole_run")


def build_rows(ours: Side, ours_other: Side | None, reference: Side | None) -> list[Row]:
    """Every figure as a row; memory last (whole run, then the largest single phase).

    `ours_other` holds our phases run in the other precision (None: not measured).
    """
    rows = [Row(f.label, f.unit, _median_of(ours, f.phase, f.ours),
                _median_of(ours_other, f.phase, f.ours),
                _median_of(reference, f.phase, f.reference), f.target, f.higher_is_better,
                _other_cores(ours, f.phase), _other_cores(reference, f.phase),
                _precision(ours, f.phase), _precision(ours_other, f.phase))
            for f in FIGURES]
    whole_ours, whole_ref = _whole_run(ours), _whole_run(reference)
    rows.append(Row("Peak memory (RSS), whole run in one process", "MB",
                    _peak_rss(whole_ours) if whole_ours else None, None,
                    _peak_rss(whole_ref) if whole_ref else None, MEMORY_TARGET, False,
                    whole_ours["max_other_cores"] if whole_ours else None,
                    whole_ref["max_other_cores"] if whole_ref else None))
    rows.append(Row("Peak memory (RSS), largest single phase in a fresh process", "MB",
                    _largest_phase_peak(ours), None,
                    _largest_phase_peak(reference), None, False, None, None))
    return rows


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _ratio(row: Row) -> str:
    return "—" if row.ratio is None else f"{row.ratio:.2f}x"


def _target(row: Row) -> str:
    if row.target is None:
        return "—"
    return f"{'>=' if row.higher_is_better else '<='} {row.target:g}x"


def _met(row: Row) -> str:
    return {None: "—", True: "yes", False: "**no**"}[row.met]


def _cores(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _with_precision(value: float | None, precision: str | None) -> str:
    text = _number(value)
    return f"{text} ({precision})" if value is not None and precision else text


def markdown_table(rows: list[Row]) -> str:
    """The rows as a GitHub table."""
    head = ("| figure | unit | ours | reference (Keras) | ours / reference | target | met? | "
            "ours, other precision | other processes' cores, ours / reference |\n"
            "|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(
        f"| {r.label} | {r.unit} | {_with_precision(r.ours, r.precision)} | "
        f"{_number(r.reference)} | {_ratio(r)} | {_target(r)} | {_met(r)} | "
        f"{_with_precision(r.ours_other, r.other_precision)} | "
        f"{_cores(r.other_cores_ours)} / {_cores(r.other_cores_reference)} |\n"
        for r in rows)
    return head + body


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _setup_lines(results: dict[str, Any]) -> list[str]:
    m, ours, ref = results["machine"], results["ours"], results["reference"]
    flags = ", ".join(f"{name} {_yes_no(on)}" for name, on in m["flags"].items())
    lines = [
        f"- Date: {results['created']}",
        f"- Command: `{results['command']}`",
        f"- Commit: {results.get('commit') or 'not recorded'}",
        (f"- Machine: {m['cpu_model']}, {m['cpu_count']} cores ({m['usable_cores']} usable), "
        f"{m['memory_gb']} GB RAM; {flags}"),
        (f"- Ours: torch {ours['torch_version']} (CPU capability {ours['cpu_capability']}), "
        f"{ours['threads']} threads (`torch.set_num_threads`); each phase in the precision the "
        "pipeline picks for it here (bf16-mixed = bf16 autocast, channels_last for the CNN), "
        "and in the other one where this CPU has fast bf16"),
    ]
    if ref:
        threads = ref["tf_intra_op_threads"] or "TensorFlow's default (all cores)"
        lines.append(f"- Reference: TensorFlow {ref['tf_version']} / Keras {ref['keras_version']} "
                     f"(Python {ref['python']}), intra-op threads: {threads}, oneDNN: "
                     f"{ref['onednn_env']}, the original's 7 metrics attached: "
                     f"{_yes_no(ref['metrics_attached'])}")
    else:
        lines.append(f"- Reference: not run, {results['reference_skipped']}")
    lines.append(f"- Phases: {', '.join(results['phases'])}; rounds: {results['rounds']}")
    return lines


def _verdict(rows: list[dict[str, Any]]) -> str:
    judged = [row for row in rows if row["met"] is not None]
    if not judged:
        return "No target could be judged (the reference was not run)."
    missed = [row["label"] for row in judged if not row["met"]]
    met = len(judged) - len(missed)
    return f"Targets met: {met} of {len(judged)}" + (f" (missed: {'; '.join(missed)})."
                                                      if missed else ".")


def results_page(results: dict[str, Any], table: str) -> str:
    """RESULTS.md: set-up, table and how to read it."""
    quick = ("\n**Quick run** (a few steps, a 600-frame video): it checks the set-up; its figures "
             "are not worth quoting.\n" if results["quick"] else "")
    return "\n".join([
        "# Benchmark results",
        "",
        ("Written by `benchmarks/run_benchmarks.py` (do not edit by hand); how to run it and what "
        "each figure measures: [README.md](README.md)."),
        quick,
        *_setup_lines(results),
        "",
        table,
        _verdict(results["rows"]),
        "",
        "How to read it:",
        ("- \"Ours\" runs each phase in the precision the pipeline uses for it on this machine "
        "(training and extraction defaults; sequence prediction is always fp32); the column "
        "\"other precision\" shows what the other choice would give."),
        ("- Ratios are ours / reference of the figure as shown: above 1 is better for throughputs, "
        "below 1 for memory. Throughputs come from median step times after warm-up."),
        ("- \"Other processes' cores\": the most CPU other processes used during that phase "
        "(from /proc/stat). Above about 0.1 the figure was slowed by someone else; re-run on a "
        "quiet machine before quoting it."),
        ("- Memory, whole run: one process running every phase in turn, as the reference runs. "
        "Largest single phase: each phase in a fresh process."),
        "",
    ])


def replace_section(page: str, heading: str, section: str) -> str:
    """`page` with its section under `heading` (up to the next '## ' heading) replaced by
    `section`, or with `section` appended: each benchmark script owns its own part of RESULTS.md."""
    start = page.find(heading + "\n")
    if start < 0:
        return page.rstrip("\n") + "\n\n" + section if page.strip() else section
    end = page.find("\n## ", start + len(heading))
    return page[:start] + section + ("\n" + page[end + 1:] if end >= 0 else "")


def keep_other_sections(old_page: str, new_page: str) -> str:
    """`new_page` followed by the '## ' sections of `old_page` that it does not hold itself, so
    rewriting the main results keeps the sections other benchmark scripts wrote."""
    kept = [part for part in old_page.split("\n## ")[1:]
            if "\n## " + part.split("\n", 1)[0] + "\n" not in "\n" + new_page]
    return new_page.rstrip("\n") + "".join("\n\n## " + part.rstrip("\n") for part in kept) + "\n"


def publish(results: dict[str, Any], json_path: Path, page_path: Path, heading: str,
            section: str) -> None:
    """Write a benchmark's figures to `json_path` and its section into the results page (the
    page's other sections kept, the section replaced in place or appended)."""
    write_json_atomic(json_path, results)
    page = page_path.read_text() if page_path.is_file() else ""
    write_text_atomic(page_path, replace_section(page, heading, section))
