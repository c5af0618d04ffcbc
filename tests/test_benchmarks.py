"""The benchmark's comparison logic and command line (benchmarks/ is scripts, not the package)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import report
import run_benchmarks


def _raw(phase, cnn_step_s=1.0, peak_mb=1000.0, other=0.0):
    return {"cnn_train_step_median_s": cnn_step_s, "peak_rss_mb": peak_mb,
            "max_other_cores": other, "phase_cpu": {phase: {"other_cores": other}},
            "precisions": {phase: "bf16-mixed"}}


def _side(cnn_steps, peak_mb, whole_peak_mb):
    return {"phases": {"cnn_train": [_raw("cnn_train", s, peak_mb, 0.02 * i)
                                     for i, s in enumerate(cnn_steps)]},
            "whole_run": {"peak_rss_mb": whole_peak_mb, "max_other_cores": 0.0}}


def _row(rows, label_start):
    return next(r for r in rows if r.label.startswith(label_start))


def test_throughput_ratio_uses_the_median_over_rounds_and_judges_the_target():
    ours = _side([0.5, 0.4, 10.0], peak_mb=800, whole_peak_mb=900)   # one disturbed round
    ref = _side([1.6, 1.5, 1.7], peak_mb=2000, whole_peak_mb=3000)
    row = _row(report.build_rows(ours, None, ref), "CNN training")
    assert row.ours == pytest.approx(128 / 0.5) and row.reference == pytest.approx(128 / 1.6)
    assert row.ratio == pytest.approx(3.2) and row.met is True
    assert row.other_cores_ours == pytest.approx(0.04)


def test_memory_is_better_when_lower_and_compares_whole_runs():
    ours = _side([1.0], peak_mb=1400, whole_peak_mb=1600)
    ref = _side([1.0], peak_mb=2000, whole_peak_mb=3000)
    rows = report.build_rows(ours, None, ref)
    whole = _row(rows, "Peak memory (RSS), whole run")
    assert whole.ratio == pytest.approx(1600 / 3000) and whole.met is False
    assert _row(rows, "Peak memory (RSS), largest single phase").ours == 1400


def test_without_the_reference_nothing_is_judged():
    rows = report.build_rows(_side([1.0], 1000, 1000), None, None)
    assert all(r.ratio is None and r.met is None for r in rows)
    table = report.markdown_table(rows)
    cnn_row = "| CNN training, batch 128 | frames/s | 128 (bf16-mixed) | — | — | >= 3x | — |"
    assert cnn_row in table


def test_each_phase_of_ours_runs_next_to_the_reference_in_alternating_order():
    args = run_benchmarks.parse_args(["--rounds", "2", "--phases", "cnn_train,video"])
    precisions = {"cnn_train": "bf16-mixed", "video": "32-true"}
    jobs = run_benchmarks.plan(args, ["cnn_train", "video"], Path(sys.executable), precisions,
                               fast_bf16=True)
    order = [(j.side, j.phase) for j in jobs]
    other = "ours_other_precision"
    assert order[:3] == [("ours", "cnn_train"), ("reference", "cnn_train"), (other, "cnn_train")]
    assert order[6:9] == [(other, "cnn_train"), ("reference", "cnn_train"), ("ours", "cnn_train")]
    assert order[-2:] == [("ours", "whole_run"), ("reference", "whole_run")]
    assert "cnn_train=32-true" in jobs[2].command and "video=bf16-mixed" in jobs[5].command
    whole_ours, whole_ref = jobs[-2].command, jobs[-1].command
    assert "cnn_train=bf16-mixed,video=32-true" in whole_ours
    assert whole_ref[whole_ref.index("--only") + 1] == "cnn_train,video"


def test_without_fast_bf16_an_fp32_phase_has_no_other_precision_to_try():
    args = run_benchmarks.parse_args(["--phases", "video"])
    jobs = run_benchmarks.plan(args, ["video"], None, {"video": "32-true"}, fast_bf16=False)
    assert [(j.side, j.phase) for j in jobs] == [("ours", "video"), ("ours", "whole_run")]


@pytest.mark.parametrize("argv, message", [
    (["--keras-python", "/no/such/python"], "/no/such/python: not an executable python"),
    (["--phases", "cnn_train,typo"], "--phases: unknown"),
    (["--rounds", "0"], "--rounds must be at least 1"),
])
def test_bad_arguments_give_one_line_errors_before_measuring(argv, message, capsys, tmp_path):
    out = ["--out", str(tmp_path / "r.json"), "--report", str(tmp_path / "R.md")]
    assert run_benchmarks.main(argv + out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_our_quick_run_feeds_every_row_of_ours():
    proc = subprocess.run([sys.executable, str(BENCH / "ours.py"), "--quick", "--video-frames",
                           "200", "--phases", "cnn_train,cnn_infer,gru_train,video=32-true"],
                          capture_output=True, text=True, check=True)
    raw = json.loads(proc.stdout.strip().splitlines()[-1])
    side = {"phases": {phase: [raw] for phase in run_benchmarks.PHASES}, "whole_run": raw}
    rows = report.build_rows(side, None, None)
    assert all(r.ours is not None and r.ours > 0 for r in rows)
    assert raw["precisions"]["video"] == "32-true"
    assert raw["m2m_vs_window0_maxabsdiff"] < 1e-5


def test_rewriting_the_main_results_keeps_other_scripts_sections() -> None:
    old = "# Benchmark results\n\nold figures\n\n## Face detection\n\ndetector table\n"
    page = report.keep_other_sections(old, "# Benchmark results\n\nnew figures\n")
    assert "new figures" in page and "old figures" not in page
    assert page.endswith("## Face detection\n\ndetector table\n")
    again = report.replace_section(page, "## Face detection", "## Face detection\n\nnewer\n")
    assert again.count("## Face detection") == 1 and "detector table" not in again
