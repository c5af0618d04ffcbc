"""The per-frame prediction table: its contract, the files made from it, and the annotated video."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from video_fixtures import write_video

from affecttrack.errors import AffectTrackError, InputError
from affecttrack.inference.annotate import write_annotated_video
from affecttrack.inference.results import FramePredictions

LABELS = ("Neutral", "Happiness", "Sadness")


def row(frame: int, face_id: int | None = None, box=(10, 10, 20, 20), va=(0.1, -0.2),
        probs=(0.2, 0.7, 0.1), interpolated: bool = False, fps: float = 10.0) -> dict:
    """One table row; face_id None gives a frame without a face."""
    names = ["neutral", "happiness", "sadness"]
    base = {"frame": frame, "time_s": (frame - 1) / fps}
    if face_id is None:
        return {**base, "face_id": None, "x": None, "y": None, "w": None, "h": None,
                "score": np.nan, "valence": np.nan, "arousal": np.nan,
                **dict.fromkeys(names, np.nan), "interpolated": False}
    x, y, w, h = box
    return {**base, "face_id": face_id, "x": x, "y": y, "w": w, "h": h,
            "score": np.nan if interpolated else 0.9, "valence": va[0], "arousal": va[1],
            **dict(zip(names, probs)), "interpolated": interpolated}


def build(rows: list[dict], source: str = "clip.mp4") -> FramePredictions:
    return FramePredictions.build(pd.DataFrame(rows), LABELS, fps=10.0, source=source)


def two_faces() -> FramePredictions:
    """Frames 1-6: face 0 small (frames 1-5), face 1 large (frames 2-4), frame 6 without face."""
    rows = [row(f, 0, box=(0, 0, 10, 10), va=(0.5, 0.25)) for f in range(1, 6)]
    rows += [row(f, 1, box=(30, 30, 40, 40), va=(-0.5, 0.75), probs=(0.1, 0.1, 0.8),
                 interpolated=f == 3) for f in (2, 3, 4)]
    return build(rows + [row(6)])


def test_build_orders_columns_sets_dtypes_and_derives_the_expression():
    table = build([row(2, 0), row(1), row(2, 1, probs=(0.9, 0.05, 0.05))])
    assert list(table.columns) == ["frame", "time_s", "face_id", "x", "y", "w", "h", "score",
                                   "valence", "arousal", "neutral", "happiness", "sadness",
                                   "expression", "interpolated"]
    assert table.dtypes.astype(str).to_dict() == {
        "frame": "int64", "time_s": "float64", "face_id": "Int64", "x": "Int64", "y": "Int64",
        "w": "Int64", "h": "Int64", "score": "float64", "valence": "float64",
        "arousal": "float64", "neutral": "float64", "happiness": "float64",
        "sadness": "float64", "expression": "string", "interpolated": "bool"}
    assert table["frame"].tolist() == [1, 2, 2]
    assert table["face_id"].isna().tolist() == [True, False, False]
    assert table["expression"].tolist() == [pd.NA, "Happiness", "Neutral"]
    assert table.probability_columns == ["neutral", "happiness", "sadness"]


def test_slices_keep_the_type_and_metadata():
    table = two_faces()
    for part in (table[table["frame"] > 2], table.head(3), table.main_face(), table.per_frame()):
        assert isinstance(part, FramePredictions)
        assert (part.labels, part.fps, part.source) == (LABELS, 10.0, "clip.mp4")


@pytest.mark.parametrize("change, message", [
    (lambda t: t.drop(columns="sadness"), r"lacks column\(s\) \['sadness'\]"),
    (lambda t: t.assign(extra=1), r"unexpected column\(s\) \['extra'\]"),
    (lambda t: pd.concat([t, t.iloc[[1]]]), "frame 2 has more than one row for face 0"),
    (lambda t: t.assign(frame=[1.0, np.nan]), "'frame' is not int64"),
])
def test_build_refuses_a_table_that_breaks_the_contract(change, message):
    with pytest.raises(AffectTrackError, match=message):
        build(change(pd.DataFrame([row(1), row(2, 0)])))


def test_csv_round_trip_keeps_dtypes_missing_values_and_class_spelling(tmp_path: Path):
    table = two_faces()
    path = table.to_csv_file(tmp_path / "out" / "clip.csv")
    assert not list(path.parent.glob("*.tmp"))
    text = path.read_text().splitlines()
    assert text[-1].startswith("6,0.5000,,,,,,,,,,,,,False")
    back = FramePredictions.read_csv(path)
    assert back.labels == LABELS
    assert back.source == str(path)
    pd.testing.assert_series_equal(back.dtypes, table.dtypes)
    pd.testing.assert_frame_equal(pd.DataFrame(back), pd.DataFrame(table), atol=1e-4)


def test_reading_a_bad_csv_names_the_file(tmp_path: Path):
    with pytest.raises(InputError, match="no such predictions file"):
        FramePredictions.read_csv(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("frame,valence\n1,0.5\n")
    with pytest.raises(InputError, match="bad.csv"):
        FramePredictions.read_csv(bad)


def test_abaw_file_has_one_line_per_frame_with_the_largest_face(tmp_path: Path):
    rows = [row(1, 0, va=(0.5, 0.25)), row(2), row(4, 0, box=(0, 0, 10, 10), va=(0.1, 0.2)),
            row(4, 1, box=(0, 0, 30, 30), va=(-0.123456789, 0.9))]
    lines = build(rows).to_abaw(tmp_path / "clip.txt").read_text().splitlines()
    # Frame 3 has no row at all (e.g. a table cut to a few frames): also "no value".
    assert lines == ["valence,arousal", "0.500000,0.250000", "-5,-5", "-5,-5",
                     "-0.123457,0.900000"]


def test_abaw_refuses_predictions_without_valence_arousal(tmp_path: Path):
    with pytest.raises(AffectTrackError, match="no valence/arousal"):
        build([row(1, 0, va=(np.nan, np.nan))]).to_abaw(tmp_path / "clip.txt")


def test_per_frame_and_main_face():
    table = two_faces()
    per_frame = table.per_frame()
    assert per_frame["frame"].tolist() == [1, 2, 3, 4, 5, 6]
    assert per_frame["face_id"].tolist() == [0, 1, 1, 1, 0, pd.NA]
    assert table.main_face()["frame"].tolist() == [1, 2, 3, 4, 5]
    assert set(table.main_face()["face_id"]) == {0}
    with pytest.raises(AffectTrackError, match=r"no face 7; face ids are \[0, 1\]"):
        table.face(7)


def test_faces_summary():
    summary = two_faces().faces().set_index("face_id")
    assert summary.loc[0, ["first_frame", "last_frame", "frames"]].tolist() == [1, 5, 5]
    assert summary.loc[1, ["first_frame", "last_frame", "frames"]].tolist() == [2, 4, 3]
    assert summary.loc[1, "interpolated_share"] == pytest.approx(1 / 3)
    assert summary.loc[1, "start_s"] == pytest.approx(0.1)
    assert summary.loc[0, ["valence_mean", "arousal_mean", "valence_std"]].tolist() == \
        pytest.approx([0.5, 0.25, 0.0])
    assert summary.loc[1, "sadness"] == pytest.approx(0.8)
    assert summary["expression"].tolist() == ["Happiness", "Sadness"]


def test_smoothing_stays_within_each_face_and_keeps_faceless_rows():
    # Face 0 constant and never interrupted by face 1's opposite values in the same frames; a
    # one-frame spike of face 0 is spread over the window and stops flipping its expression.
    rows = [row(f, 0, va=(0.5, 0.5)) for f in range(1, 12)]
    rows[5] = row(6, 0, va=(0.5, 0.5), probs=(0.1, 0.2, 0.7))
    rows += [row(f, 1, va=(-0.5, -0.5)) for f in range(3, 9)] + [row(12), row(13)]
    table = build(rows)
    smoothed = table.smooth(window=5)
    assert isinstance(smoothed, FramePredictions) and smoothed.labels == LABELS
    face0 = smoothed.face(0)
    np.testing.assert_allclose(face0[["valence", "arousal"]], 0.5, atol=1e-6)
    np.testing.assert_allclose(smoothed.face(1)[["valence", "arousal"]], -0.5, atol=1e-6)
    assert face0["expression"].tolist() == ["Happiness"] * 11
    assert face0.set_index("frame").loc[6, "sadness"] == pytest.approx((0.7 + 4 * 0.1) / 5)
    assert face0[["neutral", "happiness", "sadness"]].sum(axis=1).to_numpy() == \
        pytest.approx(1.0)
    faceless = smoothed[smoothed["face_id"].isna()]
    assert faceless["frame"].tolist() == [12, 13]
    assert faceless["valence"].isna().all() and faceless["expression"].isna().all()
    with pytest.raises(AffectTrackError, match="odd window"):
        table.smooth(window=4)


def test_plot_writes_a_png_of_the_main_face(tmp_path: Path):
    figure = two_faces().plot(tmp_path / "timeline.png")
    assert isinstance(figure, Figure)
    assert (tmp_path / "timeline.png").read_bytes()[:4] == b"\x89PNG"
    assert figure.texts[0].get_text() == "clip.mp4: face 0"
    lines = figure.axes[0].get_lines()
    assert [line.get_label() for line in lines[:2]] == ["valence", "arousal"]
    assert lines[0].get_xdata()[-1] == pytest.approx(0.5)  # seconds, not frames


def flat_grey_video(path: Path, frames: int, size: tuple[int, int] = (96, 64)) -> Path:
    """A tiny video of flat grey frames (the grey level changes per frame)."""
    return write_video(path, [np.full((size[1], size[0], 3), 60 + 8 * i, dtype=np.uint8)
                              for i in range(frames)])


def read_video(path: Path) -> tuple[list[np.ndarray], float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate)
        return [f.to_ndarray(format="bgr24") for f in container.decode(stream)], rate


def test_annotated_video_keeps_frame_count_size_and_rate(tmp_path: Path):
    video = flat_grey_video(tmp_path / "clip.mp4", frames=12)
    rows = [row(f, 0, box=(20, 24, 40, 30), interpolated=f == 3) for f in range(1, 9)]
    out = write_annotated_video(video, build(rows + [row(9)]), tmp_path / "out" / "clip.mp4")
    assert not list(out.parent.glob("*.tmp"))
    annotated, rate = read_video(out)
    original, _ = read_video(video)
    assert len(annotated) == 12 and annotated[0].shape == (64, 96, 3)
    assert rate == pytest.approx(25.0)
    difference = [np.abs(a.astype(int) - o.astype(int)).mean() for a, o in zip(annotated,
                                                                                 original)]
    assert min(difference[:8]) > 5  # box and caption drawn
    # Frames without a face row are only re-encoded (grey steps by 8 a frame: same frame, order).
    assert max(difference[8:]) < 4
