"""A user's own photos: class folders or a CSV; labels matched by name, bad rows named and counted."""

import csv
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from affecttrack.cli import main
from affecttrack.data.sources.folder import prepare_folder
from affecttrack.data.store import FaceStore
from affecttrack.errors import InputError
from affecttrack.labels import CKPLUS_EXPRESSIONS, canonical_expression

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "expressions-in-the-wild"
# CK+48's folders spelled the ways people spell labels.
SPELLINGS = {"anger": "ANGER", "contempt": "Contempt", "disgust": "disgusted", "fear": "Fear",
             "happy": "Happy", "sadness": "sad", "surprise": "Surprise"}


def _prepare(root, out, **kwargs):
    return prepare_folder(root, out, progress=False, **kwargs)


@pytest.fixture
def crops(synthetic_layouts):
    """The synthetic CK+48 images (already cropped faces) by class folder."""
    out, _ = synthetic_layouts
    return {folder.name: sorted(folder.iterdir()) for folder in (out / "CK+48").iterdir()}


def _class_folders(root, crops):
    for folder, images in crops.items():
        (root / SPELLINGS[folder]).mkdir(parents=True)
        for image in images:
            shutil.copy(image, root / SPELLINGS[folder] / image.name)
    return root


def test_class_folders_are_matched_by_name_whatever_the_spelling(crops, tmp_path):
    root = _class_folders(tmp_path / "photos", crops)
    (root / "smirk").mkdir()
    shutil.copy(next(iter(crops.values()))[0], root / "smirk" / "x_1.png")
    shutil.copy(next(iter(crops.values()))[0], root / "loose_1.png")
    summary = _prepare(root, tmp_path / "store", detect=False)
    store = FaceStore.open(tmp_path / "store")
    present = {canonical_expression(SPELLINGS[folder]) for folder in crops}
    assert store.expression_names == tuple(n for n in CKPLUS_EXPRESSIONS if n in present)
    assert summary["label_mapping"] == {SPELLINGS[f]: canonical_expression(SPELLINGS[f])
                                        for f in crops}
    assert summary["faces"]["all"] == sum(len(images) for images in crops.values())
    by_name = {SPELLINGS[folder]: len(images) for folder, images in crops.items()}
    counts = {raw: summary["expression_counts"][name]
              for raw, name in summary["label_mapping"].items()}
    assert counts == by_name
    first = store.index.iloc[0]                                    # Happy/S123_001 frame 12
    assert first["video"].split("/")[0] in by_name and first["subject"] == first["video"].split(
        "/")[1]
    assert summary["skipped"]["unknown_label"]["items"][0]["file"] == str(root / "smirk")
    assert summary["skipped"]["no_label"]["items"][0]["file"] == str(root / "loose_1.png")


def test_split_folders_give_the_split(crops, tmp_path):
    root = tmp_path / "photos"
    _class_folders(root / "train", {k: v[:-1] for k, v in crops.items()})
    _class_folders(root / "val", {k: v[-1:] for k, v in crops.items()})
    summary = _prepare(root, tmp_path / "store", detect=False)
    assert summary["faces"]["val"] == len(crops) and summary["faces"]["test"] == 0


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _csv_tree(crops, root):
    images = root / "images"
    images.mkdir(parents=True)
    rows = []
    for folder, files in crops.items():
        for k, image in enumerate(files[:2]):
            name = f"{folder}_person_{k + 1:04d}.png"
            shutil.copy(image, images / name)
            rows.append([name, SPELLINGS[folder].upper() if k else SPELLINGS[folder]])
    return rows


def test_csv_rows_with_problems_are_named_and_the_rest_kept(crops, tmp_path):
    root = tmp_path / "photos"
    rows = _csv_tree(crops, root)
    good = len(rows)
    rows += [["nowhere_0001.png", "happy"],                 # missing file
             [rows[0][0], "bliss"],                          # unknown label
             [rows[1][0], rows[1][1]],                       # repeated, same label
             [rows[2][0], "fear"], [rows[2][0], "anger"]]    # repeated with other labels
    _write_csv(root / "legend.csv", ["user.id", "image", "emotion"],
               [["annotator", *row] for row in rows])
    summary = _prepare(root, tmp_path / "store", detect=False)      # the only CSV: found
    skipped = summary["skipped"]
    assert skipped["missing_file"]["items"][0]["file"] == str(root / "images" / "nowhere_0001.png")
    assert "legend.csv line" in skipped["missing_file"]["items"][0]["problem"]
    assert skipped["unknown_label"]["items"][0]["file"] == str(root / "legend.csv")
    assert "'bliss'" in skipped["unknown_label"]["items"][0]["problem"]
    assert skipped["duplicate_row"]["count"] == 1 and skipped["conflicting_label"]["count"] == 2
    assert summary["faces"]["all"] == good - 1                        # the conflicted image
    index = FaceStore.open(tmp_path / "store").index
    assert set(index["subject"]) == {f"{folder}_person" for folder in crops}
    assert index["frame"].isin([1, 2]).all()                           # _0001 -> frame 1
    assert all(len(problem["problem"].splitlines()) == 1
               for entry in skipped.values() for problem in entry["items"])


def test_valence_arousal_csv_with_a_subject_column(crops, tmp_path):
    root = tmp_path / "photos"
    rows = _csv_tree(crops, root)
    table = [[f"images/{name}", f"p{k % 3}", round(0.1 * (k % 10) - 0.4, 2), 0.25]
             for k, (name, _) in enumerate(rows)]
    table += [[f"images/{rows[0][0]}", "p9", "abc", 0.1], [f"images/{rows[1][0]}", "p9", 1.5, 0]]
    csv_path = _write_csv(tmp_path / "va.csv", ["Path", "Person", "Valence", "Arousal"], table)
    summary = _prepare(root, tmp_path / "store", csv=csv_path, detect=False)
    assert summary["skipped"]["bad_label"]["count"] == 2
    assert summary["expressions"] == []
    index = FaceStore.open(tmp_path / "store").index
    assert set(index["subject"]) == {"p0", "p1", "p2"}
    assert np.allclose(sorted(index["valence"]), sorted(row[2] for row in table[:len(rows)]))
    assert (index["expression"] == -1).all()


def test_csv_without_usable_columns_or_ambiguous_csvs_are_one_line_errors(crops, tmp_path):
    root = tmp_path / "photos"
    _csv_tree(crops, root)
    _write_csv(root / "a.csv", ["name", "mood"], [["x.png", "happy"]])
    with pytest.raises(InputError, match="a.csv: no image path column"):
        _prepare(root, tmp_path / "store", csv=root / "a.csv")
    _write_csv(root / "b.csv", ["file", "mood"], [["x.png", "happy"]])
    with pytest.raises(InputError, match="b.csv: no label column"):
        _prepare(root, tmp_path / "store", csv=root / "b.csv")
    with pytest.raises(InputError, match="holds 2 CSV files .*--csv"):
        _prepare(root, tmp_path / "store")


def test_faces_are_detected_in_uncropped_photos(synthetic_layouts, tmp_path):
    out, _ = synthetic_layouts
    root = tmp_path / "photos"
    for path in sorted((out / "jaffe").glob("*.tiff")):
        label = path.name.split(".")[1][:2]
        (root / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, root / label / path.name)
    summary = _prepare(root, tmp_path / "store")
    total = summary["frames"]["all"]
    assert summary["faces"]["all"] + summary["skipped"].get("no_face", {}).get("count", 0) == total
    assert summary["faces"]["all"] >= 0.85 * total
    assert set(summary["label_mapping"]) == {"AN", "DI", "FE", "HA", "NE", "SA", "SU"}


def test_cli_prints_which_label_became_which_class(crops, tmp_path, monkeypatch, capsys):
    root = _class_folders(tmp_path / "photos", crops)
    monkeypatch.setattr(sys, "argv", ["affecttrack", "prepare", "folder", "--root", str(root),
                                      "--out", str(tmp_path / "store"), "--no-detect",
                                      "--workers", "2"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out = capsys.readouterr().out
    assert exit_info.value.code in (0, None)
    assert "<- 'Happy'" in out and "face store: train" in out


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data/expressions-in-the-wild")
def test_expressions_in_the_wild_rows_become_people_and_classes(tmp_path):
    with open(SHARED / "legend.csv", newline="") as file:
        rows = list(csv.reader(file))
    header, body = rows[0], rows[1:]
    sample = ([row for row in body if row[1].endswith("_0001.jpg")][:30]
              + [row for row in body if row[2].isupper()][:10])
    csv_path = _write_csv(tmp_path / "sample.csv", header, sample)
    summary = _prepare(SHARED, tmp_path / "store", csv=csv_path)
    index = FaceStore.open(tmp_path / "store").index
    assert len(index) == len({row[1] for row in sample})
    assert {row[2] for row in sample} <= set(summary["label_mapping"])   # every spelling mapped
    person = next(row[1] for row in sample if row[1].endswith("_0001.jpg"))[:-len("_0001.jpg")]
    assert set(index.loc[index["video"] == person, "subject"]) == {person}
    assert summary["faces"]["all"] >= 0.75 * len(index)
