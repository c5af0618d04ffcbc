"""Experiment configs: one YAML file per experiment in `configs/`, overridable on the command line.

A config file has one section per stage (`synth`, `frame`, `sequence`, ...); each section's keys are
the fields of that stage's dataclass, so a typo is reported instead of silently ignored.
Overrides are `section.field=value` strings whose value is parsed as YAML (`frame.lr=1e-3`,
`sequence.hidden=[100,50]`).
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from affecttrack.errors import AffectTrackError, InputError

T = TypeVar("T")


def read_config_file(path: Path) -> dict[str, Any]:
    """The YAML mapping in `path`; a clear error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(path, f"not valid YAML ({str(exc).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(path, "a config file must be a mapping of sections")
    return data


def apply_overrides(sections: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return `sections` with each `section.field=value` override applied."""
    merged = {name: dict(values or {}) for name, values in sections.items()}
    for item in overrides:
        key, sep, raw = item.partition("=")
        section, dot, field = key.strip().partition(".")
        if not sep or not dot or not field:
            raise AffectTrackError(f"override {item!r}: expected section.field=value")
        merged.setdefault(section, {})[field] = yaml.safe_load(raw)
    return merged


def configure(default: T, values: dict[str, Any] | None, *, section: str) -> T:
    """`default` (a dataclass instance) with a config section's values, rejecting unknown fields."""
    values = dict(values or {})
    fields = {f.name for f in dataclasses.fields(default)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - fields)
    if unknown:
        raise AffectTrackError(
            f"config section '{section}': unknown field(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(type(default))
    coerced = {name: _coerce(value, hints.get(name)) for name, value in values.items()}
    return dataclasses.replace(default, **coerced)  # type: ignore[type-var]


def _coerce(value: Any, hint: Any) -> Any:
    """Fit YAML's types to the declared ones: lists to tuples, `1e-3` (a string to YAML) to float."""
    origin = typing.get_origin(hint)
    if isinstance(value, list) and (origin is tuple or hint is tuple):
        return tuple(value)
    if hint is float and isinstance(value, (str, int)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            raise AffectTrackError(f"expected a number, got {value!r}") from None
    return value


def load_sections(config_file: Path | None, overrides: list[str] | None) -> dict[str, Any]:
    """Config file sections with overrides applied (an empty mapping without a file)."""
    sections = read_config_file(config_file) if config_file else {}
    return apply_overrides(sections, overrides or [])
