"""The per-frame prediction table of a video: one row per (frame, face), and what is made of it.

A pandas DataFrame subclass (as py-feat's `Fex`), so that a researcher can filter, group and plot
it with pandas directly, while the class names, frame rate and source travel with every slice
(`_metadata`). The column contract is fixed here, in one place: the engine builds tables through
`FramePredictions.build`, and every file (CSV, ABAW text, plot, annotated video) is written from
this type, so no writer has to guess column names or dtypes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, TextIO

import numpy as np
import pandas as pd

from affecttrack.errors import AffectTrackError, InputError
from affecttrack.labels import VA_UNANNOTATED, canonical_expression, is_action_unit
from affecttrack.predictions.smoothing import check_window, smooth_track
from affecttrack.runinfo import atomic_path, write_text_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Dtypes of the fixed columns; the probability columns (float64) sit between arousal and expression.
HEAD_COLUMNS: dict[str, str] = {
    "frame": "int64", "time_s": "float64", "face_id": "Int64", "x": "Int64", "y": "Int64",
    "w": "Int64", "h": "Int64", "score": "float64", "valence": "float64", "arousal": "float64"}
TAIL_COLUMNS: dict[str, str] = {"expression": "string", "interpolated": "bool"}
VA = ["valence", "arousal"]


def probability_columns(labels: Sequence[str]) -> list[str]:
    """Column names of the class probabilities: the class names, lower-cased."""
    return [str(label).lower() for label in labels]


def most_probable(probabilities: np.ndarray, labels: Sequence[str]) -> pd.arrays.StringArray:
    """Name of each row of (n, classes) `probabilities`' most probable class; <NA> where a row
    lacks probabilities."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    names = np.full(len(probabilities), None, dtype=object)
    if probabilities.shape[1]:
        known = np.isfinite(probabilities).all(axis=1)
        names[known] = np.asarray(labels, dtype=object)[probabilities[known].argmax(axis=1)]
    return pd.array(names, dtype="string")


class FramePredictions(pd.DataFrame):
    """One row per (frame, face) of a video; a frame without a face is one row with face_id <NA>.

    `labels`: the model's expression class names (probability-column order), `fps`: the video's
    frame rate (None when unknown), `source`: the video path or a description of the input,
    `action_units`: the model's action units, whose probabilities are the last columns (named
    as the units, e.g. AU12), after `interpolated`.
    """

    _metadata: ClassVar[list[str]] = ["labels", "fps", "source", "action_units"]
    # Class-level defaults: pandas operations that cannot carry metadata (concat) still give a
    # table whose attributes read, instead of failing with a column lookup error.
    labels: tuple[str, ...] = ()
    fps: float | None = None
    source: str = ""
    action_units: tuple[str, ...] = ()

    @property
    def _constructor(self) -> type[FramePredictions]:
        return FramePredictions

    @classmethod
    def build(cls, table: pd.DataFrame, labels: Sequence[str], fps: float | None = None,
              source: str = "", action_units: Sequence[str] = ()) -> FramePredictions:
        """The contract table from `table`: columns checked and ordered, dtypes set, rows sorted
        by (frame, face_id). `expression` is computed from the probabilities when absent and
        `interpolated` defaults to False; boxes are rounded to whole pixels."""
        labels = tuple(str(label) for label in labels)
        action_units = tuple(str(unit) for unit in action_units)
        columns = {**HEAD_COLUMNS, **dict.fromkeys(probability_columns(labels), "float64"),
                   **TAIL_COLUMNS, **dict.fromkeys(action_units, "float64")}
        _check_columns(table, labels, columns, source)
        out = pd.DataFrame({name: _converted(table, name, dtype, source)
                            for name, dtype in columns.items() if name in table.columns})
        if "expression" not in out:
            out["expression"] = most_probable(out[probability_columns(labels)].to_numpy(), labels)
        if "interpolated" not in out:
            out["interpolated"] = False
        out = out[list(columns)].sort_values(["frame", "face_id"], kind="stable",
                                             na_position="first")
        duplicated = out.duplicated(["frame", "face_id"])
        if duplicated.any():
            row = out[duplicated].iloc[0]
            raise AffectTrackError(f"{source}: frame {row['frame']} has more than one row for "
                                   f"face {row['face_id']}")
        return cls._with_meta(out.reset_index(drop=True), labels, fps, source, action_units)

    @classmethod
    def _with_meta(cls, table: pd.DataFrame, labels: tuple[str, ...], fps: float | None,
                   source: str, action_units: tuple[str, ...]) -> FramePredictions:
        result = cls(table)
        result.labels, result.fps, result.source = labels, fps, source
        result.action_units = action_units
        return result

    def _like(self, table: pd.DataFrame) -> FramePredictions:
        """`table` as a FramePredictions with this one's metadata and a fresh 0..n-1 index."""
        return self._with_meta(table.reset_index(drop=True), self.labels, self.fps, self.source,
                               self.action_units)

    @property
    def probability_columns(self) -> list[str]:
        return probability_columns(self.labels)

    def face(self, face_id: int) -> FramePredictions:
        """The rows of one tracked face."""
        rows = self["face_id"].eq(face_id).to_numpy(dtype=bool, na_value=False)
        if not rows.any():
            known = sorted(int(i) for i in self["face_id"].dropna().unique())
            raise AffectTrackError(f"{self.source}: no face {face_id}; face ids are {known}")
        return self._like(self[rows])

    def main_face(self) -> FramePredictions:
        """The rows of the face seen in the most frames (the lowest id on a tie); no rows when
        the video has no face."""
        counts = self["face_id"].value_counts()
        if counts.empty:
            return self._like(self.iloc[:0])
        return self.face(int(counts[counts == counts.max()].index.min()))

    def faces(self) -> pd.DataFrame:
        """One row per face: when and how long it is seen, how much of it was interpolated, the
        mean and spread of valence and arousal, the mean probability of each class and the
        class with the highest mean (its dominant expression), the mean probability of each
        action unit."""
        rows = pd.DataFrame(self).dropna(subset=["face_id"])
        means = {column: (column, "mean") for column in self.probability_columns}
        unit_means = {unit: (unit, "mean") for unit in self.action_units}
        summary = rows.groupby("face_id").agg(
            first_frame=("frame", "min"), last_frame=("frame", "max"), frames=("frame", "size"),
            start_s=("time_s", "min"), end_s=("time_s", "max"),
            interpolated_share=("interpolated", "mean"), valence_mean=("valence", "mean"),
            valence_std=("valence", "std"), arousal_mean=("arousal", "mean"),
            arousal_std=("arousal", "std"), **means, **unit_means)
        summary["expression"] = most_probable(summary[list(means)].to_numpy(), self.labels)
        units = list(self.action_units)    # last, as in the frame table
        return summary[[*summary.columns.drop(units), *units]].reset_index()

    def per_frame(self) -> FramePredictions:
        """One row per frame: its largest face (by box area; the lowest id on a tie), or its
        face-less row. What single-person formats such as ABAW's expect."""
        area = (self["w"] * self["h"]).rename("area")
        ordered = pd.concat([pd.DataFrame(self), area], axis=1).sort_values(
            ["frame", "area", "face_id"], ascending=[True, False, True], na_position="last",
            kind="stable")
        return self._like(ordered.drop_duplicates("frame").drop(columns="area"))

    def smooth(self, window: int = 15) -> FramePredictions:
        """Valence, arousal and the class and action-unit probabilities averaged over a centred
        `window` of video frames, per face (faces never mix; face-less rows stay as they are);
        `expression` is recomputed from the smoothed probabilities."""
        check_window(window)
        out = pd.DataFrame(self).copy()
        groups = [columns for columns in (VA, self.probability_columns, list(self.action_units))
                  if columns]
        for _, rows in out.dropna(subset=["face_id"]).groupby("face_id"):
            for columns in groups:
                values = rows[columns].to_numpy(dtype=np.float64)
                known = np.isfinite(values).all(axis=1)
                if known.any():
                    out.loc[rows.index[known], columns] = smooth_track(
                        rows["frame"].to_numpy()[known], values[known], window)
        out["expression"] = most_probable(out[self.probability_columns].to_numpy(), self.labels)
        return self._like(out)

    def plot(self, path: Path | None = None, face: int | None = None) -> Figure:
        """Valence, arousal and the expression band over time for `face` (default: the main
        face); also saved as a PNG when `path` is given."""
        rows = self.main_face() if face is None else self.face(face)
        if rows.empty:
            raise AffectTrackError(f"{self.source}: no face in the predictions to plot")
        # Imported here: the plot module pulls in matplotlib, which reading or writing a table
        # must not pay for.
        from affecttrack.inference.timeline_plot import plot_timeline

        title = f"{Path(self.source).name or 'predictions'}: face {int(rows['face_id'].iloc[0])}"
        return plot_timeline(self, rows, self.labels, title, path)

    def to_csv_file(self, path: Path) -> Path:
        """The table as CSV: floats with 4 decimals, missing values as empty cells."""
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
            self.write_csv_rows(handle, header=True)
        return Path(path)

    def write_csv_rows(self, handle: TextIO, header: bool) -> None:
        """Append the rows to an open CSV file, as `to_csv_file` formats them (a live source
        writes its file a batch at a time)."""
        pd.DataFrame(self).to_csv(handle, header=header, index=False, float_format="%.4f",
                                  na_rep="")

    @classmethod
    def read_csv(cls, path: Path, labels: Sequence[str] | None = None,
                 fps: float | None = None) -> FramePredictions:
        """A table written by `to_csv_file`. Without `labels` the class columns are those between
        `arousal` and `expression`, spelled as in the `expression` column; action-unit columns
        (AU1, AU12 ...) are found by their names."""
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "no such predictions file")
        try:
            raw = pd.read_csv(path, keep_default_na=False, na_values=[""],
                              dtype={"expression": "string"})
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
                ValueError) as error:
            raise InputError(path, f"not a predictions CSV ({error})") from None
        if labels is None:
            labels = _labels_from_columns(raw, path)
        units = [str(column) for column in raw.columns if is_action_unit(str(column))]
        return cls.build(raw, labels, fps, str(path), units)

    def to_abaw(self, path: Path) -> Path:
        """The ABAW valence/arousal file: `valence,arousal`, then one line per frame 1..N (the
        largest face), `-5,-5` where a frame has no prediction."""
        table = pd.DataFrame(self.per_frame())
        if table["face_id"].notna().any() and table[VA].isna().all().all():
            raise AffectTrackError(f"{self.source}: no valence/arousal to write (the model "
                                   "predicts expressions only)")
        last = int(table["frame"].max()) if len(table) else 0
        va = table.set_index("frame")[VA].reindex(range(1, last + 1)).to_numpy()
        missing = f"{VA_UNANNOTATED:g},{VA_UNANNOTATED:g}"
        lines = [missing if np.isnan(v) or np.isnan(a) else f"{v:.6f},{a:.6f}" for v, a in va]
        write_text_atomic(path, "\n".join(["valence,arousal", *lines]) + "\n")
        return Path(path)


def _check_columns(table: pd.DataFrame, labels: tuple[str, ...], columns: dict[str, str],
                   source: str) -> None:
    """Refuse class names that collide with other columns, and missing or unexpected columns."""
    names = probability_columns(labels)
    clashing = sorted({n for n in names if n in HEAD_COLUMNS or n in TAIL_COLUMNS
                       or names.count(n) > 1})
    if clashing:
        raise AffectTrackError(f"{source}: class names {list(labels)} give clashing probability "
                               f"column(s) {clashing}")
    optional = set(TAIL_COLUMNS)
    missing = [name for name in columns if name not in table.columns and name not in optional]
    unexpected = [str(name) for name in table.columns if name not in columns]
    if missing or unexpected:
        raise AffectTrackError(f"{source}: prediction table lacks column(s) {missing} and has "
                               f"unexpected column(s) {unexpected}; classes are {list(labels)}")


def _converted(table: pd.DataFrame, name: str, dtype: str, source: str) -> pd.Series:
    column = table[name]
    try:
        if dtype == "Int64":
            return pd.to_numeric(column).round().astype("Int64")
        if dtype == "bool":
            return pd.array(column, dtype="boolean").fillna(False).astype(bool)
        return column.astype(dtype)
    except (ValueError, TypeError) as error:
        raise AffectTrackError(f"{source}: column {name!r} is not {dtype} ({error})") from None


def _labels_from_columns(raw: pd.DataFrame, path: Path) -> tuple[str, ...]:
    """Class names from the probability columns, spelled as the `expression` column spells them
    (else the canonical spelling), since the columns themselves are lower-cased."""
    columns = list(raw.columns)
    if "arousal" not in columns or "expression" not in columns:
        raise InputError(path, "lacks the arousal or expression column, so its class columns "
                               "cannot be found; pass labels")
    names = columns[columns.index("arousal") + 1:columns.index("expression")]
    spelled = {str(name).lower(): str(name) for name in raw["expression"].dropna().unique()}
    return tuple(spelled.get(name) or canonical_expression(name) or name for name in names)
