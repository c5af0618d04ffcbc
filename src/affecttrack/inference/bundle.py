"""A model bundle: the one file that prediction, export and streaming need.

A bundle holds the frame network (any heads), the optional sequence network, how faces must be
prepared for them, the expression class names, the affecttrack version that wrote it and a format
version. Training writes two plain model files in two run folders and records none of the
preprocessing; a user who wants to run the model elsewhere needs all of it together and checked
against each other (the sequence network must read this frame network's features, the label list
must fit the expression head).

Storage: one `torch.save` file read back with `torch.load(weights_only=True)`, whose unpickler
only rebuilds tensors and plain containers, so opening a bundle from a stranger runs no code. That
is the same mechanism the plain model files already use (`models/registry.py`), so each network
is stored as exactly the entry a model file holds, and no new dependency is needed. safetensors +
JSON would give the same safety but two files (or metadata squeezed into string-to-string header
fields) and a second way of storing models in the project; ONNX export (`export.py`) covers use
outside PyTorch.
"""

from __future__ import annotations

import json
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from affecttrack import __version__
from affecttrack.data.align import ALIGNMENT, aligner_for, checked_alignment, crop_face
from affecttrack.data.detect import (
    DEFAULT_DETECTOR,
    DETECTORS,
    FaceBox,
    FaceDetector,
    create_detector,
)
from affecttrack.data.faces import FACE_SIZE
from affecttrack.data.store import SUMMARY_FILE
from affecttrack.errors import AffectTrackError, InputError
from affecttrack.labels import (
    ACTION_UNITS_2020,
    ACTION_UNITS_LATER,
    AFFWILD2_EXPRESSIONS,
    CKPLUS_EXPRESSIONS,
)
from affecttrack.models.base import FrameNetwork, SequenceNetwork
from affecttrack.models.cnn import INPUT_DIVISOR, faces_to_input
from affecttrack.models.registry import (
    BUNDLE_FORMAT,
    BUNDLE_FORMAT_VERSION,
    DEFAULT_BUNDLE,
    MODEL_FILE_FORMAT,
    check_bundle_version,
    load_model_file,
    load_weights_only,
    model_entry,
    model_from_entry,
)
from affecttrack.runinfo import atomic_path

MAKE_BUNDLE_HINT = ("make one with `affecttrack bundle --frame FRAME_MODEL "
                    "[--sequence SEQUENCE_MODEL] --out BUNDLE`")
# Expression heads whose class names are known without being told: the project's datasets.
DEFAULT_LABELS: dict[int, tuple[str, ...]] = {len(AFFWILD2_EXPRESSIONS): AFFWILD2_EXPRESSIONS,
                                              len(CKPLUS_EXPRESSIONS): CKPLUS_EXPRESSIONS}
# Action-unit heads whose units are known without being told: Aff-Wild2's two AU sets.
DEFAULT_ACTION_UNITS: dict[int, tuple[str, ...]] = {len(ACTION_UNITS_2020): ACTION_UNITS_2020,
                                                    len(ACTION_UNITS_LATER): ACTION_UNITS_LATER}
# Entries of Bundle.meta that the file stores in its own fields rather than in its "meta".
_OWN_FIELDS = ("format_version", "affecttrack_version", "frame", "sequence")


@dataclass(frozen=True)
class Preprocessing:
    """How a face must be turned into the frame network's input, as its training data was.

    `detector` None means the network was trained on faces that came already cropped (Aff-Wild2's
    aligned crops) and a caller must supply crops; otherwise faces are found with that detector
    (`affecttrack.data.detect.create_detector`, `detector_settings` its keyword arguments, empty
    for its defaults) and cropped with `margin` of the box added on each side (the default is
    `detect_largest_face`'s), or, when `align` holds alignment settings (`data.align.ALIGNMENT`;
    None in bundles that predate alignment), aligned by the eyes, falling back to that box crop
    where a prepare does. The crop becomes a `face_size` square, grey when `grey`, uint8 divided
    by `input_divisor`: `crop` and `to_input` do both, as prediction must.
    """

    face_size: int = FACE_SIZE
    grey: bool = True
    input_divisor: float = INPUT_DIVISOR
    detector: str | None = DEFAULT_DETECTOR
    detector_settings: dict[str, Any] = field(default_factory=dict)
    margin: float = 0.1
    align: dict[str, Any] | None = None

    def make_detector(self, name: str | None = None) -> FaceDetector | None:
        """A new face detector: `name`, or the one training used (with its settings); None when
        neither names one (a model for ready-cropped faces). Every face-finding path starts
        here, so a missing landmark model for an aligning bundle fails here, before any frame."""
        if self.align is not None:
            aligner_for(self.align)
        name = name or self.detector
        if name is None:
            return None
        return create_detector(name, **(self.detector_settings if name == self.detector else {}))

    def crop(self, grey: np.ndarray, box: FaceBox) -> np.ndarray:
        """The face in `box` of a frame as the network's training faces were cropped (aligned
        by the eyes, or the box crop where the store kept one)."""
        return crop_face(grey, box, self.margin, self.face_size, self.align)[0]

    def to_input(self, faces: np.ndarray) -> torch.Tensor:
        """(n, face_size, face_size) uint8 crops -> the frame network's float input."""
        return faces_to_input(faces, self.input_divisor)

    def check(self, frame: FrameNetwork, source: Path | None) -> None:
        """Refuse a preprocessing that the frame network cannot take."""
        if not self.grey:
            raise InputError(source, "the bundle's preprocessing asks for colour faces; this "
                                     "affecttrack prepares grey faces only")
        if self.face_size != frame.input_size:
            raise InputError(source, f"the bundle's preprocessing makes {self.face_size}-pixel "
                                     f"faces, the frame network takes {frame.input_size}")
        if not self.input_divisor > 0:
            raise InputError(source, f"the bundle's input divisor {self.input_divisor} is not "
                                     "positive")
        if self.align is not None:
            try:
                checked_alignment(self.align)
            except AffectTrackError as error:
                raise InputError(source, f"the bundle's preprocessing: {error}") from None


@dataclass(frozen=True)
class Bundle:
    """A loaded bundle: networks in eval mode, labels, preprocessing and what describes them.

    `labels`: the expression head's class names (None without an expression head). `meta`:
    `format_version`, `affecttrack_version` (of the writer), `frame` and `sequence` (each model's
    name, constructor overrides and training meta, e.g. the sequence `target`; `sequence` None
    without a sequence network), plus `created` and `sources` (the model files it was made from).
    """

    frame: FrameNetwork
    sequence: SequenceNetwork | None
    labels: tuple[str, ...] | None
    preprocessing: Preprocessing
    meta: dict[str, Any]

    @property
    def action_units(self) -> tuple[str, ...]:
        """The action-unit head's units (empty without one): as the frame model's training
        recorded them, else Aff-Wild2's set of that size."""
        return _action_units_for(self.frame, self.meta["frame"], None)

    @property
    def sequence_target(self) -> str | None:
        """How the sequence network was trained ("many_to_many" / "many_to_one"), if it has one."""
        if self.meta.get("sequence") is None:
            return None
        return self.meta["sequence"]["meta"].get("target", "many_to_many")

    def summary(self) -> str:
        """One line saying what the bundle holds."""
        heads = ", ".join(f"{name} ({size})" for name, size in self.frame.head_sizes.items())
        parts = [f"frame {self.meta['frame']['name']}: {heads}"]
        if self.sequence is not None:
            parts.append(f"sequence {self.meta['sequence']['name']} ({self.sequence_target})")
        if self.labels:
            parts.append(f"labels {', '.join(self.labels)}")
        parts.append(f"detector {self.preprocessing.detector or 'none (cropped faces)'}")
        if self.preprocessing.align is not None:
            parts.append(f"faces aligned by the eyes ({self.preprocessing.align['method']})")
        return "; ".join(parts)


def training_crops(frame: Path) -> tuple[dict[str, Any], str] | None:
    """How the faces that `frame` (a frame model file) learnt from were found and cropped, and
    the store that says so: its training run's run.json (beside the model file) names the
    store, whose summary records the settings. None when any of that is missing, or when the
    store holds ready-cropped faces (its settings name no detector)."""
    try:
        store = Path(json.loads((Path(frame).parent / "run.json").read_text())["data"]["store"])
        settings = json.loads((store / SUMMARY_FILE).read_text())["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(settings, dict) or not isinstance(settings.get("detector"), str):
        return None
    return settings, str(store)


def preprocessing_for(frame: Path, *, detector: str | None = None, margin: float | None = None,
                      align: bool | None = None) -> tuple[Preprocessing, str]:
    """The preprocessing of a bundle of `frame`, and one line saying where each part came from.

    What is given wins (`detector` "none": faces come already cropped); the rest is what the
    frame model's training store recorded (`training_crops`), else the defaults. So a model
    trained on aligned faces is bundled to align them without being told.
    """
    recorded = training_crops(frame)
    settings, store = recorded or ({}, None)
    from_store = "training store" if store else "default"
    given = {"detector": detector, "margin": margin, "align": align}
    chosen = {"detector": settings.get("detector", DEFAULT_DETECTOR),
              "margin": settings.get("margin", 0.1), "align": settings.get("align")}
    if detector is not None:
        chosen["detector"] = None if detector == "none" else detector
    if margin is not None:
        chosen["margin"] = margin
    if align is not None:
        chosen["align"] = dict(ALIGNMENT) if align else None
    origin = {name: "given" if value is not None else from_store for name, value in given.items()}
    line = (f"preprocessing: detector {chosen['detector'] or 'none'} ({origin['detector']}), "
            f"margin {chosen['margin']} ({origin['margin']}), "
            f"{'aligned by the eyes' if chosen['align'] else 'box crops'} ({origin['align']})")
    if store is not None:
        line += f"; training store {store}"
    elif None in given.values():
        line += ("; the frame model's training run names no store that recorded how it found "
                 "faces")
    return Preprocessing(**chosen), line


def make_bundle(frame: Path, sequence: Path | None = None, *, out: Path,
                labels: tuple[str, ...] | list[str] | None = None,
                preprocessing: Preprocessing | None = None) -> Bundle:
    """Bundle training's model files (frame_model.pt, optionally sequence_model.pt) into `out`.

    `labels` name the expression head's classes; left out, they are the training store's (which
    a model file written by training records), else Aff-Wild2's 7 or CK+'s 8 in their order.
    Returns the bundle as `load_bundle` would read it.
    """
    frame_net, frame_info = load_model_file(frame, "frame")
    sequence_net, sequence_info = (load_model_file(sequence, "sequence")
                                   if sequence is not None else (None, None))
    preprocessing = preprocessing or Preprocessing()
    if preprocessing.detector is not None and preprocessing.detector not in DETECTORS:
        raise AffectTrackError(f"unknown face detector {preprocessing.detector!r}; expected one "
                               f"of {', '.join(DETECTORS)} (or none for cropped faces)")
    recorded = frame_info.get("meta", {}).get("expressions")
    labels = _labels_for(frame_net, labels or recorded, frame)
    preprocessing.check(frame_net, frame)
    _action_units_for(frame_net, frame_info, frame)
    _check_feature_dims(frame_net, sequence_net, sequence)
    sources = {"frame": str(frame)}
    if sequence is not None:
        sources["sequence"] = str(sequence)
    bundle = Bundle(frame=frame_net, sequence=sequence_net, labels=labels,
                    preprocessing=preprocessing,
                    meta={"format_version": BUNDLE_FORMAT_VERSION,
                          "affecttrack_version": __version__, "frame": _describe(frame_info),
                          "sequence": _describe(sequence_info),
                          "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "sources": sources})
    save_bundle(bundle, out)
    return bundle


def save_bundle(bundle: Bundle, path: Path) -> Path:
    """Write `bundle` to `path` (temporary name, then rename) in this version's format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": BUNDLE_FORMAT, "format_version": BUNDLE_FORMAT_VERSION,
        "affecttrack_version": __version__,
        "frame": model_entry(bundle.frame, kind="frame", **bundle.meta["frame"]),
        "sequence": (model_entry(bundle.sequence, kind="sequence", **bundle.meta["sequence"])
                     if bundle.sequence is not None else None),
        "labels": list(bundle.labels) if bundle.labels is not None else None,
        "preprocessing": asdict(bundle.preprocessing),
        "meta": {key: value for key, value in bundle.meta.items() if key not in _OWN_FIELDS},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_bundle(path: Path | None = None) -> Bundle:
    """The bundle in `path` (the default expression model shipped with the package when None),
    checked; every problem is an InputError naming the file."""
    path = DEFAULT_BUNDLE if path is None else Path(path)
    payload = _read_payload(path)
    try:
        frame = _network(payload["frame"], "frame", path)
        sequence = (_network(payload["sequence"], "sequence", path)
                    if payload["sequence"] is not None else None)
        preprocessing = Preprocessing(**payload["preprocessing"])
        labels = tuple(payload["labels"]) if payload["labels"] is not None else None
        meta = {**payload["meta"], "format_version": payload["format_version"],
                "affecttrack_version": payload["affecttrack_version"],
                "frame": _describe(payload["frame"]), "sequence": _describe(payload["sequence"])}
    except (KeyError, TypeError) as exc:
        raise InputError(path, f"malformed bundle ({type(exc).__name__}: {exc})") from None
    _labels_for(frame, labels, path)
    preprocessing.check(frame, path)
    _action_units_for(frame, meta["frame"], path)
    _check_feature_dims(frame, sequence, path)
    return Bundle(frame=frame, sequence=sequence, labels=labels, preprocessing=preprocessing,
                  meta=meta)


def _read_payload(path: Path) -> dict[str, Any]:
    """The file's dict, once it is known to be a bundle this version can read."""
    if not path.is_file():
        raise InputError(path, "bundle not found")
    if not zipfile.is_zipfile(path):
        raise InputError(path, f"not an affecttrack bundle (not a file torch.save wrote); "
                               f"{MAKE_BUNDLE_HINT}")
    payload = load_weights_only(path, "a readable affecttrack bundle", MAKE_BUNDLE_HINT)
    if isinstance(payload, dict) and payload.get("format") == MODEL_FILE_FORMAT:
        raise InputError(path, f"is a plain {payload.get('kind', '')} model file, not a bundle; "
                               f"{MAKE_BUNDLE_HINT}")
    if not isinstance(payload, dict) or payload.get("format") != BUNDLE_FORMAT:
        raise InputError(path, f"not an affecttrack bundle; {MAKE_BUNDLE_HINT}")
    check_bundle_version(payload, path)
    return payload


def _network(entry: dict[str, Any], kind: str, path: Path) -> Any:
    if entry["kind"] != kind:
        raise InputError(path, f"malformed bundle (its {kind} network is a {entry['kind']} model)")
    return model_from_entry(entry, path)


def _describe(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    """A model's name, overrides and training meta: what rebuilds it, without the weights."""
    if entry is None:
        return None
    return {"name": entry["name"], "overrides": entry["overrides"], "meta": entry["meta"]}


def _labels_for(frame: FrameNetwork, labels: tuple[str, ...] | list[str] | None,
                source: Path) -> tuple[str, ...] | None:
    """The expression class names, checked against the expression head's size."""
    size = frame.head_sizes.get("expression")
    if size is None:
        if labels:
            raise InputError(source, "labels given, but the frame model has no expression head")
        return None
    if labels is None:
        if size not in DEFAULT_LABELS:
            raise InputError(source, f"the expression head has {size} classes; name them with "
                                     "--labels (comma-separated, in class order)")
        return DEFAULT_LABELS[size]
    if len(labels) != size:
        raise InputError(source, f"{len(labels)} labels given for an expression head of {size} "
                                 "classes")
    return tuple(str(label) for label in labels)


def _action_units_for(frame: FrameNetwork, entry: dict[str, Any],
                      source: Path | None) -> tuple[str, ...]:
    """The action-unit head's unit names, checked against its size."""
    size = frame.head_sizes.get("au")
    if size is None:
        return ()
    names = tuple(entry["meta"].get("action_units") or DEFAULT_ACTION_UNITS.get(size, ()))
    if len(names) != size:
        raise InputError(source, f"the action-unit head has {size} outputs but its model names "
                                 f"{len(names)} units; train it on a store with {size} units")
    return names


def _check_feature_dims(frame: FrameNetwork, sequence: SequenceNetwork | None,
                        source: Path | None) -> None:
    """The sequence network must read the features this frame network makes."""
    if sequence is None:
        return
    made, read = frame.num_features, sequence.input_size
    if made != read:
        raise InputError(source, f"the sequence model reads {read}-d features, the frame model "
                                 f"makes {made}-d ones")
