"""The expression model shipped inside the package: what a user gets when naming no model."""

from __future__ import annotations

import skimage.data
import torch

from affecttrack.data.detect import create_detector, detect_largest_face
from affecttrack.inference.bundle import DEFAULT_BUNDLE, load_bundle
from affecttrack.labels import CKPLUS_EXPRESSIONS
from affecttrack.models.cnn import faces_to_input


def test_default_bundle_ships_small_with_ckplus_classes() -> None:
    assert DEFAULT_BUNDLE.stat().st_size <= 10 * 2**20
    bundle = load_bundle()
    assert bundle.labels == CKPLUS_EXPRESSIONS
    assert bundle.preprocessing.detector is not None


def test_default_bundle_carries_its_calibration() -> None:
    """Its probabilities were fitted on held-out faces (docs/MODEL_CARD.md, "Calibration"); a
    re-bundled model that skipped the step would lose that silently."""
    calibration = load_bundle().meta["frame"]["meta"]["calibration"]
    assert calibration["faces"] > 1000 and calibration["ece_after"] < calibration["ece_before"]


def test_default_model_reads_a_smile_on_a_real_photo() -> None:
    bundle = load_bundle()
    photo = skimage.data.astronaut()[:, :, ::-1].copy()       # Eileen Collins, smiling
    found = detect_largest_face(photo, create_detector(bundle.preprocessing.detector),
                                bundle.preprocessing.margin)
    assert found is not None
    with torch.inference_mode():
        logits = bundle.frame(faces_to_input(found[0][None]))["expression"]
    probabilities = dict(zip(bundle.labels, logits.softmax(dim=1)[0].tolist()))
    assert max(probabilities, key=probabilities.get) == "Happiness"
