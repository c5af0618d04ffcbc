"""Named model configurations (as timm names its models) and plain model files.

A name fixes an architecture, so configs, checkpoints and reports can say `gru3` instead of
repeating layer sizes. Each entry names its class (a `FrameNetwork` or `SequenceNetwork`
subclass, `models/base.py`) and that class's constructor arguments: a second backbone family is
one new module plus its entries, added here or at run time with `register_model`.

A plain model file holds the name, any constructor overrides and the weights, nothing
Lightning-specific: later stages (feature extraction, prediction) rebuild the model from it
without importing training code, and `torch.load(weights_only=True)` can read it.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from affecttrack import __version__
from affecttrack.errors import AffectTrackError, InputError
from affecttrack.models.base import FrameNetwork, SequenceNetwork
from affecttrack.models.cnn import FrameCNN
from affecttrack.models.rnn import SequenceRNN
from affecttrack.runinfo import atomic_path

Kind = Literal["frame", "sequence"]
BASES: dict[str, type[nn.Module]] = {"frame": FrameNetwork, "sequence": SequenceNetwork}


@dataclass(frozen=True)
class ModelSpec:
    """A named configuration: the class, a line saying what it is, its constructor arguments."""

    cls: type[nn.Module]
    description: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def _cnn(description: str, **heads: int) -> ModelSpec:
    return ModelSpec(FrameCNN, f"paper CNN, {description}", {"heads": heads})


def _rnn(cell: str, description: str, *hidden_sizes: int) -> ModelSpec:
    return ModelSpec(SequenceRNN, description, {"cell": cell, "hidden_sizes": hidden_sizes})


FRAME_MODELS: dict[str, ModelSpec] = {
    "cnn_va": _cnn("valence/arousal regression head", va=2),
    "cnn_expr7": _cnn("7 basic expressions (Aff-Wild2, JAFFE)", expression=7),
    "cnn_expr8": _cnn("8 expressions with contempt (CK+)", expression=8),
    "cnn_va_expr7": _cnn("valence/arousal and 7 expressions from one trunk", va=2, expression=7),
    "cnn_va_expr8": _cnn("valence/arousal and 8 expressions from one trunk", va=2, expression=8),
    "cnn_va_expr7_au8": _cnn("valence/arousal, 7 expressions and Aff-Wild2 2020's 8 action "
                             "units from one trunk", va=2, expression=7, au=8),
    "cnn_va_expr8_au12": _cnn("valence/arousal, 8 expressions (with Other) and the later ABAW "
                              "releases' 12 action units from one trunk",
                              va=2, expression=8, au=12),
}

SEQUENCE_MODELS: dict[str, ModelSpec] = {
    "rnn1": _rnn("rnn", "SimpleRNN, 1 layer of 100", 100),
    "rnn3": _rnn("rnn", "SimpleRNN, 3 layers of 100, 100, 50", 100, 100, 50),
    "gru1": _rnn("gru", "GRU, 1 layer of 100", 100),
    "gru3": _rnn("gru", "GRU, 3 layers of 100, 100, 50 (the paper's best)", 100, 100, 50),
    "lstm1": _rnn("lstm", "LSTM, 1 layer of 100", 100),
    "lstm3": _rnn("lstm", "LSTM, 3 layers of 100, 100, 50", 100, 100, 50),
}

_REGISTRIES: dict[str, dict[str, ModelSpec]] = {"frame": FRAME_MODELS,
                                                "sequence": SEQUENCE_MODELS}
MODEL_FILE_FORMAT = "affecttrack-model/1"
# A bundle (inference/bundle.py) holds model-file entries; its format is named here, below both
# the bundle code and training, which reads a bundle's frame network for `init_from`.
BUNDLE_FORMAT = "affecttrack-bundle"
# The expression model trained on real photos (docs/MODEL_CARD.md), shipped in the package: what
# inference uses when no model is named, and `frame.init_from: default` starts from.
DEFAULT_BUNDLE = Path(__file__).resolve().parent / "default" / "expressions.bundle.pt"
# 2: the preprocessing may align faces by the eyes (`align`), which an older reader would ignore.
BUNDLE_FORMAT_VERSION = 2


def list_models(kind: Kind | None = None) -> dict[str, str]:
    """Known model names (sorted) with a one-line description, of one kind or all."""
    kinds = [kind] if kind else list(_REGISTRIES)
    specs = {name: spec for k in kinds for name, spec in _registry(k).items()}
    return {name: specs[name].description for name in sorted(specs)}


def create_model(kind: Kind, name: str, **overrides: Any) -> nn.Module:
    """A freshly initialised model of a named configuration; keyword arguments override it."""
    spec = _spec(kind, name)
    return spec.cls(**{**spec.kwargs, **overrides})


def register_model(kind: Kind, name: str, spec: ModelSpec) -> None:
    """Add a named configuration; its class must meet the kind's contract (`models/base.py`)."""
    if not (isinstance(spec.cls, type) and issubclass(spec.cls, BASES[kind])):
        raise AffectTrackError(f"{kind} model {name!r}: {spec.cls!r} is not a "
                               f"{BASES[kind].__name__} subclass")
    models = _registry(kind)
    if name in models:
        raise AffectTrackError(f"a {kind} model named {name!r} is already registered")
    models[name] = spec


def frame_head_sizes(name: str) -> dict[str, int]:
    """The heads of a named frame model, read from its configuration: building the model to ask
    would draw its initial weights from the random generator and shift every later draw of a
    seeded run."""
    return dict(_spec("frame", name).kwargs.get("heads", {"va": 2}))


def create_frame_model(name: str, **overrides: Any) -> FrameNetwork:
    """A frame network by name (`cnn_va`, `cnn_expr7`, `cnn_expr8`, ...)."""
    return create_model("frame", name, **overrides)  # type: ignore[return-value]


def create_sequence_model(name: str, **overrides: Any) -> SequenceNetwork:
    """A sequence model by name (`rnn1`, `rnn3`, `gru1`, `gru3`, `lstm1`, `lstm3`)."""
    return create_model("sequence", name, **overrides)  # type: ignore[return-value]


def save_model_file(path: Path, model: nn.Module, *, kind: Kind, name: str,
                    overrides: dict[str, Any] | None = None,
                    meta: dict[str, Any] | None = None) -> Path:
    """Write name, overrides, free-form `meta` and weights; temporary name, then rename."""
    path = Path(path)
    payload = {"format": MODEL_FILE_FORMAT,
               **model_entry(model, kind=kind, name=name, overrides=overrides, meta=meta)}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def model_entry(model: nn.Module, *, kind: Kind, name: str,
                overrides: dict[str, Any] | None = None,
                meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a model file holds for one model (kind, name, overrides, meta, CPU weights): plain
    types and tensors only, so that `torch.load(weights_only=True)` reads it back."""
    state = {name_: tensor.detach().cpu().contiguous() for name_, tensor
             in model.state_dict().items()}
    return {"kind": kind, "name": name, "overrides": dict(overrides or {}),
            "meta": dict(meta or {}), "state_dict": state}


def load_model_file(path: Path, kind: Kind) -> tuple[nn.Module, dict[str, Any]]:
    """The model in a plain model file (eval mode) and the file's other entries."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"{kind} model file not found")
    payload = load_weights_only(path, "a readable model file")
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FILE_FORMAT:
        raise InputError(path, "not an affecttrack model file (use the frame_model.pt / "
                               "sequence_model.pt written by training)")
    if payload["kind"] != kind:
        raise InputError(path, f"holds a {payload['kind']} model, expected a {kind} model")
    model = model_from_entry(payload, path)
    info = {key: value for key, value in payload.items() if key != "state_dict"}
    return model, info


def load_weights_only(path: Path, what: str, hint: str = "") -> Any:
    """What `torch.save` wrote into `path`, read with `weights_only=True`; a file that cannot be
    read so is one line in our words, "{path}: not {what}: {reason}[; {hint}]". PyTorch's own
    messages advise retrying with weights_only=False, which would run whatever code the file
    carries, so they are never passed on."""
    def refuse(reason: str) -> InputError:
        return InputError(path, f"not {what}: {reason}" + (f"; {hint}" if hint else ""))

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise refuse("it holds Python objects whose loading could run code, so it is not "
                     "opened") from None
    except OSError as exc:
        raise refuse(f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    except Exception:  # a damaged file raises RuntimeError, EOFError, KeyError, ... from torch
        raise refuse("the file is truncated or damaged") from None


def check_bundle_version(payload: dict[str, Any], path: Path) -> None:
    """Refuse a bundle whose format version this affecttrack cannot read: every reader of a
    bundle must refuse newer ones rather than misread them."""
    version = payload.get("format_version")
    if not isinstance(version, int):
        raise InputError(path, f"malformed bundle (format version {version!r})")
    if version > BUNDLE_FORMAT_VERSION:
        raise InputError(path, f"bundle format {version} (written by affecttrack "
                               f"{payload.get('affecttrack_version')}) is newer than this "
                               f"affecttrack {__version__} reads (up to {BUNDLE_FORMAT_VERSION}); "
                               "upgrade affecttrack")


def model_from_entry(entry: dict[str, Any], source: Path) -> nn.Module:
    """The model (eval mode) a `model_entry` describes; `source` names the file in errors."""
    try:
        model = create_model(entry["kind"], entry["name"], **entry["overrides"])
    except (AffectTrackError, TypeError, ValueError) as exc:
        raise InputError(source, f"cannot build {entry['kind']} model {entry['name']!r} "
                                 f"({str(exc).splitlines()[0]})") from None
    try:
        model.load_state_dict(entry["state_dict"])
    except RuntimeError as exc:
        raise InputError(source, f"weights do not fit model {entry['name']!r} "
                                 f"({str(exc).splitlines()[0]})") from None
    return model.eval()


def _spec(kind: str, name: str) -> ModelSpec:
    models = _registry(kind)
    if name not in models:
        raise AffectTrackError(f"unknown {kind} model {name!r}; known: {', '.join(sorted(models))}")
    return models[name]


def _registry(kind: str) -> dict[str, ModelSpec]:
    if kind not in _REGISTRIES:
        raise AffectTrackError(f"unknown model kind {kind!r}; expected one of "
                               f"{sorted(_REGISTRIES)}")
    return _REGISTRIES[kind]
