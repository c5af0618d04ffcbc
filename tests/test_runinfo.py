"""A run's record names the code that produced it, so that a published figure can be traced."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from affecttrack.runinfo import source_commit, write_run_info

REPO = Path(__file__).parents[1]


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(),
                    reason="not a git checkout")
def test_run_json_names_the_commit_and_whether_it_was_changed(tmp_path) -> None:
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    expected = _git("rev-parse", "--short=7", "HEAD") + ("-dirty" if dirty else "")
    assert source_commit() == expected
    write_run_info(tmp_path, stage="frame", config={"lr": 0.1}, seed=0)
    assert json.loads((tmp_path / "run.json").read_text())["commit"] == expected


def test_without_git_the_commit_is_unknown(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))   # no git executable to be found
    source_commit.cache_clear()
    try:
        assert source_commit() is None
    finally:
        source_commit.cache_clear()
