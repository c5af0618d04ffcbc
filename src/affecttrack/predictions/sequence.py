"""The sequence model's per-frame predictions over a feature store, whole videos at once.

Prediction runs the model once over each gap-free run of frames with a face, O(T) per video,
instead of one window per frame as the public code did.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from affecttrack.data.store import FaceStore
from affecttrack.features.store import FeatureStore
from affecttrack.models.registry import load_model_file
from affecttrack.training.sequence_data import SplitTable


def predict_sequences(store: FaceStore, features: FeatureStore, model: Path,
                      split: str | None = "val") -> pd.DataFrame:
    """Per-frame predictions (video, frame, valence, arousal) for every frame with a face.

    One pass of the model over each gap-free run of frames with a face (labels are not needed).
    A many_to_many model's output at step t is frame t's prediction. A many_to_one model was trained
    to predict the frame after its inputs, so its output at step t is its prediction for frame t+1:
    outputs are shifted by one, and the first frame of a run, with no earlier frame to predict it
    from, takes the output after seeing itself. Frames without a face get no row; fill them with
    `affecttrack.data.sequences.fill_missing`. A combined model adds one probability column per
    class (its name lower-cased, as `affecttrack predict` writes them), `expression` (the most
    probable class's name) and one probability column per action unit (its name, e.g. AU12).
    """
    features.require_rows(store.faces.shape[0], store.path)
    network, info = load_model_file(model, "sequence")
    many_to_one = info["meta"].get("target") == "many_to_one"
    units = info["meta"].get("action_units", [])
    classes = info["meta"].get("expressions", [])
    table = SplitTable.build(store.index, split)
    parts: list[pd.DataFrame] = [_prediction_frame(np.zeros(0, dtype=object),
                                                   np.zeros(0, dtype=np.int64),
                                                   _empty_outputs(network), classes, units)]
    with torch.inference_mode():
        for start, stop in table.runs(table.has_face):
            x = torch.from_numpy(np.asarray(features.features[table.rows[start:stop]]))
            out = network(x.unsqueeze(0))[0].float()
            if many_to_one:
                out = torch.cat([out[:1], out[:-1]])
            parts.append(_prediction_frame(table.videos[start:stop], table.frames[start:stop],
                                           network.split_heads(out), classes, units))
    return pd.concat(parts, ignore_index=True)


def _empty_outputs(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: torch.zeros((0, size)) for name, size in model.head_sizes.items()}


def _prediction_frame(videos: np.ndarray, frames: np.ndarray, heads: dict[str, torch.Tensor],
                      classes: list[str], units: list[str]) -> pd.DataFrame:
    """One run's rows: valence/arousal (NaN without that head), class probabilities and the most
    probable class, AU probabilities."""
    va = heads["va"].numpy() if "va" in heads else np.full((len(frames), 2), np.nan, np.float32)
    columns: dict[str, np.ndarray] = {"video": videos, "frame": np.asarray(frames, np.int64),
                                      "valence": va[:, 0], "arousal": va[:, 1]}
    if "expression" in heads:
        probabilities = torch.softmax(heads["expression"], dim=-1).numpy()
        columns.update({name.lower(): probabilities[:, k] for k, name in enumerate(classes)})
        columns["expression"] = np.asarray(classes, dtype=object)[probabilities.argmax(axis=-1)]
    if "au" in heads:
        probabilities = torch.sigmoid(heads["au"]).numpy()
        columns.update({name: probabilities[:, k] for k, name in enumerate(units)})
    return pd.DataFrame(columns)
