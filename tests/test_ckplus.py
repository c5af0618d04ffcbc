"""CK+ and CK+48: the paper's frames with the right labels, bad files named, interrupted runs resume."""

import re
import shutil

import numpy as np
import pandas as pd
import pytest

from affecttrack.data import store as store_module
from affecttrack.data.sources.ckplus import prepare_ckplus
from affecttrack.data.store import FaceStore, describe_skipped
from affecttrack.errors import InputError
from affecttrack.labels import CKPLUS_EXPRESSIONS


def _prepare(root, out, **kwargs):
    return prepare_ckplus(root, out, progress=False, **kwargs)


@pytest.fixture
def ckplus(synthetic_layouts, tmp_path):
    """A private copy of the synthetic CK+ tree, and the generator's account of it."""
    out, summary = synthetic_layouts
    root = shutil.copytree(out / "ckplus", tmp_path / "ckplus")
    return root, summary["photo_layouts"]["ckplus"]


def _emotion_files(root):
    return sorted((root / "Emotion").glob("*/*/*_emotion.txt"))


def test_full_tree_gives_first_frame_neutral_and_last_three_labelled(ckplus, tmp_path):
    root, made = ckplus
    summary = _prepare(root, tmp_path / "store")
    store = FaceStore.open(tmp_path / "store")
    index = store.index
    assert store.expression_names == CKPLUS_EXPRESSIONS == tuple(summary["expressions"])
    assert summary["videos"]["all"] == made["labelled_sequences"]
    assert len(index) == made["images_of_labelled"]           # 4 per labelled sequence
    for path in _emotion_files(root):
        label = int(float(path.read_text()))
        subject, sequence = path.parent.parent.name, path.parent.name
        frames = sorted(p.name for p in (root / "cohn-kanade-images" / subject / sequence).iterdir())
        numbers = [int(name[-12:-4]) for name in frames]
        rows = index[index["video"] == f"{subject}_{sequence}"]
        assert rows["frame"].tolist() == [numbers[0], *numbers[-3:]]
        assert rows["expression"].tolist() == [0, label, label, label]
        assert set(rows["subject"]) == {subject} and set(rows["split"]) == {"train"}
    assert summary["skipped"]["unlabelled_sequence"]["count"] == (made["sequences"]
                                                                 - made["labelled_sequences"])
    found = (index["row"] >= 0).mean()
    assert found >= 0.9                                       # Haar finds the drawn faces
    assert summary["faces"]["all"] + summary["skipped"].get("no_face", {}).get("count", 0) == len(
        index)                                                # faceless frames: kept and counted
    assert summary["labelled_va"]["all"] == 0


def test_garbage_emotion_file_and_unreadable_image_are_named_and_counted(ckplus, tmp_path):
    root, made = ckplus
    garbage, *others = _emotion_files(root)
    garbage.write_text("happy?\n")
    sequence = root / "cohn-kanade-images" / others[0].parent.parent.name / others[0].parent.name
    broken = max(sequence.iterdir())
    broken.write_bytes(b"\x89PNG truncated")
    summary = _prepare(root, tmp_path / "store")
    index = FaceStore.open(tmp_path / "store").index
    bad = summary["skipped"]["bad_label"]
    assert bad["count"] == 1 and bad["items"][0]["file"] == str(garbage)
    assert "'happy?'" in bad["items"][0]["problem"] and "\n" not in bad["items"][0]["problem"]
    corrupt = summary["skipped"]["corrupt_image"]
    assert corrupt["items"] == [{"file": str(broken), "problem": "cannot decode image; image "
                                                                 "skipped"}]
    row = index[(index["video"] == f"{sequence.parent.name}_{sequence.name}")
                & (index["frame"] == int(broken.stem[-8:]))]
    assert row["row"].tolist() == [-1] and row["expression"].item() > 0   # labelled, no face
    assert summary["videos"]["all"] == made["labelled_sequences"] - 1
    assert any(line.startswith("bad_label x1: ") for line in describe_skipped(summary))


def test_label_of_a_sequence_without_images_is_reported(ckplus, tmp_path):
    root, _ = ckplus
    stray = root / "Emotion" / "S999" / "001" / "S999_001_00000012_emotion.txt"
    stray.parent.mkdir(parents=True)
    stray.write_text("   1.0000000e+00\n")
    summary = _prepare(root, tmp_path / "store")
    assert summary["skipped"]["missing_file"]["items"][0]["file"] == str(stray)


class Interrupted(Exception):
    pass


def test_interrupted_ckplus_prepare_resumes_to_the_same_store(ckplus, tmp_path, monkeypatch):
    root, _ = ckplus
    reference = _prepare(root, tmp_path / "reference")
    real_write = store_module._write_video
    written = []

    def write_then_fail(group, *args):
        written.append(group.name)
        if len(written) == 3:
            raise Interrupted
        return real_write(group, *args)

    monkeypatch.setattr(store_module, "_write_video", write_then_fail)
    with pytest.raises(Interrupted):
        _prepare(root, tmp_path / "store")
    with pytest.raises(InputError, match="interrupted prepare"):
        FaceStore.open(tmp_path / "store")
    written.clear()
    monkeypatch.setattr(store_module, "_write_video", lambda group, *args: (
        written.append(group.name), real_write(group, *args))[1])
    assert _prepare(root, tmp_path / "store") == reference
    assert len(written) == reference["videos"]["all"] - 2     # the first two were kept
    done, expected = FaceStore.open(tmp_path / "store"), FaceStore.open(tmp_path / "reference")
    pd.testing.assert_frame_equal(done.index, expected.index)
    np.testing.assert_array_equal(done.faces, expected.faces)


def test_resuming_with_other_detection_settings_is_refused(ckplus, tmp_path, monkeypatch):
    root, _ = ckplus
    monkeypatch.setattr(store_module, "_write_video", lambda *args: (_ for _ in ()).throw(
        Interrupted()))
    with pytest.raises(Interrupted):
        _prepare(root, tmp_path / "store")
    monkeypatch.undo()
    with pytest.raises(InputError, match="different CK\\+ tree .* settings"):
        _prepare(root, tmp_path / "store", margin=0.3)


@pytest.mark.parametrize("where", ["root", "inside"])
def test_ck48_is_recognised_and_read_without_detection(synthetic_layouts, tmp_path, where):
    out, synth = synthetic_layouts
    made = synth["photo_layouts"]["ckplus48"]
    root = tmp_path / "data"
    shutil.copytree(out / "CK+48", root if where == "root" else root / "CK+48")
    (root / ("CK+48" if where == "inside" else ".") / "smile").mkdir()
    summary = _prepare(root, tmp_path / "store")
    store = FaceStore.open(tmp_path / "store")
    assert summary["layout"] == "ck48" and store.expression_names == CKPLUS_EXPRESSIONS
    assert summary["faces"]["all"] == len(store.index) == made["images"]   # nothing detected away
    counts = {name: n for name, n in summary["expression_counts"].items() if n}
    assert counts == made["label_counts"]
    assert summary["skipped"]["unknown_label"]["count"] == 1            # the "smile" folder
    first = store.index.iloc[0]
    assert re.fullmatch(r"[a-z]+/S\d{3}_\d{3}", first["video"])
    assert first["subject"] == first["video"].split("/")[1][:4]
    assert summary["expression_counts"]["Neutral"] == 0


def test_a_folder_that_is_no_ckplus_layout_is_one_clear_error(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(InputError, match="neither a CK\\+ tree .* nor CK\\+48 class folders"):
        _prepare(tmp_path / "photos", tmp_path / "store")


def test_parallel_detection_writes_the_same_store(ckplus, tmp_path):
    root, _ = ckplus
    one = _prepare(root, tmp_path / "one")
    assert _prepare(root, tmp_path / "two", workers=3) == one
    first, second = FaceStore.open(tmp_path / "one"), FaceStore.open(tmp_path / "two")
    pd.testing.assert_frame_equal(first.index, second.index)
    np.testing.assert_array_equal(first.faces, second.faces)
