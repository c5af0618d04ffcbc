"""The face store: right faces in the right rows, skipped items counted, interrupted runs resume."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import EXPR_HEADER, TinyVideo, face_value
from store_fixtures import write_face_store

from affecttrack.data import images as images_module
from affecttrack.data import store as store_module
from affecttrack.data.sources.affwild2 import prepare_affwild2
from affecttrack.data.store import FaceStore, describe_skipped
from affecttrack.errors import AffectTrackError, InputError
from affecttrack.labels import AFFWILD2_EXPRESSIONS


def _prepare(root, out, **kwargs):
    return prepare_affwild2(root, out, progress=False, **kwargs)


def test_store_holds_every_face_and_label_of_the_tree(affwild2_tree, tmp_path):
    summary = _prepare(affwild2_tree, tmp_path / "store")
    store = FaceStore.open(tmp_path / "store")
    index = store.index
    assert list(index.columns) == ["video", "frame", "row", "split", "valence", "arousal",
                                   "expression", "subject"]
    assert index.dtypes.drop(["video", "split", "subject"]).to_dict() == {
        "frame": np.int32, "row": np.int64, "valence": np.float32, "arousal": np.float32,
        "expression": np.int16}
    assert all(pd.api.types.is_string_dtype(index[c]) for c in ("video", "split", "subject"))
    assert index.equals(index.sort_values(["video", "frame"]).reset_index(drop=True))
    assert store.faces.shape == (36, 96, 96) and store.faces.dtype == np.uint8
    with_face = index[index["row"] >= 0]
    assert sorted(with_face["row"]) == list(range(36))
    images = store.images(with_face["row"].to_numpy())
    expected = [face_value(v, f) for v, f in zip(with_face["video"], with_face["frame"])]
    np.testing.assert_allclose(images.mean(axis=(1, 2)), expected, atol=2)
    left = index[index["video"] == "val_b_left"].set_index("frame")
    assert left.loc[[9, 10], "row"].tolist() == [-1, -1]          # labelled, no face
    assert left.loc[9, "valence"] == pytest.approx(-0.2)
    assert summary["videos"] == {"train": 2, "val": 2, "test": 1, "all": 5}
    assert summary["faces"]["all"] == 36 and summary["frames"]["all"] == 36 + 4  # val_b_left 4, 5, 9, 10
    assert summary["labelled_va"] == {"train": 10 + 5, "val": 10, "test": 0, "all": 25}
    assert summary["skipped"] == {}
    assert store.summary == summary
    assert json.loads((tmp_path / "store" / "run.json").read_text())["stage"] == "prepare"
    assert not (tmp_path / "store" / "progress.jsonl").exists()


def test_corrupt_image_is_skipped_counted_and_named(affwild2_tree, tmp_path):
    bad = affwild2_tree / "cropped_aligned" / "train_a" / "00005.jpg"
    bad.write_bytes(b"not a jpeg")
    junk = affwild2_tree / "cropped_aligned" / "test_d" / "00002.jpg"
    junk.write_bytes(b"")
    summary = _prepare(affwild2_tree, tmp_path / "store")
    store = FaceStore.open(tmp_path / "store")
    assert summary["skipped"]["corrupt_image"]["count"] == 2
    assert {item["file"] for item in summary["skipped"]["corrupt_image"]["items"]} == {
        str(bad), str(junk)}
    assert store.faces.shape[0] == 34  # the array holds exactly the decoded faces
    index = store.index.set_index(["video", "frame"])
    assert index.loc[("train_a", 5), "row"] == -1           # labelled frame kept, without face
    assert ("test_d", 2) not in index.index                  # unlabelled and faceless: gone
    rows = store.index[store.index["row"] >= 0]
    np.testing.assert_allclose(store.images(rows["row"].to_numpy()).mean(axis=(1, 2)),
                               [face_value(v, f) for v, f in zip(rows["video"], rows["frame"])],
                               atol=2)
    assert any("corrupt_image x2" in line and str(bad) in line
               for line in describe_skipped(summary))


def test_bad_files_and_empty_videos_are_counted_in_the_summary(affwild2_tree, tmp_path):
    header = affwild2_tree / "annotations" / "VA_Set" / "Train_Set" / "train_c.txt"
    header.write_text("v,a\n0.1,0.1\n")
    for image in (affwild2_tree / "cropped_aligned" / "val_b_right").iterdir():
        image.unlink()
    summary = _prepare(affwild2_tree, tmp_path / "store")
    assert summary["skipped"]["bad_header"] == {
        "count": 1, "items": [{"file": str(header), "problem": summary["skipped"]["bad_header"][
            "items"][0]["problem"]}]}
    assert "expected 'valence,arousal'" in summary["skipped"]["bad_header"]["items"][0]["problem"]
    assert summary["skipped"]["empty_video"]["count"] == 1
    assert summary["videos"]["val"] == 1
    index = FaceStore.open(tmp_path / "store").index
    assert index.loc[index["video"] == "train_c", "valence"].isna().all()


class Interrupted(Exception):
    pass


def _count_decodes(monkeypatch):
    decoded = []
    real = images_module.read_grey

    def counting(path, max_pixels=None):
        decoded.append(path.parent.name)
        return real(path, max_pixels)

    monkeypatch.setattr(images_module, "read_grey", counting)
    return decoded


def test_interrupted_prepare_resumes_without_redoing_finished_videos(affwild2_tree, tmp_path,
                                                                      monkeypatch):
    (affwild2_tree / "cropped_aligned" / "train_c" / "00003.jpg").write_bytes(b"broken")
    reference = _prepare(affwild2_tree, tmp_path / "reference")
    real_write = store_module._write_video
    calls = []

    def write_then_fail(video, *args):
        calls.append(video.name)
        if len(calls) == 3:
            real_write(video, *args)  # its faces reach the disk, its progress line does not
            raise Interrupted
        return real_write(video, *args)

    monkeypatch.setattr(store_module, "_write_video", write_then_fail)
    with pytest.raises(Interrupted):
        _prepare(affwild2_tree, tmp_path / "store")
    with pytest.raises(InputError, match="interrupted prepare; run it again to resume"):
        FaceStore.open(tmp_path / "store")
    monkeypatch.setattr(store_module, "_write_video", real_write)
    decoded = _count_decodes(monkeypatch)
    summary = _prepare(affwild2_tree, tmp_path / "store")
    assert set(decoded) == {"train_c", "val_b_left", "val_b_right"}   # sorted order: 3rd onwards
    assert summary == reference
    done, expected = FaceStore.open(tmp_path / "store"), FaceStore.open(tmp_path / "reference")
    pd.testing.assert_frame_equal(done.index, expected.index)
    np.testing.assert_array_equal(done.faces, expected.faces)


def test_cut_progress_line_is_redone(affwild2_tree, tmp_path, monkeypatch):
    out = tmp_path / "store"
    real_append = store_module._append_progress

    def append_half(progress_file, record):
        if record["video"] == "train_c":
            progress_file.write(json.dumps(record)[:10])
            progress_file.flush()
            raise Interrupted
        real_append(progress_file, record)

    monkeypatch.setattr(store_module, "_append_progress", append_half)
    with pytest.raises(Interrupted):
        _prepare(affwild2_tree, out)
    monkeypatch.setattr(store_module, "_append_progress", real_append)
    decoded = _count_decodes(monkeypatch)
    _prepare(affwild2_tree, out)
    assert set(decoded) == {"train_c", "val_b_left", "val_b_right"}
    store = FaceStore.open(out)
    rows = store.index[store.index["row"] >= 0]
    np.testing.assert_allclose(store.images(rows["row"].to_numpy()).mean(axis=(1, 2)),
                               [face_value(v, f) for v, f in zip(rows["video"], rows["frame"])],
                               atol=2)


def test_resuming_against_a_changed_tree_is_refused(affwild2_tree, tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "_write_video", lambda *args: (_ for _ in ()).throw(
        Interrupted()))
    with pytest.raises(Interrupted):
        _prepare(affwild2_tree, tmp_path / "store")
    monkeypatch.undo()
    (affwild2_tree / "cropped_aligned" / "test_d" / "00009.jpg").write_bytes(
        (affwild2_tree / "cropped_aligned" / "test_d" / "00001.jpg").read_bytes())
    with pytest.raises(InputError, match="unfinished face store of a different Aff-Wild2 tree"):
        _prepare(affwild2_tree, tmp_path / "store")


def test_complete_store_is_returned_without_rescanning(affwild2_tree, tmp_path):
    summary = _prepare(affwild2_tree, tmp_path / "store")
    shutil.rmtree(affwild2_tree)
    assert _prepare(affwild2_tree, tmp_path / "store") == summary


def test_threaded_decoding_writes_the_same_store(affwild2_tree, tmp_path):
    _prepare(affwild2_tree, tmp_path / "one")
    _prepare(affwild2_tree, tmp_path / "two", workers=2)
    one, two = FaceStore.open(tmp_path / "one"), FaceStore.open(tmp_path / "two")
    pd.testing.assert_frame_equal(one.index, two.index)
    np.testing.assert_array_equal(one.faces, two.faces)


def test_opening_a_missing_or_partial_store_is_a_clear_error(affwild2_tree, tmp_path):
    with pytest.raises(InputError, match="no face store here"):
        FaceStore.open(tmp_path / "nowhere")
    _prepare(affwild2_tree, tmp_path / "store")
    (tmp_path / "store" / "index.parquet").unlink()
    with pytest.raises(InputError, match=r"missing index.parquet \(not a complete face store\)"):
        FaceStore.open(tmp_path / "store")


def test_rows_without_a_face_cannot_be_read_as_images(affwild2_tree, tmp_path):
    _prepare(affwild2_tree, tmp_path / "store")
    store = FaceStore.open(tmp_path / "store")
    with pytest.raises(AffectTrackError, match="row -1 marks a frame without a face"):
        store.images(np.array([0, -1]))
    assert store.images(np.array([], dtype=np.int64)).shape == (0, 96, 96)


def test_synthetic_tree_prepares_end_to_end(tmp_path):
    from affecttrack.synth import SynthConfig, synthesize

    synth = synthesize(tmp_path / "synth", SynthConfig(train_videos=2, val_videos=1,
                                                        frames_per_video=20, full_frame_videos=0),
                       progress=False)
    summary = _prepare(tmp_path / "synth" / "affwild2", tmp_path / "store")
    store = FaceStore.open(tmp_path / "store")
    assert summary["skipped"] == {}
    assert summary["faces"]["all"] == synth["faces"] == store.faces.shape[0]
    lines = sum(video["annotation_lines"] for video in synth["videos"])
    assert summary["labelled_va"]["all"] == lines - synth["va_unannotated"]
    splits = store.index.groupby("video")["split"].first().to_dict()
    assert splits == {name: split for split, names in synth["splits"].items() for name in names}


def test_store_names_its_expression_classes(affwild2_tree, make_affwild2_tree, tmp_path):
    summary = _prepare(affwild2_tree, tmp_path / "store")
    assert summary["expressions"] == list(AFFWILD2_EXPRESSIONS)
    assert FaceStore.open(tmp_path / "store").expression_names == AFFWILD2_EXPRESSIONS
    later = make_affwild2_tree(tmp_path / "abaw", {"v": TinyVideo(range(1, 4), expr=[7, 0, -1])},
                               expr_header=EXPR_HEADER + ",Other")
    _prepare(later, tmp_path / "abaw_store")
    store = FaceStore.open(tmp_path / "abaw_store")
    assert store.expression_names == (*AFFWILD2_EXPRESSIONS, "Other")
    assert store.index["expression"].tolist()[:2] == [7, 0]
    older = write_face_store(tmp_path / "older")              # a summary without "expressions"
    assert older.expression_names == AFFWILD2_EXPRESSIONS


def test_action_units_become_index_columns_and_summary_counts(affwild2_tree, tmp_path):
    path = affwild2_tree / "annotations" / "AU_Set" / "Validation_Set" / "val_b_right.txt"
    path.parent.mkdir(parents=True)
    path.write_text("AU12,AU1\n1,0\n1,-1\n-1,-1\n")
    (affwild2_tree / "annotations" / "AU_Set" / "Train_Set").mkdir()
    summary = _prepare(affwild2_tree, tmp_path / "store")
    store = FaceStore.open(tmp_path / "store")
    assert store.action_units == ("AU1", "AU12") == tuple(summary["action_units"])
    right = store.index[store.index["video"] == "val_b_right"].set_index("frame")
    assert right.loc[[1, 2, 3], "AU12"].tolist() == [1, 1, -1]
    assert right.loc[[1, 2], "AU1"].tolist() == [0, -1]
    assert (store.index[store.index["video"] != "val_b_right"][["AU1", "AU12"]] == -1).all().all()
    assert store.index["AU1"].dtype == np.int8
    assert summary["au_counts"] == {"AU1": {"active": 0, "known": 1},
                                    "AU12": {"active": 2, "known": 2}}
    assert summary["labelled_au"]["val"] == 2
