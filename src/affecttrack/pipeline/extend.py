"""Extending a categorical face database with valence/arousal (issue 5, item 5).

CK+, JAFFE and most photo collections name an expression per face but no valence or arousal, so
they cannot train the valence/arousal head. `extend_with_va` gives every stored face values,
from a trained frame model's valence/arousal head or, without one, from its expression through
the fixed category centroids (`labels.EXPRESSION_VA`); values a face already has are kept, since
an annotation beats an estimate. The result is written in the layout `affecttrack prepare folder
--csv` reads: the store holds crops, not the original files, so the 96x96 crops are written as
PNG files under `images/` beside the CSV, which names them, and `prepare folder --no-detect`
builds a store from them at once. Each row says where its values came from (`va_source`:
label, model, centroid, or empty when there is none), and a JSON file beside the CSV records
the run.

Writing the images is the long part; it is resumable: each PNG is written under a temporary
name and renamed, and a rerun into the same folder skips those already there. The JSON record
names the store from the start (a folder holding another store's images is refused) and says
`complete` once the CSV, written last, is in place.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from affecttrack.data.store import FaceStore
from affecttrack.errors import AffectTrackError, InputError
from affecttrack.features.head_outputs import frame_head_outputs
from affecttrack.labels import expression_va
from affecttrack.models.registry import load_model_file
from affecttrack.runinfo import atomic_path, write_json_atomic, write_text_atomic

EXTENDED_CSV = "labels.csv"
IMAGES_FOLDER = "images"
CSV_COLUMNS: tuple[str, ...] = ("path", "label", "valence", "arousal", "subject", "split",
                                "va_source")
_UNSAFE = re.compile(r"[^\w.-]+")


def class_centroids(names: tuple[str, ...]) -> np.ndarray:
    """(k, 2) centroid of each class; NaN for a class with no place in valence/arousal space."""
    centroids = [expression_va([name]) for name in names]
    return np.array([c[0] if c is not None else (np.nan, np.nan) for c in centroids],
                    dtype=np.float64).reshape(-1, 2)


def _model_va(store: FaceStore, model: Path, rows: np.ndarray) -> np.ndarray:
    """The valence/arousal head's outputs for the faces at `rows`, clipped to [-1, 1] as
    predictions are (the folder source refuses values outside)."""
    network, _ = load_model_file(model, "frame")
    if "va" not in network.head_sizes:
        raise InputError(model, f"has no valence/arousal head (heads: "
                                f"{', '.join(network.head_sizes)}); use a model trained with "
                                "task va or combined, or none to use the category centroids")
    return np.clip(frame_head_outputs(store, model, rows)["va"].astype(np.float64), -1.0, 1.0)


def _values(store: FaceStore, faces: pd.DataFrame, model: Path | None
            ) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) valence/arousal per face and where each came from (label, model, centroid, "")."""
    va = faces[["valence", "arousal"]].to_numpy(dtype=np.float64)
    labelled = np.isfinite(va).all(axis=1)
    if model is not None:
        estimate, kind = _model_va(store, model, faces["row"].to_numpy()), "model"
    else:
        expression = faces["expression"].to_numpy(dtype=np.int64)
        centroids = np.vstack([class_centroids(store.expression_names), [np.nan, np.nan]])
        estimate, kind = centroids[expression], "centroid"   # class -1 -> the NaN row
    values = np.where(labelled[:, None], va, estimate)
    estimated = ~labelled & np.isfinite(estimate).all(axis=1)
    source = np.select([labelled, estimated], ["label", kind], default="")
    return values, source


def _image_name(video: str, frame: int) -> str:
    """`images/<group>_<frame>.png`: the folder source reads the group and frame back from the
    name (`groups.numbered_stem`), so the new store's `video` and `frame` still name the face."""
    parts = [_UNSAFE.sub("_", part) for part in video.split("/") if part not in ("", ".", "..")]
    *folders, stem = parts or ["face"]
    return "/".join([IMAGES_FOLDER, *folders, f"{stem}_{frame:05d}.png"])


def _table(store: FaceStore, faces: pd.DataFrame, values: np.ndarray,
           source: np.ndarray) -> pd.DataFrame:
    """The CSV rows, one per face of `faces`."""
    names = store.expression_names
    expression = faces["expression"].to_numpy(dtype=np.int64)
    table = pd.DataFrame({
        "path": [_image_name(v, int(f)) for v, f in zip(faces["video"], faces["frame"])],
        "label": [names[k] if k >= 0 else "" for k in expression],
        "valence": values[:, 0], "arousal": values[:, 1],
        "subject": faces["subject"].to_numpy(), "split": faces["split"].to_numpy(),
        "va_source": source, "row": faces["row"].to_numpy()})
    repeated = table["path"].duplicated(keep=False)
    if repeated.any():
        clash = faces.loc[repeated.to_numpy(), "video"].unique()[:2]
        raise InputError(store.path, f"groups {', '.join(map(repr, clash))} give the same image "
                                     f"file name {table.loc[repeated, 'path'].iloc[0]}")
    return table


def _write_images(store: FaceStore, table: pd.DataFrame, folder: Path, progress: bool) -> int:
    """Each face's crop as a PNG (lossless, so the new store gets the same pixels); files a
    previous run finished are kept. Returns how many were written now."""
    todo = table[[not (folder / path).is_file() for path in table["path"]]]
    for path, row in tqdm(zip(todo["path"], todo["row"]), total=len(todo), unit="face",
                          desc="images", disable=not progress):
        ok, png = cv2.imencode(".png", store.faces[int(row)])
        if not ok:
            raise AffectTrackError(f"{folder / path}: OpenCV could not encode the face as PNG")
        with atomic_path(folder / path) as tmp:
            tmp.write_bytes(png.tobytes())
    return len(todo)


def _claim(record_path: Path, store: FaceStore) -> None:
    """Mark the output as this store's export before any image is written, refusing one that
    holds another store's (its images would be kept as if they were this store's)."""
    if record_path.is_file():
        try:
            earlier = json.loads(record_path.read_text()).get("store")
        except (ValueError, AttributeError):
            raise InputError(record_path, "not a readable export record; delete it or choose "
                                          "another output") from None
        if Path(str(earlier)) != _identity(store):
            raise InputError(record_path.parent, f"holds the export of another store "
                                                 f"({earlier}); choose another output folder")
    write_json_atomic(record_path, {"store": str(_identity(store)), "complete": False})


def _identity(store: FaceStore) -> Path:
    """The store's absolute path: what an export record names, whatever the working folder."""
    return Path(store.path).resolve()


def extend_with_va(store: Path, out: Path, model: Path | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """Label the faces of a face store with valence/arousal and export them for `prepare folder`.

    Values: a face's own annotation if it has one, else the frame model's valence/arousal head
    (`model`, a frame_model.pt) or, without a model, its expression's centroid. Faces that end
    with neither an expression nor valence/arousal are left out, as are labelled frames without a
    face image; both are counted. Writes, in the folder `out`, `labels.csv` (columns
    `CSV_COLUMNS`), the PNG crops under `images/` and `labels.json` (what was done, counts per
    source); returns that record.
    """
    return _extend(FaceStore.open(store), Path(out) / EXTENDED_CSV, model, progress)


def _extend(store: FaceStore, out_csv: Path, model: Path | None, progress: bool) -> dict[str, Any]:
    record_path = out_csv.with_suffix(".json")
    _claim(record_path, store)
    faces = store.index[store.index["row"] >= 0].reset_index(drop=True)
    model = Path(model) if model is not None else None
    values, source = _values(store, faces, model)
    table = _table(store, faces, values, source)
    keep = (table["label"] != "") | (table["va_source"] != "")
    written = _write_images(store, table[keep], out_csv.parent, progress)
    write_text_atomic(out_csv, table.loc[keep, list(CSV_COLUMNS)].to_csv(index=False))
    record = {"store": str(_identity(store)), "complete": True,
              "model": str(model) if model is not None else None, "csv": out_csv.name,
              "images": IMAGES_FOLDER, "images_written": written,
              **_counts(store, table, keep.to_numpy()),
              "centroids": None if model is not None else _centroid_record(store)}
    write_json_atomic(record_path, record)
    return record


def _counts(store: FaceStore, table: pd.DataFrame, kept: np.ndarray) -> dict[str, Any]:
    """Faces exported per source of their values, and what was left out and why."""
    exported = table[kept]
    return {"faces": len(exported),
            "va_source": {name or "none": int(count)
                          for name, count in exported["va_source"].value_counts().items()},
            "left_out": {"unlabelled_face": int((~kept).sum()),
                         "labelled_without_face": int((store.index["row"] < 0).sum())}}


def _centroid_record(store: FaceStore) -> dict[str, list[float] | None]:
    names = store.expression_names
    return {name: None if np.isnan(centroid).any() else centroid.tolist()
            for name, centroid in zip(names, class_centroids(names))}
