"""Independent photos: each photo's faces found and predicted on their own.

A folder of different people's photos is not a video: there is nothing to track from one photo
to the next and no sequence whose state could carry over. So each photo is detected alone and
its faces go through the frame network only (`AffectModel.predict_faces`: its valence/arousal
head, else the expression mapping), batched across photos for speed, which changes nothing
since no face's result depends on another's. The table has one row per photo and face (a photo
without a face one row with empty values), the photo's path in its first column:

    photo, face (0 = the largest in that photo), x, y, w, h, score, valence, arousal,
    one probability per expression class, expression, one probability per action unit
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from affecttrack.data.detect import FaceDetector, largest_first
from affecttrack.data.groups import Problem
from affecttrack.data.video_frames import DecodedFrame
from affecttrack.inference.frame_sources import Prefetch, image_frames
from affecttrack.inference.predictor import AffectModel

FACE_COLUMNS = ["face", "x", "y", "w", "h"]


def photo_va_source(model: AffectModel) -> str:
    """Where a photo's valence/arousal comes from: the frame network's head, else the expression
    mapping (a sequence network has no sequence to run on in a photo)."""
    if "va" in model.frame.heads:
        return "frame model"
    return "expression mapping" if model.labels else "none"


def predict_photos(model: AffectModel, files: Sequence[Path],
                   problems: list[Problem]) -> pd.DataFrame:
    """The table of `files` (see the module); unreadable photos are appended to `problems` and
    have no row."""
    detector = model.detector()
    batches = Prefetch(image_frames(files, problems)).batches(model.config.batch_frames)
    parts = [_rows(model, detector, files, batch) for batch in batches]
    return pd.concat(parts, ignore_index=True) if parts else _rows(model, detector, files, [])


def _rows(model: AffectModel, detector: FaceDetector, files: Sequence[Path],
          batch: list[DecodedFrame]) -> pd.DataFrame:
    """Rows of a batch of photos (frame numbers index `files` from 1)."""
    boxes: list[list] = []
    crops: list[np.ndarray] = []
    for frame in batch:
        path = str(files[frame.number - 1])
        found = largest_first(detector.detect(frame.image))
        boxes += [[path, i, box.x, box.y, box.w, box.h, box.score]
                  for i, box in enumerate(found)] or [[path, None, None, None, None, None, None]]
        crops += [model.bundle.preprocessing.crop(frame.image, box) for box in found]
    table = pd.DataFrame(boxes, columns=["photo", *FACE_COLUMNS, "score"])
    table[FACE_COLUMNS] = table[FACE_COLUMNS].astype("Int64")
    table["score"] = table["score"].astype(float)
    size = model.bundle.preprocessing.face_size
    values = model.predict_faces(np.stack(crops) if crops else np.zeros((0, size, size), np.uint8))
    values.index = table.index[table["face"].notna()]
    return table.join(values)
