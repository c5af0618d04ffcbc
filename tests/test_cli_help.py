"""What `affecttrack --help` and each command's help show a user."""

from __future__ import annotations

import re

import pytest
import typer
from cli_runner import run_cli

from affecttrack.cli import app

# The order a user meets the commands in: use a model, then the data and training flow, then tools.
FLOW = ("demo", "predict", "explain", "report", "synth", "prepare", "train", "extract",
        "evaluate", "run", "bundle", "export", "extend", "models")


def _commands() -> list[tuple[list[str], typer.core.TyperCommand]]:
    """Every command as (its words after `affecttrack`, the click command)."""
    root = typer.main.get_command(app)
    found = []
    for name, command in root.commands.items():
        for sub, leaf in getattr(command, "commands", {"": command}).items():
            found.append(([name, sub] if sub else [name], leaf))
    return found


def _flat(text: str) -> str:
    """Help text without box borders and line breaks, as one line of words."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def test_help_lists_the_commands_in_the_order_a_user_meets_them(monkeypatch, capsys) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    code, out, _ = run_cli(monkeypatch, capsys, "--help")
    assert code == 0
    places = [re.search(rf"^\W*{name}\s", out, re.M) for name in FLOW]
    assert all(places), [name for name, place in zip(FLOW, places) if not place]
    assert [place.start() for place in places] == sorted(place.start() for place in places)
    assert {words[0] for words, _ in _commands()} == set(FLOW)


@pytest.mark.parametrize("words", [words for words, _ in _commands()], ids=" ".join)
def test_help_keeps_every_bracketed_word(monkeypatch, capsys, words) -> None:
    """Help texts name extras as affecttrack[onnx]; markup must not eat the brackets."""
    monkeypatch.setenv("COLUMNS", "200")
    command = dict((" ".join(w), c) for w, c in _commands())[" ".join(words)]
    texts = [command.help or ""] + [getattr(param, "help", None) or "" for param in command.params]
    bracketed = {match for text in texts for match in re.findall(r"\w*\[[^\]]+\]", _flat(text))}
    code, out, _ = run_cli(monkeypatch, capsys, *words, "--help")
    assert code == 0
    assert sorted(word for word in bracketed if word not in _flat(out)) == []


def test_the_export_help_names_its_extra(monkeypatch, capsys) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    _, out, _ = run_cli(monkeypatch, capsys, "export", "--help")
    assert "affecttrack[onnx]" in out
