"""benchmarks/predict.py: its totals and verdict, its argument errors, and a tiny real run."""

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
sys.path.insert(0, str(BENCH))

import predict


def _raw(frames, seconds, other=0.0):
    return {"frames": frames, "frames_with_face": frames, "seconds": seconds, "plot_s": 0.1,
            "other_cores": other, "stages_s": {"cnn": seconds}}


def _videos(ours, reference):
    return {name: {"size": "640x360", "ours": o, "reference": r,
                   "decode": {"frames": o["frames"], "seconds": 1.0}}
            for name, o, r in zip(("a", "b"), ours, reference)}


def test_totals_weigh_videos_by_frames_and_judge_both_targets():
    videos = _videos([_raw(600, 5.0), _raw(100, 5.0, other=0.3)],
                     [_raw(60, 5.0), _raw(40, 5.0)])
    report = {"totals": predict.totals(videos), "videos": videos}
    assert predict.fps(report["totals"]["ours"]) == pytest.approx(70.0)   # not mean(120, 20)
    assert report["totals"]["ours"]["other_cores"] == pytest.approx(0.3)
    verdict = predict.verdict(report)
    assert "70.0, met" in verdict and "7.0x, met" in verdict
    assert "| **all** |  | 700 / 100 | 700 / 100 | 70.0 | 10.0 | 7.0x |" in (
        predict.throughput_table(report))


def test_a_slower_run_misses_the_targets():
    videos = _videos([_raw(100, 5.0), _raw(100, 5.0)], [_raw(100, 25.0), _raw(100, 25.0)])
    verdict = predict.verdict({"totals": predict.totals(videos), "videos": videos})
    assert "20.0, **not met**" in verdict and "5.0x, met" in verdict


@pytest.mark.parametrize("argv, message", [
    (["--names", "single_face"], "--names must include WolfgangLanger_Pexels"),
    (["--names", "WolfgangLanger_Pexels,nope"], "nope.mp4: benchmark video not found"),
])
def test_bad_arguments_give_one_line_errors_before_measuring(argv, message, capsys, tmp_path):
    (tmp_path / "WolfgangLanger_Pexels.mp4").touch()
    out = ["--videos", str(tmp_path), "--out", str(tmp_path / "r.json"),
           "--report", str(tmp_path / "R.md")]
    assert predict.main(argv + out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["WolfgangLanger_Pexels.mp4"]


@pytest.mark.slow
@pytest.mark.skipif(not VIDEOS.is_dir(), reason="shared/data/videos is absent")
def test_a_tiny_run_measures_both_ways_and_the_looped_video(tmp_path):
    report_page = tmp_path / "RESULTS.md"
    report_page.write_text("# Benchmark results\n\n## Face detection\n\nkept\n")
    argv = ["--quick", "--names", "WolfgangLanger_Pexels", "--frames", "24", "--loops", "2",
            "--reference-budget-s", "5", "--max-reference-long-s", "0",
            "--out", str(tmp_path / "predict.json"), "--report", str(report_page)]
    assert predict.main(argv) == 0
    result = json.loads((tmp_path / "predict.json").read_text())
    ours = result["videos"]["WolfgangLanger_Pexels"]["ours"]
    assert ours["frames"] == 24 and ours["frames_with_face"] > 0 and ours["seconds"] > 0
    assert ours["va_source"] == "sequence model" and ours["stages_s"]["sequence"] > 0
    assert result["videos"]["WolfgangLanger_Pexels"]["reference"]["frames"] > 0
    long = result["long"]
    assert long["frames"] == 48 and long["ours"]["frames"] == 48
    assert long["ours"]["peak_rss_mb"] > 0 and long["reference"] is None
    assert long["reference_skipped"].startswith("skipped")
    page = report_page.read_text()
    assert predict.SECTION in page and "## Face detection\n\nkept" in page
