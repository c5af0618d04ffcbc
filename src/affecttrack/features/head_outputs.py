"""Every head's output of a frame model for chosen faces of a face store.

Feature extraction keeps the 300-d features and the valence/arousal head for the sequence stage;
scoring a frame model (classification protocols, the multitask comparison) needs whichever heads
it has, for a subset of faces, without writing a feature store.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from affecttrack.data.store import FaceStore
from affecttrack.models.cnn import faces_to_input, head_probabilities
from affecttrack.models.registry import load_model_file


def frame_head_outputs(store: FaceStore, model: Path, rows: np.ndarray,
                       batch_size: int = 256, flip: bool = False) -> dict[str, np.ndarray]:
    """head name -> (len(rows), head size) float32 outputs (expression: class probabilities,
    au: each unit's probability of being active) for the faces at `rows` of the store, in the
    order given. `flip` averages each face's outputs with its mirror image's (test-time flip
    averaging: a face's expression does not change in the mirror, the network's errors do)."""
    network, _ = load_model_file(model, "frame")
    rows = np.asarray(rows, dtype=np.int64)
    outputs = {name: np.empty((len(rows), size), np.float32)
               for name, size in network.head_sizes.items()}
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            # Read in store-row order (cheap on a memory map), write back in the order given.
            where = start + np.argsort(rows[start:start + batch_size], kind="stable")
            x = faces_to_input(store.faces[rows[where]])
            heads = head_probabilities(network(x))
            if flip:
                mirrored = head_probabilities(network(x.flip(-1)))
                heads = {name: (value + mirrored[name]) / 2 for name, value in heads.items()}
            for name, value in heads.items():
                outputs[name][where] = value.numpy()
    return outputs
