"""A tiny face store written file by file per the store contract (docs/ARCHITECTURE.md).

Training, feature and sequence tests need a store without running the real preparation stage.
Faces carry their labels visibly (brightness follows valence, a bar's height follows arousal) so
that a few training steps have something to learn.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from affecttrack.data.store import FaceStore

SIZE = 96


def face_image(valence: float, arousal: float, rng: np.random.Generator) -> np.ndarray:
    """A 96x96 uint8 picture whose content follows valence and arousal."""
    image = np.full((SIZE, SIZE), 96 + 64 * valence, dtype=np.float64)
    bar = int(SIZE / 2 * (1 + arousal))
    image[SIZE - bar:, 40:56] += 80
    image += rng.normal(0, 8, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_face_store(path: Path, *, videos: dict[str, str] | None = None, frames: int = 30,
                     seed: int = 0, action_units: tuple[str, ...] = ()) -> FaceStore:
    """Write a store under `path`: `videos` maps video name -> split; `frames` frames each.

    Every video lacks a face at frame 7 and a label at frame 12, so gap handling is exercised.
    `action_units` adds those AU columns: unit k is active where valence exceeds (k - 1) / 4
    (visible: brightness follows valence), unknown at frames 3 and 12.
    """
    videos = videos or {"train_a": "train", "train_b": "train", "val_a": "val"}
    rng = np.random.default_rng(seed)
    records, images = [], []
    for video, split in videos.items():
        t = np.arange(frames)
        phase = rng.uniform(0, 2 * np.pi)
        valence = 0.8 * np.sin(2 * np.pi * t / 25 + phase)
        arousal = 0.6 * np.cos(2 * np.pi * t / 17 + phase)
        for i in range(frames):
            has_face = i != 7
            labelled = i != 12
            row = len(images) if has_face else -1
            if has_face:
                images.append(face_image(valence[i], arousal[i], rng))
            records.append({"video": video, "frame": i + 1, "row": row, "split": split,
                            "valence": valence[i] if labelled else np.nan,
                            "arousal": arousal[i] if labelled else np.nan,
                            "expression": int(i % 7) if labelled else -1, "subject": video,
                            **{name: int(valence[i] > (k - 1) / 4) if labelled and i != 2
                               else -1 for k, name in enumerate(action_units)}})
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    np.save(path / "faces.npy", np.stack(images))
    index = pd.DataFrame.from_records(records).astype(
        {"frame": "int32", "row": "int64", "valence": "float32", "arousal": "float32",
         "expression": "int16", **dict.fromkeys(action_units, "int8")})
    index.sort_values(["video", "frame"]).reset_index(drop=True).to_parquet(path / "index.parquet")
    summary = {"videos": len(videos), "frames": len(records), "faces": len(images), "skipped": {},
               **({"action_units": list(action_units)} if action_units else {})}
    (path / "summary.json").write_text(json.dumps(summary))
    return FaceStore.open(path)


def write_feature_store(store: FaceStore, path: Path) -> Path:
    """Features of `store`'s faces written directly in the feature-store layout: random, except
    that the first two carry each face's valence and arousal, so a sequence model can learn."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    features = rng.normal(size=(store.faces.shape[0], 300)).astype(np.float32)
    faces = store.index[store.index["row"] >= 0]
    features[faces["row"].to_numpy(), :2] = faces[["valence", "arousal"]].fillna(0).to_numpy(
        np.float32)
    np.save(path / "features.npy", features)
    np.save(path / "frame_predictions.npy", features[:, :2].copy())
    return path
