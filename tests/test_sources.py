"""The table of data sources: one entry per reader, from which the `prepare` commands are made."""

import inspect
import shutil

import pytest
from cli_runner import run_cli

from affecttrack.data.sources.folder import prepare_folder
from affecttrack.data.sources.registry import SOURCES, data_source, prepare
from affecttrack.data.store import FaceStore
from affecttrack.errors import AffectTrackError

NAMES = ("affwild2", "ckplus", "jaffe", "folder", "videos")


def test_table_lists_every_reader():
    assert tuple(SOURCES) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_each_prepare_function_takes_its_options(name):
    source = data_source(name)
    parameters = inspect.signature(source.prepare_function()).parameters
    assert list(parameters)[:2] == ["root", "out"]
    for option in source.options:
        assert parameters[option.name].kind is inspect.Parameter.KEYWORD_ONLY


def test_unknown_source_names_the_known_ones(tmp_path):
    with pytest.raises(AffectTrackError, match="unknown data source 'affectnet'.*affwild2, ckplus"):
        prepare("affectnet", tmp_path, tmp_path / "store")


def test_prepare_help_lists_every_source(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "prepare", "--help")
    assert code == 0
    for name in NAMES:
        assert name in out


def test_generated_commands_offer_their_sources_options(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "prepare", "folder", "--help")
    assert code == 0
    for option in ("--root", "--out", "--csv", "--no-detect", "--detector", "--margin",
                   "--workers"):
        assert option in out
    code, out, _ = run_cli(monkeypatch, capsys, "prepare", "affwild2", "--help")
    assert code == 0
    assert "cropped_aligned/" in out and "--detector" not in out and "--workers" not in out


@pytest.fixture
def class_folders(synthetic_layouts, tmp_path):
    """A copy of the synthetic CK+48 class folders (already cropped faces)."""
    out, _ = synthetic_layouts
    return shutil.copytree(out / "CK+48", tmp_path / "photos")


def test_prepare_is_the_readers_prepare(class_folders, tmp_path):
    through_table = prepare("folder", class_folders, tmp_path / "a", detect=False, progress=False)
    direct = prepare_folder(class_folders, tmp_path / "b", detect=False, progress=False)
    assert through_table == direct


def test_generated_command_passes_its_options(class_folders, tmp_path, monkeypatch, capsys):
    out = tmp_path / "store"
    code, stdout, err = run_cli(monkeypatch, capsys, "prepare", "folder", "--root",
                                str(class_folders), "--out", str(out), "--no-detect",
                                "--workers", "1")
    assert code == 0, err
    store = FaceStore.open(out)
    assert store.summary["faces"]["all"] == len(list(class_folders.rglob("*.png")))
    assert "class 0 Anger <- 'anger'" in stdout and "face store: train" in stdout
