"""Face crops as the CNN sees them: 96 x 96 grey uint8 (`FACE_SIZE`, the one definition)."""

from __future__ import annotations

import cv2
import numpy as np

from affecttrack.errors import AffectTrackError

FACE_SIZE = 96


def to_face_crop(image: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """An already cropped face (grey, BGR or BGRA, any size) as a (size, size) grey uint8 image.

    INTER_AREA averages the source pixels that fall into each target pixel, so shrinking Aff-Wild2's
    112 x 112 crops does not alias.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.size == 0:
        raise AffectTrackError(f"a face image must be a non-empty uint8 array, got "
                               f"{getattr(image, 'dtype', type(image).__name__)} "
                               f"{getattr(image, 'shape', '')}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] in (3, 4):
        code = cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        image = cv2.cvtColor(image, code)
    if image.ndim != 2:
        raise AffectTrackError(f"a face image must be grey (h, w) or colour (h, w, 3|4), "
                               f"got shape {image.shape}")
    if image.shape == (size, size):
        return np.ascontiguousarray(image)
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
