"""`affecttrack explain`: what a model bundle's networks look at, written as figures and data.

One face (an image file, or a frame of a video): the face as the network sees it with its
Integrated Gradients and Grad-CAM maps (`saliency.png`, the maps in `maps.npz`); with a sequence
network and a window length, which of the frames before it drive the sequence prediction
(`temporal.png`). A face store: per-class mean saliency over a sample of its faces
(`class_saliency.png`, `class_maps.npz`). Always the first layer's filters (`filters.png`), and
`explain.json` listing the files, the prediction, what was explained and how.

Faces are found and cut as prediction does: the bundle's detector and `Preprocessing.crop`
(margin, or alignment by the eyes); a bundle without a detector (trained on ready crops) takes
the whole image as the face.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from affecttrack.config import SEED_MAX, check_settings, setting
from affecttrack.data.detect import FaceDetector, to_grey
from affecttrack.data.faces import to_face_crop
from affecttrack.data.images import read_grey
from affecttrack.data.store import FaceStore
from affecttrack.data.video_frames import DecodedFrame, decode_frames, is_video
from affecttrack.errors import AffectTrackError, InputError
from affecttrack.inference.bundle import Bundle, Preprocessing, load_bundle
from affecttrack.interpret.overlays import (
    plot_class_saliency,
    plot_face_saliency,
    plot_filters,
)
from affecttrack.interpret.saliency import (
    BASELINES,
    VA_NAMES,
    Target,
    choose_target,
    class_target,
    first_conv,
    grad_cam,
    head_outputs,
    integrated_gradients,
    output_change,
)
from affecttrack.interpret.temporal import plot_temporal_importance, temporal_importance
from affecttrack.labels import map_expressions
from affecttrack.runinfo import atomic_path, write_json_atomic

EXPLAIN_FILE = "explain.json"
GROUP_BY = ("predicted", "true")
# Faces per Integrated Gradients call in store mode: the progress bar moves every few seconds.
_CHUNK = 8


@dataclass(frozen=True)
class ExplainConfig:
    """`target`: the output explained (None: the predicted class; see `choose_target`).
    `baseline`, `n_steps`: Integrated Gradients' reference image and integration steps (cost is
    linear in the steps: about 2.5 s a face at 32 on one CPU core). `max_faces`, `group_by`: how
    many faces of a store, grouped by predicted or labelled class. `sequence_window`: frames
    (ending at the explained one) whose importance for the sequence network's output at the last
    one is measured; that output is arousal when `target` is "arousal", else valence."""

    target: str | None = None
    baseline: str = setting("mean", choices=BASELINES)
    n_steps: int = setting(32, minimum=1)
    max_faces: int = setting(64, minimum=1)
    group_by: str = setting("predicted", choices=GROUP_BY)
    sequence_window: int | None = setting(None, minimum=1)
    seed: int = setting(0, minimum=0, maximum=SEED_MAX)

    def __post_init__(self) -> None:
        check_settings(self)


def explain(path: Path | None, out: Path, *, frame: int | None = None, store: Path | None = None,
            model: Path | None = None, config: ExplainConfig | None = None) -> dict[str, Any]:
    """Explain the face in image `path`, in frame `frame` of video `path`, or the faces of face
    store `store`, with the bundle `model` (the shipped default when None); writes into `out`
    and returns what `explain.json` holds."""
    config = config or ExplainConfig()
    _check_request(path, frame, store, config)
    bundle = load_bundle(model)
    if config.sequence_window and bundle.sequence is None:
        raise AffectTrackError("--sequence-window: the model has no sequence network; bundle one "
                               "with `affecttrack bundle --sequence ...`")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if store is not None:
        record = explain_store(bundle, Path(store), out, config)
    else:
        record = explain_face(bundle, Path(path), out, frame, config)
    filters = first_conv(bundle.frame).weight.detach().numpy()
    record["files"]["filters"] = plot_filters(filters, out / "filters.png").name
    record = {"model": str(model) if model else "default (shipped expression model)",
              "model_summary": bundle.summary(), **record}
    write_json_atomic(out / EXPLAIN_FILE, record)
    return record


def _check_request(path: Path | None, frame: int | None, store: Path | None,
                   config: ExplainConfig) -> None:
    """Inputs that do not fit together fail before the model is loaded."""
    if (path is None) == (store is None):
        raise AffectTrackError("explain: name one image or video file, or --store STORE")
    if store is not None:
        given = [flag for flag, value in (("--frame", frame), ("--target", config.target),
                                          ("--sequence-window", config.sequence_window))
                 if value is not None]
        if given:
            raise AffectTrackError(f"explain --store: {', '.join(given)} apply to one face, not "
                                   "a store (each stored face is explained for its class)")
        return
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    if is_video(path) and frame is None:
        raise InputError(path, "a video needs --frame N (1-based) to pick the face to explain")
    if not is_video(path) and (frame is not None or config.sequence_window is not None):
        raise InputError(path, "--frame and --sequence-window apply to videos; this is an image")


def explain_face(bundle: Bundle, path: Path, out: Path, frame: int | None,
                 config: ExplainConfig) -> dict[str, Any]:
    """The face of an image, or of frame `frame` of a video, and (for a video with a sequence
    window) the importance of the frames before it."""
    detector = bundle.preprocessing.make_detector()
    if frame is None:
        frames = [DecodedFrame(1, 0.0, _read_image(path))]
    else:
        frames = _decode_window(path, frame, config.sequence_window or 1)
    found = _find_face(frames[-1].image, detector, bundle.preprocessing)
    if found is None:
        where = f"frame {frame}" if frame is not None else "the image"
        raise InputError(path, f"no face found in {where} ({detector.name} detector)")
    face, box = found
    record: dict[str, Any] = {"input": str(path), "frame": frame, "face_box": box,
                              **_explain_one(bundle, face, out, config)}
    if config.sequence_window:
        target = Target(**record["target"])
        record["temporal"] = _explain_window(bundle, frames, detector, target, out, config)
        record["files"]["temporal"] = "temporal.png"
    return record


def _find_face(image: np.ndarray, detector: FaceDetector | None, preprocessing: Preprocessing
               ) -> tuple[np.ndarray, dict[str, int] | None] | None:
    """The largest face's crop, cut as prediction cuts it (`Preprocessing.crop`), and its box
    (the whole image without a detector), or None."""
    if detector is None:
        return to_face_crop(image, preprocessing.face_size), None
    grey = to_grey(image)
    faces = detector.detect(grey)
    if not faces:
        return None
    box = faces[0]
    return preprocessing.crop(grey, box), {"x": box.x, "y": box.y, "w": box.w, "h": box.h}


def _read_image(path: Path) -> np.ndarray:
    image = read_grey(path)
    if not isinstance(image, np.ndarray):
        raise InputError(path, "cannot decode the image")
    return image


def _decode_window(path: Path, frame: int, length: int) -> list[DecodedFrame]:
    """Frame `frame` of the video and up to `length - 1` frames before it, in order."""
    if frame < 1:
        raise InputError(path, f"frame numbers start at 1, got --frame {frame}")
    window: deque[DecodedFrame] = deque(maxlen=length)
    for decoded in decode_frames(path):
        window.append(decoded)
        if decoded.number == frame:
            return list(window)
    count = window[-1].number if window else 0
    raise InputError(path, f"frame {frame} is past the end of the video ({count} frames)")


def _explain_one(bundle: Bundle, face: np.ndarray, out: Path,
                 config: ExplainConfig) -> dict[str, Any]:
    """Saliency of one face: the figure, the maps, the prediction and the completeness check."""
    model, faces = bundle.frame, face[None]
    outputs = head_outputs(model, faces)
    predicted = (int(outputs["expression"][0].argmax()) if "expression" in outputs else None)
    target = choose_target(config.target, model.head_sizes, bundle.labels, predicted)
    ig = integrated_gradients(model, faces, target, baseline=config.baseline,
                              n_steps=config.n_steps)
    cam = grad_cam(model, faces, target)
    prediction = _prediction(outputs, bundle.labels)
    title = f"prediction: {describe_prediction(prediction)}; explained: {target.name}"
    plot_face_saliency(face, ig[0], cam[0], title, out / "saliency.png")
    _save_arrays(out / "maps.npz", face=face, integrated_gradients=ig[0], grad_cam=cam[0])
    change = output_change(model, faces, target, config.baseline)
    return {"prediction": prediction, "target": asdict(target),
            "integrated_gradients": {"baseline": config.baseline, "n_steps": config.n_steps,
                                     "attribution_sum": float(ig[0].sum()),
                                     "output_change": float(change[0])},
            "files": {"saliency": "saliency.png", "maps": "maps.npz"}}


def _prediction(outputs: dict[str, np.ndarray], labels: Sequence[str] | None) -> dict[str, Any]:
    """The first face's expression (with every class's probability) and valence/arousal."""
    prediction: dict[str, Any] = {}
    if "expression" in outputs:
        probabilities = outputs["expression"][0]
        names = list(labels) if labels else [f"class {i}" for i in range(len(probabilities))]
        prediction["expression"] = names[int(probabilities.argmax())]
        prediction["probabilities"] = {name: round(float(p), 4)
                                       for name, p in zip(names, probabilities)}
    if "va" in outputs:
        prediction.update({name: round(float(v), 4) for name, v in zip(VA_NAMES, outputs["va"][0])})
    return prediction


def describe_prediction(prediction: dict[str, Any]) -> str:
    """One line such as "Happiness (0.91)" or "valence +0.30, arousal -0.10"."""
    parts = []
    if "expression" in prediction:
        name = prediction["expression"]
        parts.append(f"{name} ({prediction['probabilities'][name]:.2f})")
    parts += [f"{name} {prediction[name]:+.2f}" for name in VA_NAMES if name in prediction]
    return ", ".join(parts)


def _explain_window(bundle: Bundle, frames: list[DecodedFrame], detector: FaceDetector | None,
                    target: Target, out: Path, config: ExplainConfig) -> dict[str, Any]:
    """Importance of each frame of the window for the sequence output at its last frame.

    The window is the run of frames with a face that ends at the explained frame: prediction
    restarts the sequence network after a frame without a face, so earlier frames cannot matter.
    """
    assert bundle.sequence is not None
    crops: list[np.ndarray] = []
    faceless = None
    for decoded in reversed(frames):
        found = _find_face(decoded.image, detector, bundle.preprocessing)
        if found is None:
            faceless = decoded.number
            break
        crops.insert(0, found[0])
    numbers = np.array([decoded.number for decoded in frames[len(frames) - len(crops):]])
    with torch.no_grad():
        features = bundle.frame.forward_features(bundle.preprocessing.to_input(np.stack(crops)))
        output = 1 if target.name == "arousal" else 0
        value = float(bundle.sequence(features[None])[0, -1, output])
    name = VA_NAMES[output] if "va" in bundle.sequence.head_sizes else f"output {output}"
    importance = temporal_importance(bundle.sequence, features.numpy(), output,
                                     n_steps=config.n_steps)
    title = (f"which frames drive the sequence network's {name} at frame {numbers[-1]} "
             f"({value:+.2f})")
    plot_temporal_importance(numbers, importance, title, out / "temporal.png")
    return {"output": name, "value": value, "requested_window": config.sequence_window,
            "faceless_frame": faceless, "frames": numbers.tolist(),
            "importance": [round(float(v), 6) for v in importance]}


def explain_store(bundle: Bundle, store: Path, out: Path,
                  config: ExplainConfig) -> dict[str, Any]:
    """Mean saliency per class over up to `max_faces` faces of a store, each face explained for
    its predicted (or labelled) class."""
    labels = bundle.labels
    if labels is None:
        raise AffectTrackError("explain --store: per-class saliency needs a model with an "
                               "expression head")
    face_store = FaceStore.open(store)
    rows, true, unknown = _sample_faces(face_store, labels, config)
    faces = face_store.images(rows)
    predicted = np.concatenate([head_outputs(bundle.frame, faces[i:i + _CHUNK])["expression"]
                                .argmax(axis=1) for i in range(0, len(faces), _CHUNK)])
    classes = predicted if config.group_by == "predicted" else true
    ig, cam = _store_maps(bundle, faces, classes, config)
    counts = np.bincount(classes, minlength=len(labels))
    means = [_class_means(faces, ig, cam, classes == k) for k in range(len(labels))]
    mean_faces, mean_ig, mean_cam = (np.stack(parts) for parts in zip(*means))
    title = (f"mean saliency of {len(faces)} faces of {store.name} by {config.group_by} "
             "class (each face explained for that class)")
    plot_class_saliency(mean_faces, mean_ig, mean_cam, labels, counts.tolist(), title,
                        out / "class_saliency.png")
    _save_arrays(out / "class_maps.npz", classes=np.array(labels), counts=counts,
                 mean_face=mean_faces, integrated_gradients=mean_ig, grad_cam=mean_cam)
    record: dict[str, Any] = {
        "input": str(store), "faces": len(faces), "group_by": config.group_by,
        "classes": dict(zip(labels, counts.tolist())),
        "predicted": dict(zip(labels, np.bincount(predicted, minlength=len(labels)).tolist())),
        "integrated_gradients": {"baseline": config.baseline, "n_steps": config.n_steps},
        "files": {"class_saliency": "class_saliency.png", "maps": "class_maps.npz"}}
    if config.group_by == "true":
        record["accuracy"] = round(float(np.mean(predicted == true)), 4)
        record["skipped_unknown_class"] = unknown
    return record


def _sample_faces(store: FaceStore, labels: Sequence[str],
                  config: ExplainConfig) -> tuple[np.ndarray, np.ndarray, int]:
    """Up to `max_faces` face rows (a seeded sample, balanced over the labelled classes when
    grouping by them; in store order), their labelled class in the model's classes (-1 when
    grouping by prediction), and how many labelled faces were left out because the model has no
    such class."""
    index = store.index[store.index["row"] >= 0]
    true = np.full(len(index), -1, dtype=np.int64)
    unknown = 0
    if config.group_by == "true":
        mapping = map_expressions(store.expression_names, tuple(labels))
        expression = index["expression"].to_numpy().astype(np.int64)
        true = np.where(expression >= 0, mapping[np.maximum(expression, 0)], -1)
        unknown = int(np.sum((expression >= 0) & (true < 0)))
        keep = true >= 0
        index, true = index[keep], true[keep]
    if not len(index):
        problem = ("holds no face images" if config.group_by == "predicted" else
                   "holds no faces labelled with a class the model knows")
        raise InputError(store.path, problem)
    chosen = _balanced_sample(true, config.max_faces, config.seed)
    return index["row"].to_numpy()[chosen], true[chosen], unknown


def _balanced_sample(classes: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Up to `size` positions drawn at random, taking the classes in turn (one of each, then a
    second of each, ...), so that rare classes get faces too; sorted. All classes -1 (unknown):
    a plain random sample."""
    order = np.random.default_rng(seed).permutation(len(classes))
    turn = pd.Series(classes[order]).groupby(classes[order]).cumcount().to_numpy()
    return np.sort(order[np.argsort(turn, kind="stable")[:size]])


def _store_maps(bundle: Bundle, faces: np.ndarray, classes: np.ndarray,
                config: ExplainConfig) -> tuple[np.ndarray, np.ndarray]:
    """|Integrated Gradients| and Grad-CAM of every face for its class, a chunk at a time."""
    ig, cam = [], []
    for start in tqdm(range(0, len(faces), _CHUNK), desc="saliency", unit="chunk"):
        chunk = faces[start:start + _CHUNK]
        targets = [class_target(k, bundle.labels) for k in classes[start:start + _CHUNK]]
        ig.append(np.abs(integrated_gradients(bundle.frame, chunk, targets,
                                              baseline=config.baseline,
                                              n_steps=config.n_steps)))
        cam.append(grad_cam(bundle.frame, chunk, targets))
    return np.concatenate(ig), np.concatenate(cam)


def _class_means(faces: np.ndarray, ig: np.ndarray, cam: np.ndarray,
                 members: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean face, mean |IG| and mean Grad-CAM of one class (zeros for an empty class)."""
    if not members.any():
        return (np.zeros(faces.shape[1:], np.float32),) * 3
    return (faces[members].mean(axis=0).astype(np.float32), ig[members].mean(axis=0),
            cam[members].mean(axis=0))


def _save_arrays(path: Path, **arrays: np.ndarray) -> None:
    """An .npz under a temporary name, then renamed (np.savez would append .npz to the name)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)
