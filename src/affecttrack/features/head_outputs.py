"""Every head's output of a frame model for chosen faces of a face store.

Feature extraction keeps the 300-d features and the valence/arousal head for the sequence stage;
scoring a frame model (classification protocols, the multitask comparison) needs whichever heads
it has, for a subset of faces, without writing a feature store.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.store import FaceStore
from ..models.cnn import head_probabilities
from ..models.registry import load_model_file
from ..training.frame_data import FaceFrames, FrameSet


def frame_head_outputs(store: FaceStore, model_path: Path, rows: np.ndarray,
                       batch_size: int = 256) -> dict[str, np.ndarray]:
    """head name -> (len(rows), head size) float32 outputs (expression: class probabilities,
    au: each unit's probability of being active) for the faces at `rows` of the store, in the
    order given."""
    model, _ = load_model_file(model_path, "frame")
    rows = np.asarray(rows, dtype=np.int64)
    outputs = {name: np.empty((len(rows), size), np.float32)
               for name, size in model.head_sizes.items()}
    positions = np.arange(len(rows), dtype=np.int64)   # batches come back in store-row order
    faces = FaceFrames(Path(store.path) / "faces.npy", FrameSet(rows, positions))
    with torch.inference_mode():
        for x, where in faces.loader(batch_size, train=False):
            for name, value in head_probabilities(model(x)).items():
                outputs[name][where.numpy()] = value.numpy()
    return outputs
