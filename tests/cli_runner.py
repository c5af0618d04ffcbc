"""Running the `affecttrack` command inside a test, as a user's shell would."""

from __future__ import annotations

import sys

from affecttrack.cli import main


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of `affecttrack ARGS...` (a command that returns without
    exiting succeeded)."""
    monkeypatch.setattr(sys, "argv", ["affecttrack", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err
