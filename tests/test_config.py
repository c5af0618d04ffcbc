"""Experiment configs: files plus command-line overrides, typos reported rather than ignored."""

from dataclasses import dataclass, field

import pytest

from affecttrack.config import apply_overrides, configure, load_sections
from affecttrack.errors import AffectTrackError, InputError


@dataclass
class Stage:
    lr: float = 0.01
    optimizer: str = "sgd"
    hidden: tuple[int, ...] = field(default=(100, 100, 50))


def test_overrides_are_parsed_as_yaml_values():
    sections = apply_overrides({"frame": {"lr": 0.01}}, ["frame.lr=1e-3", "frame.hidden=[100]"])
    cfg = configure(Stage(), sections["frame"], section="frame")
    assert cfg.lr == 1e-3 and cfg.hidden == (100,)


def test_configure_keeps_defaults_and_declared_tuple_types():
    cfg = configure(Stage(), {"hidden": [64, 32]}, section="frame")
    assert cfg == Stage(lr=0.01, optimizer="sgd", hidden=(64, 32))


def test_unknown_field_names_the_section_and_the_field():
    with pytest.raises(AffectTrackError, match=r"'frame'.*\blrr\b"):
        configure(Stage(), {"lrr": 1.0}, section="frame")


def test_malformed_override_is_explained():
    with pytest.raises(AffectTrackError, match="section.field=value"):
        apply_overrides({}, ["lr=1"])


def test_config_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("frame: [unclosed\n")
    with pytest.raises(InputError, match="bad.yaml: not valid YAML"):
        load_sections(bad, [])
    with pytest.raises(InputError, match="missing.yaml: config file not found"):
        load_sections(tmp_path / "missing.yaml", [])


def test_file_and_overrides_combine(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("frame:\n  lr: 0.01\n  optimizer: sgd\n")
    sections = load_sections(path, ["frame.optimizer=adam"])
    assert configure(Stage(), sections["frame"], section="frame").optimizer == "adam"
