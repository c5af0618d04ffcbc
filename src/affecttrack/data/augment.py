"""The paper's training augmentations for 96 x 96 grey face crops.

The paper used Keras' ImageDataGenerator, which draws every geometric parameter anew for each image
and fills uncovered borders with the nearest pixel; the same is done here with one albumentations
affine warp (one interpolation instead of five) so that augmenting stays cheap next to the CNN's
forward pass on a CPU. The paper gives no shear amount; +-10 degrees matches the other ranges'
strength.
"""

from __future__ import annotations

import os

import cv2

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
import albumentations as A

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
