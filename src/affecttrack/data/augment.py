"""Training augmentations for 96 x 96 grey face crops: the paper's, and a stronger recipe.

The paper used Keras' ImageDataGenerator, which draws every geometric parameter anew for each image
and fills uncovered borders with the nearest pixel; the same is done here with one albumentations
affine warp (one interpolation instead of five) so that augmenting stays cheap next to the CNN's
forward pass on a CPU. The paper gives no shear amount; +-10 degrees matches the other ranges'
strength.

"strong" is what works on small real datasets (CK+, JAFFE: a few hundred people): a random resized
crop (the face's scale and position vary as detectors' boxes do), flip, rotation, brightness and
contrast, and random erasing (a patch hidden, as hands, glasses and hair hide parts of real faces),
so that a network cannot lean on one region or one pixel level.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import cv2

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
import albumentations as A

from affecttrack.data.faces import FACE_SIZE
from affecttrack.errors import AffectTrackError

SCALE = (0.9, 1.25)
SHIFT = 0.1
SHEAR_DEGREES = 10.0
ROTATION_DEGREES = 15.0
BRIGHTNESS = (0.5, 1.5)
CROP_SCALE = (0.75, 1.0)       # share of the crop's area kept by the random resized crop
CROP_RATIO = (0.9, 1.1)
BRIGHTNESS_CONTRAST = 0.3
ERASING_SCALE = (0.02, 0.2)    # share of the face a random erasing hides


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


def strong_augmentation(seed: int | None = None) -> A.Compose:
    """Random resized crop, horizontal flip, rotation, brightness/contrast and random erasing
    (the recommended recipe's); used like `training_augmentation`."""
    return A.Compose([
        A.RandomResizedCrop(size=(FACE_SIZE, FACE_SIZE), scale=CROP_SCALE, ratio=CROP_RATIO,
                            interpolation=cv2.INTER_LINEAR, p=1.0),
        A.HorizontalFlip(p=0.5),
        A.Affine(rotate=(-ROTATION_DEGREES, ROTATION_DEGREES), interpolation=cv2.INTER_LINEAR,
                 border_mode=cv2.BORDER_REPLICATE, p=0.7),
        A.RandomBrightnessContrast(brightness_limit=BRIGHTNESS_CONTRAST,
                                   contrast_limit=BRIGHTNESS_CONTRAST, p=0.8),
        A.Erasing(scale=ERASING_SCALE, fill="random_uniform", p=0.5),
    ], seed=seed)


AUGMENTATIONS: dict[str, Callable[[int | None], A.Compose]] = {
    "paper": training_augmentation, "strong": strong_augmentation}


def make_augmentation(name: str, seed: int | None = None) -> A.Compose:
    """The augmentation pipeline called `name` (`AUGMENTATIONS`)."""
    if name not in AUGMENTATIONS:
        raise AffectTrackError(f"unknown augmentation {name!r}; expected one of "
                               f"{', '.join(AUGMENTATIONS)}")
    return AUGMENTATIONS[name](seed)


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
