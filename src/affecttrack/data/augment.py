"""The paper's training augmentations for 96 x 96 grey face crops.

The paper used Keras' ImageDataGenerator, which draws every geometric parameter anew for each image
and fills uncovered borders with the nearest pixel; the same is done here with one albumentations
affine warp (one interpolation instead of five) so that augmenting stays cheap next to the CNN's
forward pass on a CPU. The paper gives no shear amount; +-10 degrees matches the other ranges'
strength.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import cv2

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
import albumentations as A

from affecttrack.errors import AffectTrackError

SCALE = (0.9, 1.25)
SHIFT = 0.1
SHEAR_DEGREES = 10.0
ROTATION_DEGREES = 15.0
BRIGHTNESS = (0.5, 1.5)


def training_augmentation(seed: int | None = None) -> A.Compose:
    """Random scale, shift, shear, rotation, horizontal flip and multiplicative brightness.

    Use as `aug(image=img)["image"]` on uint8 (96, 96) images; a `seed` makes the sequence of
    augmentations repeatable.
    """
    return A.Compose([
        A.Affine(scale=SCALE, translate_percent=(-SHIFT, SHIFT),
                 rotate=(-ROTATION_DEGREES, ROTATION_DEGREES),
                 shear=(-SHEAR_DEGREES, SHEAR_DEGREES), interpolation=cv2.INTER_LINEAR,
                 border_mode=cv2.BORDER_REPLICATE, p=1.0),
        A.HorizontalFlip(p=0.5),
        A.MultiplicativeNoise(multiplier=BRIGHTNESS, per_channel=False, elementwise=False, p=1.0),
    ], seed=seed)


def augmentation_state(augmentation: A.Compose) -> list[dict[str, Any]]:
    """The random state of a pipeline and of each of its transforms (each draws from its own
    generators), as plain values that a checkpoint stores and `torch.load(weights_only=True)`
    reads back; an interrupted training run resumes its augmentations from it."""
    return [{"python": node.py_random.getstate(),
             "numpy": node.random_generator.bit_generator.state}
            for node in _random_nodes(augmentation)]


def set_augmentation_state(augmentation: A.Compose, state: list[dict[str, Any]]) -> None:
    """Continue `augmentation` from `augmentation_state` of the same pipeline, in place (the
    transforms keep their generator objects, whoever else holds them)."""
    nodes = list(_random_nodes(augmentation))
    if len(nodes) != len(state):
        raise AffectTrackError(f"saved augmentation state of another pipeline ({len(state)} "
                               f"generators, this one has {len(nodes)})")
    for node, saved in zip(nodes, state, strict=True):
        node.py_random.setstate(saved["python"])
        node.random_generator.bit_generator.state = saved["numpy"]


def _random_nodes(transform: Any) -> Iterator[Any]:
    """A pipeline and its transforms, depth first: everything holding generators."""
    yield transform
    for child in getattr(transform, "transforms", ()):
        yield from _random_nodes(child)
