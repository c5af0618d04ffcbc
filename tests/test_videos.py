"""Videos with per-frame CSVs: every decoded frame indexed with its labels; bad videos reported."""

import csv
import shutil

import numpy as np
import pandas as pd
import pytest

from affecttrack.data.sources.videos import prepare_videos
from affecttrack.data.store import FaceStore
from affecttrack.errors import InputError
from affecttrack.labels import AFFWILD2_EXPRESSIONS


def _prepare(root, out, **kwargs):
    return prepare_videos(root, out, progress=False, **kwargs)


@pytest.fixture
def videos(synthetic_layouts, tmp_path):
    out, _ = synthetic_layouts
    return shutil.copytree(out / "videos", tmp_path / "videos")


def test_every_frame_is_indexed_with_its_csv_labels(videos, tmp_path):
    summary = _prepare(videos, tmp_path / "store", workers=2)
    store = FaceStore.open(tmp_path / "store")
    assert store.expression_names == AFFWILD2_EXPRESSIONS            # numbered like Aff-Wild2's
    for path in sorted(videos.glob("*.csv")):
        labels = pd.read_csv(path)
        rows = store.index[store.index["video"] == path.stem]
        assert rows["frame"].tolist() == labels["frame"].tolist()   # all frames, labelled
        np.testing.assert_allclose(rows["valence"], labels["valence"], atol=1e-6)
        assert rows["expression"].tolist() == labels["expression"].tolist()
        assert set(rows["split"]) == {"train"} and set(rows["subject"]) == {path.stem}
    assert summary["faces"]["all"] >= 0.8 * len(store.index)
    assert summary["faces"]["all"] + summary["skipped"].get("no_face", {}).get("count", 0) == len(
        store.index)                                                 # faceless frames: counted


def test_corrupt_and_short_videos_are_reported_and_the_rest_kept(videos, tmp_path):
    first, second = sorted(videos.glob("*.mp4"))
    (videos / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    shutil.copy(second, videos / "unlabelled.mp4")
    with open(second.with_suffix(".csv"), "a", newline="") as file:
        csv.writer(file).writerows([[n, 0.5, 0.5, 4] for n in range(13, 16)])  # past the end
    summary = _prepare(videos, tmp_path / "store")
    index = FaceStore.open(tmp_path / "store").index
    assert summary["skipped"]["corrupt_video"]["items"][0]["file"] == str(videos / "broken.mp4")
    short = summary["skipped"]["truncated_video"]["items"][0]
    assert short["file"] == str(second) and "up to 15" in short["problem"]
    tail = index[(index["video"] == second.stem) & (index["frame"] > 12)]
    assert tail["row"].tolist() == [-1, -1, -1] and (tail["expression"] == 4).all()
    assert set(index.loc[index["video"] == "unlabelled", "split"]) == {"test"}
    assert (index["video"] == first.stem).sum() == 12
    assert summary["videos"] == {"train": 2, "val": 0, "test": 1, "all": 3}


def test_named_expressions_and_bad_lines(videos, tmp_path):
    path = min(videos.glob("*.csv"))
    table = pd.read_csv(path, dtype=str)
    table["expression"] = ["happy", "SAD", "neutral", "bliss"] * 3
    table.loc[5, "valence"] = "high"
    table.drop(columns=["arousal"]).to_csv(path, index=False)
    for other in sorted(videos.glob("*.mp4"))[1:]:
        other.unlink()
    summary = _prepare(videos, tmp_path / "store")
    assert summary["expressions"] == ["Neutral", "Happiness", "Sadness"]
    assert summary["skipped"]["unknown_label"]["count"] == 1
    assert "3 line(s)" in summary["skipped"]["unknown_label"]["items"][0]["problem"]
    assert summary["skipped"]["bad_lines"]["items"][0]["file"] == str(path)
    index = FaceStore.open(tmp_path / "store").index
    assert index["arousal"].isna().all()
    assert index.loc[index["frame"] == 1, "expression"].item() == 1


def test_a_folder_without_videos_is_one_clear_error(tmp_path):
    with pytest.raises(InputError, match="no video files"):
        _prepare(tmp_path, tmp_path / "store")
