"""Starting a frame network from another's weights (`frame.init_from`): pretraining, then
fine-tuning on a small dataset.

The source is a plain model file (frame_model.pt) or a bundle; both store the frame network as
the same model-file entry (`models/registry.py`), so it is read here, below training and
inference, by the file's `format` key. The trunk (every parameter and buffer outside `heads`)
must be the same architecture's, tensor for tensor: copying part of a trunk would silently train
another model than the user asked for. A head is copied when the source has one of the same name
and size, and the classes it names, where the file names them, are the new run's; any other
head keeps its fresh initialisation, and the report says which and why. A bundle names its
expression classes, and a model file written by training names its action units and its
store's expression classes, so a head of the same size over other classes is caught there; an
older model file does not name its expression classes, so a source trained on 7 other classes
than the new run's 7 is copied as if they were the same.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from affecttrack.errors import InputError
from affecttrack.labels import canonical_expression
from affecttrack.models.base import FrameNetwork
from affecttrack.models.registry import (
    BUNDLE_FORMAT,
    DEFAULT_BUNDLE,
    MODEL_FILE_FORMAT,
    check_bundle_version,
    load_weights_only,
    model_from_entry,
)
from affecttrack.runinfo import file_sha256

WHAT = "an affecttrack frame model file or bundle"
HINT = "init_from takes a frame_model.pt written by training, a bundle, or default"
# init_from's name for the default expression model (docs/MODEL_CARD.md), wherever it is installed.
DEFAULT_SOURCE = "default"
HEADS = "heads."


@dataclass(frozen=True)
class WeightSource:
    """A frame network read from a model file or bundle, with the class names the file records
    per head (a bundle's expression labels, the action units training recorded)."""

    path: Path
    sha256: str
    name: str
    overrides: dict[str, Any]
    network: FrameNetwork
    classes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def description(self) -> str:
        """The source's model name, with its constructor overrides when it has any."""
        extra = ", ".join(f"{key}={value}" for key, value in self.overrides.items())
        return f"{self.name} ({extra})" if extra else self.name


@dataclass(frozen=True)
class TransferReport:
    """What `initialise_from` copied: how many tensors, which heads, and which heads kept their
    fresh initialisation and why."""

    source: WeightSource
    tensors_copied: int
    heads_copied: tuple[str, ...]
    heads_reinitialised: dict[str, str]

    def describe(self) -> str:
        """One line for the console."""
        line = (f"init_from {self.source.path}: {self.tensors_copied} tensors copied from "
                f"{self.source.description}; heads copied: "
                f"{', '.join(self.heads_copied) or 'none'}")
        if self.heads_reinitialised:
            why = "; ".join(f"{head} ({reason})"
                            for head, reason in self.heads_reinitialised.items())
            line += f"; heads re-initialised: {why}"
        return line

    def record(self) -> dict[str, Any]:
        """What run.json records of the start: the file (path, sha256) and what was copied."""
        return {"path": str(self.source.path), "sha256": self.source.sha256,
                "model": self.source.name, "overrides": self.source.overrides,
                "tensors_copied": self.tensors_copied, "heads_copied": list(self.heads_copied),
                "heads_reinitialised": dict(self.heads_reinitialised)}


def read_weight_source(path: Path | str) -> WeightSource:
    """The frame network in a model file or bundle (`DEFAULT_SOURCE`: the default model shipped
    in the package); anything else is one line naming the file."""
    path = DEFAULT_BUNDLE if str(path) == DEFAULT_SOURCE else Path(path)
    if not path.is_file():
        raise InputError(path, f"init_from file not found; {HINT}")
    if not zipfile.is_zipfile(path):
        raise InputError(path, f"not {WHAT} (not a file torch.save wrote); {HINT}")
    payload = load_weights_only(path, WHAT, HINT)
    try:
        entry, labels = _frame_entry(payload, path)
        with torch.random.fork_rng(devices=[]):   # building draws weights: keep the seed's order
            network = model_from_entry(entry, path)
        classes = {"au": entry["meta"].get("action_units"),
                   "expression": labels or entry["meta"].get("expressions")}
        return WeightSource(path=path, sha256=file_sha256(path), name=entry["name"],
                            overrides=dict(entry["overrides"]), network=network,
                            classes={head: tuple(names) for head, names in classes.items()
                                     if names})
    except (KeyError, TypeError, AttributeError) as exc:
        raise InputError(path, f"malformed model entry ({type(exc).__name__}: {exc})") from None


def initialise_from(network: FrameNetwork, source: WeightSource, *, name: str,
                    classes: Mapping[str, Sequence[str]] | None = None) -> TransferReport:
    """Copy the source's trunk and matching heads into `network` (a fresh `name` network).

    `classes`: the class names each head of `network` will learn, where known (the store's
    expression names, its action units); a source head of the same size whose file names other
    classes is then re-initialised. A trunk of another architecture is refused in one line
    naming the first tensor that differs.
    """
    target = network.state_dict()
    given = source.network.state_dict()
    _check_trunk(source, _trunk(given), _trunk(target), name)
    copied, reinitialised = [], {}
    for head in network.head_sizes:
        reason = _head_mismatch(head, source, network, dict(classes or {}))
        if reason:
            reinitialised[head] = reason
        else:
            copied.append(head)
    prefixes = tuple(f"{HEADS}{head}." for head in copied)
    taken = {**_trunk(given), **{key: value for key, value in given.items()
                                 if key.startswith(prefixes)}}
    network.load_state_dict({**target, **taken})
    return TransferReport(source=source, tensors_copied=len(taken), heads_copied=tuple(copied),
                          heads_reinitialised=reinitialised)


def _frame_entry(payload: Any, path: Path) -> tuple[dict[str, Any], Sequence[str] | None]:
    """The frame model entry of a model file or bundle, and the bundle's expression labels."""
    kind = payload.get("format") if isinstance(payload, dict) else None
    if kind == MODEL_FILE_FORMAT:
        if payload.get("kind") != "frame":
            raise InputError(path, f"holds a {payload.get('kind')} model, not a frame model; "
                                   f"{HINT}")
        return payload, None
    if kind == BUNDLE_FORMAT:
        check_bundle_version(payload, path)
        return payload["frame"], payload.get("labels")
    raise InputError(path, f"not {WHAT}; {HINT}")


def _trunk(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every parameter and buffer outside the heads."""
    return {key: value for key, value in state.items() if not key.startswith(HEADS)}


def _check_trunk(source: WeightSource, given: dict[str, torch.Tensor],
                 target: dict[str, torch.Tensor], name: str) -> None:
    """Refuse a trunk that is not tensor for tensor the new network's."""
    differences = (_tensor_difference(key, given.get(key), target.get(key), name)
                   for key in dict.fromkeys([*target, *given]))
    difference = next((found for found in differences if found), None)
    if difference:
        raise InputError(source.path, f"init_from holds a {source.description} network whose "
                                      f"trunk differs from {name}'s ({difference}); pick a "
                                      "model of the same family")


def _tensor_difference(key: str, given: torch.Tensor | None, target: torch.Tensor | None,
                       name: str) -> str | None:
    """How one trunk tensor differs between the source and the new `name` network."""
    if given is None:
        return f"the source lacks {key}"
    if target is None:
        return f"{name} lacks {key}"
    if given.shape != target.shape:
        return f"{key} is {_shape(given)} in the source, {_shape(target)} in {name}"
    return None


def _shape(tensor: torch.Tensor) -> str:
    return "x".join(map(str, tensor.shape)) or "a scalar"


def _head_mismatch(head: str, source: WeightSource, network: FrameNetwork,
                   classes: dict[str, Sequence[str]]) -> str | None:
    """Why `head` cannot be copied from the source (None: it can)."""
    size, given = network.head_sizes[head], source.network.head_sizes.get(head)
    if given is None:
        return "the source has no such head"
    if given != size:
        return f"{given} outputs in the source, {size} here"
    theirs, ours = source.classes.get(head), tuple(classes.get(head) or ())
    if theirs and len(ours) == size and _spelled(theirs) != _spelled(ours):
        return f"other classes: {', '.join(theirs)} in the source, {', '.join(ours)} here"
    return None


def _spelled(names: Sequence[str]) -> tuple[str, ...]:
    """Class names under one spelling ("happy" and "Happiness" are one class)."""
    return tuple(canonical_expression(name) or str(name) for name in names)
