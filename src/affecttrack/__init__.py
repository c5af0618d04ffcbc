"""affecttrack: per-frame valence, arousal and expression from face videos.

The stages in data-flow order, importable from the package root (loaded on first use, so that
`import affecttrack` stays cheap)::

    from affecttrack import synthesize, prepare_affwild2, FaceStore, train_frame_model, ...
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "SynthConfig": "affecttrack.synth",
    "synthesize": "affecttrack.synth",
    "FaceStore": "affecttrack.data.store",
    "prepare": "affecttrack.data.sources.registry",
    "prepare_affwild2": "affecttrack.data.sources.affwild2",
    "prepare_ckplus": "affecttrack.data.sources.ckplus",
    "prepare_jaffe": "affecttrack.data.sources.jaffe",
    "prepare_folder": "affecttrack.data.sources.folder",
    "prepare_videos": "affecttrack.data.sources.videos",
    "FrameTrainConfig": "affecttrack.training.frame",
    "train_frame_model": "affecttrack.training.frame",
    "FeatureStore": "affecttrack.features.store",
    "extract_features": "affecttrack.features.extract",
    "SequenceTrainConfig": "affecttrack.training.sequence",
    "train_sequence_model": "affecttrack.training.sequence",
    "predict_sequences": "affecttrack.predictions.sequence",
    "va_metrics": "affecttrack.evaluation.metrics",
    "evaluate_predictions": "affecttrack.evaluation.evaluate",
    "run_demo": "affecttrack.pipeline.demo",
    "ClassificationConfig": "affecttrack.pipeline.classification",
    "run_classification": "affecttrack.pipeline.classification",
    "run_experiment": "affecttrack.pipeline.run",
    "Bundle": "affecttrack.inference.bundle",
    "make_bundle": "affecttrack.inference.bundle",
    "load_bundle": "affecttrack.inference.bundle",
    "export_onnx": "affecttrack.inference.export",
    "SequenceStream": "affecttrack.inference.streaming",
    "load_model": "affecttrack.inference.predictor",
    "AffectModel": "affecttrack.inference.predictor",
    "PredictConfig": "affecttrack.inference.predictor",
    "FramePredictions": "affecttrack.inference.results",
    "predict_paths": "affecttrack.inference.batch",
    "build_report": "affecttrack.reports.html",
    "AffectTrackError": "affecttrack.errors",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'affecttrack' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
