"""Experiment configs: one YAML file per experiment in `configs/`, overridable on the command line.

A config file has one section per stage (`synth`, `frame`, `sequence`, ...); each section's keys are
the fields of that stage's dataclass, so a typo is reported instead of silently ignored.
Overrides are `section.field=value` strings whose value is parsed as YAML (`frame.lr=1e-3`,
`sequence.hidden=[100,50]`).

Every value is checked before any work starts, so a bad setting is one line naming it rather
than a traceback after the face store was built. The checks are declared with each field: its
type hint says what kind of value it holds (an `int` is an integer, never a bool or 8.0; a
`float` a finite number; a `bool` only true or false; `X | None` also null; `list[X]` and
`tuple[X, ...]` lists of such), and `setting(default, ...)` adds the bounds or the choices
(`Allowed`). A settings class calls `check_settings(self)` in `__post_init__`, so settings built
from the API or from command-line options are held to the same rules as those read from YAML.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, TypeVar

import yaml

from affecttrack.errors import AffectTrackError, InputError

T = TypeVar("T")
SEED_MAX = 2**32 - 1  # NumPy's and Lightning's seeds are unsigned 32-bit integers
_ALLOWED = "affecttrack.allowed"
_BOOLEAN_WORDS = {"true": True, "false": False}


@dataclasses.dataclass(frozen=True)
class Allowed:
    """What a setting may hold beyond its declared type.

    Bounds (`minimum`, `maximum` inclusive; `above`, `below` exclusive) apply to numbers, and to
    each item of a list; `choices` to strings, and to each item of a list: it is the collection
    the code itself uses (a registry's dict grows when a model is registered, and the check sees
    it). `also` are values allowed outside the bounds (-1: no limit). `test` is a further
    condition on the whole value, described by `expected`, for rules the others cannot say.
    """

    minimum: float | None = None
    above: float | None = None
    maximum: float | None = None
    below: float | None = None
    choices: Collection[str] | None = None
    also: tuple[Any, ...] = ()
    test: Callable[[Any], bool] | None = None
    expected: str | None = None


def setting(default: Any = dataclasses.MISSING, *,
            factory: Callable[[], Any] | Any = dataclasses.MISSING, **allowed: Any) -> Any:
    """A dataclass field with a default (or a default `factory`) whose values `check_settings`
    holds to `Allowed(**allowed)` besides the field's type."""
    return dataclasses.field(default=default, default_factory=factory,
                             metadata={_ALLOWED: Allowed(**allowed)})


class SettingError(AffectTrackError):
    """A setting's value that its type or its rules do not allow; the message names the setting
    (`section.field` once `configure` knows the section), the value and what is allowed."""

    def __init__(self, name: str, value: Any, expected: str) -> None:
        super().__init__(f"{name}: {value!r} is not allowed; expected {expected}")
        self.name, self.value, self.expected = name, value, expected

    def within(self, section: str, given: dict[str, Any]) -> SettingError:
        """The same error, the setting named within its config section and its value as `given`
        there (before `configure` made "1e-3" or 1 a float)."""
        return SettingError(f"{section}.{self.name}", given.get(self.name, self.value),
                            self.expected)


def check_settings(config: Any) -> None:
    """Raise `SettingError` for the first field of dataclass `config` whose value its type hint
    and its `setting(...)` rules do not allow."""
    for name, (hint, allowed) in _rules(type(config)).items():
        value = getattr(config, name)
        if not _allows(hint, allowed, value):
            raise SettingError(name, value, _expected(hint, allowed))


@functools.cache
def _rules(cls: type) -> dict[str, tuple[Any, Allowed]]:
    """Each field's type hint and rules. A subclass that only changes a field's default keeps
    the rules of the class that declared them (the nearest class in the MRO with rules)."""
    hints = typing.get_type_hints(cls)
    rules = {}
    for field in dataclasses.fields(cls):
        declared = (vars(klass).get("__dataclass_fields__", {}).get(field.name)
                    for klass in cls.__mro__)
        allowed = next((f.metadata[_ALLOWED] for f in declared
                        if f is not None and _ALLOWED in f.metadata), Allowed())
        rules[field.name] = (hints[field.name], allowed)
    return rules


def _members(hint: Any) -> tuple[Any, ...]:
    """The types a union hint admits (`int | None` -> int, NoneType); a plain hint alone."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _allows(hint: Any, allowed: Allowed, value: Any) -> bool:
    if value is None:
        return type(None) in _members(hint)
    if not any(_fits(member, allowed, value) for member in _members(hint)):
        return False
    return allowed.test is None or bool(allowed.test(value))


def _fits(hint: Any, allowed: Allowed, value: Any) -> bool:
    """Whether `value` is of type `hint` and within the bounds and choices of `allowed`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(
                _fits(arg, allowed, item) for arg, item in zip(args, value, strict=True))
        return all(_fits(args[0], allowed, item) for item in value) if args else True
    if hint is bool:
        return isinstance(value, bool)
    if hint is int or hint is float:
        kind = numbers.Integral if hint is int else numbers.Real
        if not isinstance(value, kind) or isinstance(value, bool):
            return False
        if hint is float and not _finite(value):
            return False
        return value in allowed.also or _within_bounds(allowed, value)
    if hint is str:
        return isinstance(value, str) and (allowed.choices is None or value in allowed.choices)
    if hint is Any or not isinstance(hint, type):
        return True
    return isinstance(value, hint)


def _finite(value: numbers.Real) -> bool:
    """Not NaN nor infinite, nor an integer too large for a float."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _within_bounds(allowed: Allowed, value: float) -> bool:
    return ((allowed.minimum is None or value >= allowed.minimum)
            and (allowed.above is None or value > allowed.above)
            and (allowed.maximum is None or value <= allowed.maximum)
            and (allowed.below is None or value < allowed.below))


def _expected(hint: Any, allowed: Allowed) -> str:
    """What the field allows, in words: "an integer >= 1", "one of sgd, adam, adamw, or null"."""
    if allowed.expected:
        return allowed.expected
    members = _members(hint)
    words = " or ".join(_describe(member, allowed) for member in members
                        if member is not type(None))
    return words + ", or null" if type(None) in members else words


def _describe(hint: Any, allowed: Allowed) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (list, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} items, each {_describe(args[0], allowed)}"
        return f"a list, each item {_describe(args[0], allowed)}" if args else "a list"
    if hint is bool:
        return "true or false"
    if hint is int or hint is float:
        bounds = [f"{sign} {_number(bound)}" for sign, bound in (
            (">=", allowed.minimum), (">", allowed.above), ("<=", allowed.maximum),
            ("<", allowed.below)) if bound is not None]
        words = ("an integer" if hint is int else "a finite number") + (
            " " + " and ".join(bounds) if bounds else "")
        return " or ".join([words, *map(_number, allowed.also)])
    if hint is str:
        return ("one of " + ", ".join(map(str, allowed.choices)) if allowed.choices is not None
                else "a string")
    return f"a {getattr(hint, '__name__', hint)}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def read_config_file(path: Path) -> dict[str, Any]:
    """The YAML mapping in `path`; a clear error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not UTF-8 text (byte {exc.start})") from None
    except (yaml.YAMLError, ValueError) as exc:
        # ValueError: YAML's implicit dates, such as 2001-13-45, that are no dates.
        raise InputError(path, f"not valid YAML ({(str(exc).splitlines() or ['?'])[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(path, "a config file must be a mapping of sections")
    return data


def apply_overrides(sections: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return `sections` with each `section.field=value` override applied."""
    merged = {name: dict(values or {}) for name, values in sections.items()}
    for item in overrides:
        section, field, value = _override(item)
        merged.setdefault(section, {})[field] = value
    return merged


def _override(item: str) -> tuple[str, str, Any]:
    """`section.field=value` -> section, field and the value parsed as YAML."""
    key, sep, raw = item.partition("=")
    section, dot, field = key.strip().partition(".")
    if not sep or not dot or not field:
        raise AffectTrackError(f"override {item!r}: expected section.field=value")
    try:
        return section, field, yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise AffectTrackError(f"override {item!r}: not a YAML value "
                               f"({str(exc).splitlines()[0]})") from None


def configure(default: T, values: dict[str, Any] | None, *, section: str) -> T:
    """`default` (a dataclass instance) with a config section's values, rejecting unknown fields
    and values that a field's type or rules do not allow (named as `section.field`)."""
    values = dict(values or {})
    fields = {f.name for f in dataclasses.fields(default)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - fields)
    if unknown:
        raise AffectTrackError(
            f"config section '{section}': unknown field(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(type(default))
    coerced = {name: _coerce(value, hints[name]) for name, value in values.items()}
    try:
        config = dataclasses.replace(default, **coerced)  # type: ignore[type-var]
        check_settings(config)
    except SettingError as exc:
        raise exc.within(section, values) from None
    return config


def _coerce(value: Any, hint: Any) -> Any:
    """Fit YAML's types to the declared ones: lists to tuples, `1e-3` (a string to YAML 1.1) and
    integers to floats, the strings "true" and "false" to booleans. Anything else is left as it
    is for `check_settings` to refuse: "no" is never read as a boolean."""
    members = _members(hint)
    if isinstance(value, list) and any(typing.get_origin(m) is tuple or m is tuple
                                       for m in members):
        return tuple(value)
    if bool in members and isinstance(value, str) and value in _BOOLEAN_WORDS:
        return _BOOLEAN_WORDS[value]
    if float in members and not isinstance(value, bool):
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return value
        if isinstance(value, int) and int not in members and _finite(value):
            return float(value)
    return value


def load_sections(config_file: Path | None, overrides: list[str] | None,
                  sections: Collection[str] | None = None) -> dict[str, Any]:
    """Config file sections with overrides applied (an empty mapping without a file). With
    `sections` (those the command reads), an override of any other section is refused rather
    than silently ignored; a file may hold more sections, for other commands."""
    overrides = overrides or []
    for item in overrides if sections is not None else ():
        if _override(item)[0] not in sections:
            raise AffectTrackError(f"--set {item}: this command reads only the section(s) "
                                   f"{', '.join(sections)}")
    return apply_overrides(read_config_file(config_file) if config_file else {}, overrides)
