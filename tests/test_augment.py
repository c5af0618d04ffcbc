"""Training augmentations keep the crop format, are repeatable with a seed and actually vary."""

import numpy as np
import pytest

from affecttrack.data.augment import (
    AUGMENTATIONS,
    make_augmentation,
)
from affecttrack.data.faces import FACE_SIZE, to_face_crop
from affecttrack.errors import AffectTrackError


def _face(seed=0):
    rng = np.random.default_rng(seed)
    image = np.full((FACE_SIZE, FACE_SIZE), 120, dtype=np.uint8)
    image[20:40, 15:35] = 220  # an off-centre bright patch, so flips and shifts change pixels
    return np.clip(image + rng.integers(0, 20, image.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_output_keeps_shape_and_dtype(name):
    out = make_augmentation(name, seed=0)(image=_face())["image"]
    assert out.shape == (FACE_SIZE, FACE_SIZE) and out.dtype == np.uint8


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_same_seed_gives_the_same_augmentations(name):
    first, second = make_augmentation(name, seed=3), make_augmentation(name, seed=3)
    for _ in range(5):
        np.testing.assert_array_equal(first(image=_face())["image"], second(image=_face())["image"])


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_augmentation_changes_images_and_brightness_varies_both_ways(name):
    aug = make_augmentation(name, seed=1)
    face = _face()
    outs = np.stack([aug(image=face)["image"] for _ in range(40)]).astype(np.float64)
    changed = np.abs(outs - face).mean(axis=(1, 2))
    assert np.all(changed > 1.0)
    means = outs.mean(axis=(1, 2))
    assert means.min() < face.mean() * 0.85 and means.max() > face.mean() * 1.15


def test_strong_augmentation_erases_patches_that_the_paper_one_never_does():
    """Random erasing fills a block with uniform noise: a flat image gets pixels far from its
    level, which the paper's affine and brightness changes never produce."""
    flat = np.full((FACE_SIZE, FACE_SIZE), 128, dtype=np.uint8)

    def noisy_share(name):
        aug = make_augmentation(name, seed=2)
        outs = [aug(image=flat)["image"].astype(np.int16) for _ in range(40)]
        return np.mean([np.mean(np.abs(out - np.median(out)) > 60) > 0.01 for out in outs])

    assert noisy_share("paper") == 0.0
    assert 0.2 < noisy_share("strong") < 0.8   # erasing is drawn for about half the images


def test_unknown_augmentation_is_one_line():
    with pytest.raises(AffectTrackError, match="unknown augmentation 'heavy'; expected one of "
                                               "paper, strong"):
        make_augmentation("heavy")


def test_face_crop_from_colour_and_grey():
    colour = np.zeros((112, 112, 3), dtype=np.uint8)
    colour[..., 1] = 200
    crop = to_face_crop(colour)
    assert crop.shape == (FACE_SIZE, FACE_SIZE) and crop.dtype == np.uint8
    assert abs(int(crop[50, 50]) - round(0.587 * 200)) <= 1
    grey = to_face_crop(np.full((48, 48), 77, dtype=np.uint8))
    assert grey.shape == (FACE_SIZE, FACE_SIZE) and np.all(grey == 77)


def test_face_crop_rejects_non_images():
    with pytest.raises(AffectTrackError, match="uint8"):
        to_face_crop(np.zeros((10, 10), dtype=np.float32))
    with pytest.raises(AffectTrackError, match="shape"):
        to_face_crop(np.zeros((10, 10, 2), dtype=np.uint8))
