"""Still photos -> face-store groups: the shared step of the CK+48, JAFFE and folder sources.

Photo datasets have no videos, but a person's pictures are usually numbered (`Kimi_Raikkonen_0003`,
`KA.AN1.39`), so photos are grouped by (folder, name before the number) and the number becomes the
frame: the store's `video` and `frame` columns then name the file a face came from.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from affecttrack.data.groups import (
    Crop,
    FaceGroup,
    Fallback,
    ImageFiles,
    Problem,
    label_table,
)
from affecttrack.labels import CKPLUS_EXPRESSIONS, canonical_expression

# Every class a photo label can name, in the order stores list them (CK+'s, then Other).
CANONICAL_ORDER: tuple[str, ...] = (*CKPLUS_EXPRESSIONS, "Other")
_SPLIT_PRIORITY = ("test", "val", "train")  # a group listed in two splits goes to the first


@dataclass(frozen=True)
class Photo:
    """One labelled photo: its file, the group and frame it becomes, and its labels.

    All photos of a group share its subject (the first photo's is used).
    """

    path: Path
    group: str
    frame: int
    subject: str
    split: str = "train"
    expression: int = -1
    valence: float = float("nan")
    arousal: float = float("nan")


def classes_of(names: list[str]) -> tuple[str, ...]:
    """The canonical classes among `names`, in `CANONICAL_ORDER`: a store lists only the classes
    its data has, so that a model's outputs are exactly the classes it can learn."""
    present = {canonical_expression(name) for name in names}
    return tuple(name for name in CANONICAL_ORDER if name in present)


def _group_split(photos: list[Photo]) -> tuple[str, list[Problem]]:
    splits = {photo.split for photo in photos}
    if len(splits) == 1:
        return splits.pop(), []
    split = next(name for name in _SPLIT_PRIORITY if name in splits)
    return split, [Problem("split_conflict", photos[0].path.parent,
                           f"{photos[0].group!r} has photos in splits {', '.join(sorted(splits))}; "
                           f"all of them go to {split} so that no person is in two splits")]


def _unique_frames(photos: list[Photo]) -> tuple[list[Photo], list[Problem]]:
    """One photo per frame: a second photo with the same number is reported and skipped."""
    kept: dict[int, Photo] = {}
    problems = []
    for photo in sorted(photos, key=lambda p: (p.frame, str(p.path))):
        if photo.frame in kept:
            problems.append(Problem("duplicate_frame", photo.path,
                                    f"same group and number as {kept[photo.frame].path.name} "
                                    f"({photo.group!r} #{photo.frame}); photo skipped"))
        else:
            kept[photo.frame] = photo
    return list(kept.values()), problems


def photo_groups(photos: list[Photo], load: Callable[[Path], Crop | Fallback | Problem]
                 ) -> tuple[list[FaceGroup], list[Problem]]:
    """Face-store groups of `photos` (sorted by name), each cropped by `load`."""
    by_group: dict[str, list[Photo]] = defaultdict(list)
    for photo in photos:
        by_group[photo.group].append(photo)
    groups, problems = [], []
    for name in sorted(by_group):
        members, duplicates = _unique_frames(by_group[name])
        split, conflicts = _group_split(members)
        problems += duplicates + conflicts
        frames = np.array([photo.frame for photo in members], dtype=np.int32)
        folder = Path(os.path.commonpath([photo.path.parent for photo in members]))
        reader = ImageFiles(folder, frames, [str(photo.path.relative_to(folder))
                                             for photo in members], load)
        labels = label_table(frames, [p.valence for p in members], [p.arousal for p in members],
                             [p.expression for p in members])
        groups.append(FaceGroup(name, split, members[0].subject, reader, labels))
    return groups, problems
