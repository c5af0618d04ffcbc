"""Groups of frames described the same way for every dataset, so one writer builds every face store.

A dataset is a list of groups: an Aff-Wild2 video, a CK+ sequence, one person's photos, a video
file. Each group has a name (the face store's `video` column), a split, a subject, a reader that
yields each frame's 96 x 96 face crop or the `Problem` that kept it from having one, and the
labels of its labelled frames. Sources only describe (cheap: they list files and read label
texts); decoding, detection and writing happen in `data.store`, where they can be resumed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

Crop = np.ndarray
Mapper = Callable[[Callable, Iterable], Iterable]
LABEL_COLUMNS: tuple[str, ...] = ("frame", "valence", "arousal", "expression")
CHUNK_FRAMES = 512  # images handed to the mapper at once: bounds memory, keeps workers busy
MAX_FRAME = int(np.iinfo(np.int32).max)  # the store's frame column is int32
_TRAILING_NUMBER = re.compile(r"^(.*?)[_-](\d+)$")


@dataclass(frozen=True)
class Problem:
    """One file, frame or group that was skipped, or partly skipped, and why.

    `reason` is a short key the face store's summary counts by (corrupt_image, no_face,
    missing_file, bad_label, unknown_label, ...); `detail` is the one-line explanation.
    """

    reason: str
    path: Path
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.detail}"


@dataclass(frozen=True)
class Fallback:
    """A face crop made the second-best way, kept and counted: `problem` says why the first
    way failed (reason `unaligned`: no trustworthy eye landmarks, so the box crop). The face
    store keeps `crop` and lists the problem under `fallbacks` in its summary."""

    crop: Crop
    problem: Problem


class CropReader(Protocol):
    """Yields (frame, result) for every frame it tries, in increasing frame order; the result
    is a crop, a `Fallback` or the `Problem` that kept the frame from having one."""

    frames: np.ndarray | None  # the frames it will try, when known before reading (else None)

    def fingerprint(self) -> Any:
        """A JSON value that changes when the input changes: a resumed prepare must find it equal."""

    def read(self, mapper: Mapper) -> Iterator[tuple[int, Crop | Fallback | Problem]]: ...


@dataclass(frozen=True)
class ImageFiles:
    """One image file per frame (`folder / names[i]` is frame `frames[i]`), cropped by `load`.

    `load` runs through the store's mapper (a thread pool when workers > 1), a chunk at a time so
    that decoded crops never pile up in memory.
    """

    folder: Path
    frames: np.ndarray
    names: Sequence[str]
    load: Callable[[Path], Crop | Fallback | Problem]

    def fingerprint(self) -> int:
        return len(self.frames)

    def read(self, mapper: Mapper) -> Iterator[tuple[int, Crop | Fallback | Problem]]:
        for first in range(0, len(self.frames), CHUNK_FRAMES):
            last = min(first + CHUNK_FRAMES, len(self.frames))
            paths = [self.folder / str(self.names[i]) for i in range(first, last)]
            yield from zip(self.frames[first:last].tolist(), mapper(self.load, paths))


@dataclass(frozen=True)
class FaceGroup:
    """A group of frames: a video, a CK+ sequence, one person's photos.

    `labels` has one row per labelled frame (`LABEL_COLUMNS`: valence/arousal NaN and expression
    -1 where absent, then a column per action unit the group annotates, -1 where unknown),
    including frames the reader has no image for (Aff-Wild2 labels frames without a face); see
    `label_table`.
    """

    name: str
    split: str
    subject: str
    reader: CropReader
    labels: pd.DataFrame


@dataclass
class SourceScan:
    """What a source found under `root`: its groups (sorted by name) and what it skipped.

    `expressions` names the store's classes (expression k is `expressions[k]`); `config` holds the
    settings that shape the crops (a resumed prepare must use the same); `extra` goes into the
    store's summary as is (a layout name, a label mapping ...). `kind` names what a group is.
    `action_units` names the store's action-unit columns (empty for sources without them); a
    group whose labels lack one has it unknown.
    """

    source: str
    title: str
    root: Path
    expressions: tuple[str, ...]
    kind: str = "video"
    groups: list[FaceGroup] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    action_units: tuple[str, ...] = ()


def label_table(frames: ArrayLike, valence: ArrayLike | None = None,
                arousal: ArrayLike | None = None,
                expression: ArrayLike | None = None,
                action_units: Mapping[str, ArrayLike] | None = None) -> pd.DataFrame:
    """A group's labels with the store's dtypes, sorted by frame; absent kinds of label are
    NaN / -1. `action_units` maps AU names to 0/1/-1 columns."""
    frames = np.asarray(frames, dtype=np.int32)

    def column(values: ArrayLike | None, fill: float, dtype: type) -> np.ndarray:
        return (np.full(len(frames), fill, dtype=dtype) if values is None
                else np.asarray(values, dtype=dtype))

    order = np.argsort(frames, kind="stable")
    return pd.DataFrame({"frame": frames[order],
                         "valence": column(valence, np.nan, np.float32)[order],
                         "arousal": column(arousal, np.nan, np.float32)[order],
                         "expression": column(expression, -1, np.int16)[order],
                         **{name: column(values, -1, np.int8)[order]
                            for name, values in (action_units or {}).items()}})


def numbered_stem(stem: str) -> tuple[str, int | None]:
    """("Kimi_Raikkonen", 3) for "Kimi_Raikkonen_0003"; (stem, None) without a trailing number.

    Photo collections name a person's pictures `<person>_<number>`; the number becomes the
    frame and the prefix the person. A number too large for a frame (`MAX_FRAME`) is no number.
    """
    match = _TRAILING_NUMBER.match(stem)
    if not (match and match.group(1)) or int(match.group(2)) > MAX_FRAME:
        return stem, None
    return match.group(1), int(match.group(2))
