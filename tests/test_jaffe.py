"""JAFFE: labels and subjects from the file names, palette TIFFs read, bad names reported."""

import shutil

from PIL import Image

from affecttrack.data.sources.jaffe import prepare_jaffe
from affecttrack.data.store import FaceStore
from affecttrack.labels import JAFFE_EXPRESSIONS


def _jaffe_copy(synthetic_layouts, tmp_path):
    out, summary = synthetic_layouts
    return shutil.copytree(out / "jaffe", tmp_path / "jaffe"), summary["photo_layouts"]["jaffe"]


def test_every_image_lands_with_its_subject_number_and_expression(synthetic_layouts, tmp_path):
    root, made = _jaffe_copy(synthetic_layouts, tmp_path)
    files = sorted(root.glob("*.tiff"))
    assert {Image.open(path).mode for path in files} == {"L", "P"}      # palette TIFFs among them
    summary = prepare_jaffe(root, tmp_path / "store", progress=False)
    store = FaceStore.open(tmp_path / "store")
    assert store.expression_names == JAFFE_EXPRESSIONS
    index = store.index.set_index(["video", "frame"])
    assert len(index) == made["images"] == len(files)
    codes = {"NE": "Neutral", "AN": "Anger", "DI": "Disgust", "FE": "Fear", "HA": "Happiness",
             "SA": "Sadness", "SU": "Surprise"}
    for path in files:
        subject, code, number = path.stem.split(".")                    # KA.AN1.39
        row = index.loc[(subject, int(number))]
        assert JAFFE_EXPRESSIONS[row["expression"]] == codes[code[:2]]
        assert row["subject"] == subject and row["split"] == "train"
    assert summary["subjects"]["all"] == made["subjects"]
    assert summary["faces"]["all"] >= 0.85 * len(files)


def test_badly_named_and_unknown_code_files_are_reported(synthetic_layouts, tmp_path):
    root, made = _jaffe_copy(synthetic_layouts, tmp_path)
    first = min(root.glob("*.tiff"))
    shutil.copy(first, root / "holiday.tiff")
    shutil.copy(first, root / "KA.XX1.300.tiff")
    (root / "README.txt").write_text("not an image")
    summary = prepare_jaffe(root, tmp_path / "store", progress=False)
    assert summary["skipped"]["bad_file_name"]["items"][0]["file"] == str(root / "holiday.tiff")
    unknown = summary["skipped"]["unknown_label"]["items"]
    assert unknown[0]["file"] == str(root / "KA.XX1.300.tiff") and "'XX'" in unknown[0]["problem"]
    assert summary["frames"]["all"] == made["images"]
