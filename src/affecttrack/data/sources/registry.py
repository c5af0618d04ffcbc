"""The table of data sources: each dataset reader's name, options and prepare function.

The `affecttrack prepare <source>` commands are generated from this table and the pipelines
prepare Aff-Wild2 through it, so a new reader is one entry here rather than one more command.
Readers are named by module and function instead of imported: they pull in pandas and OpenCV,
which `affecttrack --help` should not have to load.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from affecttrack.errors import AffectTrackError


@dataclass(frozen=True)
class SourceOption:
    """A keyword argument of a reader's prepare function, as `affecttrack prepare` offers it.

    `default` is the command's default; None stands for the reader's own default (so the
    project's face detector is chosen in one place, `data.detect.DEFAULT_DETECTOR`).
    """

    name: str
    type: Any  # what the command parses the value as: float, str | None, ...
    default: Any
    help: str


DETECTOR = SourceOption("detector", str | None, None,
                        "Face detector: haar, hog or hog_haar (default: the project's, see "
                        "data/detect.py).")
MARGIN = SourceOption("margin", float, 0.1,
                      "Margin around a detected face, as a fraction of its size.")
ALIGN = SourceOption("align", bool, False,
                     "Align faces by the eyes (rotate level, scale by the eye distance) with "
                     "dlib's 5-point landmarks (extra [align]); faces without trustworthy "
                     "landmarks keep the box crop and are counted.")
WORKERS = SourceOption("workers", int, os.cpu_count() or 1,
                       "Threads decoding images and detecting faces.")
CSV = SourceOption("csv", Path | None, None,
                   "CSV of image path + label and/or valence, arousal (default: the only CSV in "
                   "ROOT, else class folders).")
DETECT = SourceOption("detect", bool, True,
                      "Detect faces; --no-detect for images that already are face crops.")
MAX_PIXELS = SourceOption("max_pixels", int | None, None,
                          "Skip images of more pixels than this, read from their headers before "
                          "decoding (default: 50000000, data/images.py's MAX_PIXELS).")
DETECTION = (DETECTOR, MARGIN, ALIGN, WORKERS)


@dataclass(frozen=True)
class DataSource:
    """One dataset reader: what `affecttrack prepare NAME` says and which function it runs."""

    name: str
    description: str  # one line: the command's help
    reader: str  # "module:function" of the prepare function, imported when first used
    options: tuple[SourceOption, ...] = ()
    root_help: str = "Dataset root folder."

    def prepare_function(self) -> Callable[..., dict[str, Any]]:
        """The reader's `prepare_*(root, out, **options)`, which builds and returns the store's
        summary."""
        module, function = self.reader.split(":")
        return getattr(importlib.import_module(module), function)


SOURCES: dict[str, DataSource] = {source.name: source for source in (
    DataSource("affwild2", "Aff-Wild2 / ABAW tree -> face store (96x96 grey crops + index). "
                           "Resumable.",
               "affecttrack.data.sources.affwild2:prepare_affwild2", (MAX_PIXELS,),
               root_help="Aff-Wild2 root (cropped_aligned/, annotations/)."),
    DataSource("ckplus", "CK+ tree (faces detected) or CK+48 class folders -> face store. "
                         "Resumable.",
               "affecttrack.data.sources.ckplus:prepare_ckplus", (*DETECTION, MAX_PIXELS)),
    DataSource("jaffe", "JAFFE images (KA.AN1.39.tiff ...) -> face store (faces detected). "
                        "Resumable.",
               "affecttrack.data.sources.jaffe:prepare_jaffe", (*DETECTION, MAX_PIXELS)),
    DataSource("folder", "Class folders or a CSV of labelled images -> face store. Resumable.",
               "affecttrack.data.sources.folder:prepare_folder",
               (CSV, DETECT, *DETECTION, MAX_PIXELS)),
    DataSource("videos", "Videos with per-frame CSVs (frame,valence,arousal[,expression]) -> "
                         "face store. Resumable.",
               "affecttrack.data.sources.videos:prepare_videos", DETECTION),
)}


def data_source(name: str) -> DataSource:
    """The table's entry for `name`; a user's misspelt source fails naming the known ones."""
    try:
        return SOURCES[name]
    except KeyError:
        raise AffectTrackError(f"unknown data source {name!r}; expected one of "
                               f"{', '.join(SOURCES)}") from None


def prepare(name: str, root: Path, out: Path, **options: Any) -> dict[str, Any]:
    """The face store in `out` of the `name` dataset at `root` (resumable); returns its summary.

    Does what `affecttrack prepare NAME` does, with the same defaults: `options` are the
    source's options (and the reader's other keywords, e.g. progress=False); one left out takes
    the command's default, one given as None the reader's own.
    """
    source = data_source(name)
    chosen = {**{option.name: option.default for option in source.options}, **options}
    given = {key: value for key, value in chosen.items() if value is not None}
    return source.prepare_function()(Path(root), Path(out), **given)
