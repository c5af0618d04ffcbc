"""Reading Aff-Wild2 trees: labels land on the right frames, bad files are reported by name."""

import shutil

import numpy as np
import pytest
from conftest import TinyVideo

from affecttrack.data.sources.affwild2 import read_va_file, scan_affwild2
from affecttrack.errors import InputError


def _video(scan, name):
    return next(video for video in scan.videos if video.name == name)


def _reasons(scan):
    return [problem.reason for problem in scan.problems]


def test_scan_lists_videos_splits_and_subjects(affwild2_tree):
    scan = scan_affwild2(affwild2_tree)
    assert [v.name for v in scan.videos] == ["test_d", "train_a", "train_c", "val_b_left",
                                             "val_b_right"]
    assert {v.name: v.split for v in scan.videos} == {
        "test_d": "test", "train_a": "train", "train_c": "train", "val_b_left": "val",
        "val_b_right": "val"}
    assert _video(scan, "val_b_left").subject != _video(scan, "val_b_right").subject
    assert scan.problems == [] and scan.frame_files == 12 + 8 + 6 + 6 + 4


def test_line_i_labels_frame_i_and_minus_five_means_unannotated(affwild2_tree):
    table = _video(scan_affwild2(affwild2_tree), "train_a").frame_table().set_index("frame")
    assert table.loc[1, "valence"] == pytest.approx(-0.4)
    assert table.loc[2, "arousal"] == pytest.approx(0.4)
    assert np.isnan(table.loc[3, "valence"]) and np.isnan(table.loc[8, "arousal"])
    assert table.loc[2, "expression"] == 1 and table.loc[3, "expression"] == -1


def test_longer_annotation_gives_labelled_frames_without_face(affwild2_tree):
    table = _video(scan_affwild2(affwild2_tree), "val_b_left").frame_table().set_index("frame")
    assert table.index.tolist() == list(range(1, 11))
    assert table.loc[[4, 5, 9, 10], "face"].tolist() == [-1] * 4
    assert table.loc[9, "valence"] == pytest.approx(-0.2)
    assert table.loc[6, "face"] == 3  # fourth face image (frames 1, 2, 3, 6, ...)


def test_shorter_annotation_leaves_later_frames_unlabelled(affwild2_tree):
    table = _video(scan_affwild2(affwild2_tree), "train_c").frame_table().set_index("frame")
    assert table.loc[5, "valence"] == pytest.approx(0.25)
    assert table.loc[6:8, "valence"].isna().all()
    assert (table.loc[:, "expression"] == -1).all()


def test_later_release_folder_names_and_the_other_class(tmp_path, make_affwild2_tree):
    root = make_affwild2_tree(
        tmp_path / "aw", {"v": TinyVideo([1, 2, 3], "val", va=[(0.1, 0.2)] * 3, expr=[7, 0, -1])},
        va_folder="VA_Estimation_Challenge", expr_folder="EXPR_Recognition_Challenge",
        expr_header="Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other")
    scan = scan_affwild2(root)
    assert scan.problems == []
    assert _video(scan, "v").expression.tolist() == [7, 0, -1]
    assert _video(scan, "v").va.shape == (3, 2)


def test_frame_names_with_other_padding_are_accepted(affwild2_tree):
    folder = affwild2_tree / "cropped_aligned" / "test_d"
    (folder / "00004.jpg").rename(folder / "4.jpg")
    shutil.copy(folder / "4.jpg", folder / "000012.jpg")
    shutil.copy(folder / "4.jpg", folder / "thumb.jpg")
    scan = scan_affwild2(affwild2_tree)
    assert _video(scan, "test_d").frames.tolist() == [1, 2, 3, 4, 12]
    [problem] = scan.problems
    assert problem.reason == "bad_frame_name" and problem.path == folder / "thumb.jpg"


def test_missing_annotation_folder_is_a_clear_error(affwild2_tree):
    shutil.rmtree(affwild2_tree / "annotations")
    with pytest.raises(InputError, match=r"annotations: folder not found.*VA_Set"):
        scan_affwild2(affwild2_tree)


def test_missing_frames_folder_and_missing_tasks_are_clear_errors(affwild2_tree):
    shutil.rmtree(affwild2_tree / "annotations" / "VA_Set")
    shutil.rmtree(affwild2_tree / "annotations" / "EXPR_Set")
    with pytest.raises(InputError, match="no annotation folder found; expected one of VA_Set"):
        scan_affwild2(affwild2_tree)
    shutil.rmtree(affwild2_tree / "cropped_aligned")
    with pytest.raises(InputError, match="cropped_aligned: folder not found"):
        scan_affwild2(affwild2_tree)


def test_split_less_layout_is_a_clear_error(affwild2_tree):
    va = affwild2_tree / "annotations" / "VA_Set"
    for path in list(va.rglob("*.txt")):
        path.rename(va / path.name)
    for folder in ("Train_Set", "Validation_Set"):
        (va / folder).rmdir()
    with pytest.raises(InputError, match=r"VA_Set: expected Train_Set and Validation_Set.*found 3"):
        scan_affwild2(affwild2_tree)


def test_two_releases_mixed_is_a_clear_error(affwild2_tree):
    (affwild2_tree / "annotations" / "VA_Estimation_Challenge" / "Train_Set").mkdir(parents=True)
    with pytest.raises(InputError, match="both VA_Set/ and VA_Estimation_Challenge/"):
        scan_affwild2(affwild2_tree)


def test_wrong_header_skips_that_file_only(affwild2_tree):
    path = affwild2_tree / "annotations" / "VA_Set" / "Train_Set" / "train_a.txt"
    path.write_text(path.read_text().replace("valence,arousal", "arousal,valence"))
    scan = scan_affwild2(affwild2_tree)
    [problem] = scan.problems
    assert problem.reason == "bad_header" and problem.path == path
    assert "'arousal,valence'" in str(problem) and str(path) in str(problem)
    video = _video(scan, "train_a")
    assert video.va.shape == (0, 2) and video.expression.size == 12 and video.split == "train"


def test_non_numeric_line_is_unannotated_and_reported_with_its_line(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("valence,arousal\n0.1,0.2\nabc,0.3\n0.5\n-5,-5\n0.4,0.9\n\n")
    values, [problem] = read_va_file(path)
    assert problem.reason == "bad_lines" and "lines 3, 4" in problem.detail
    np.testing.assert_allclose(values, [[0.1, 0.2], [np.nan] * 2, [np.nan] * 2, [np.nan] * 2,
                                        [0.4, 0.9]])


def test_bad_expression_values_are_reported(affwild2_tree):
    path = affwild2_tree / "annotations" / "EXPR_Set" / "Validation_Set" / "val_b_right.txt"
    path.write_text(path.read_text().replace("\n4\n", "\n9\n"))
    scan = scan_affwild2(affwild2_tree)
    [problem] = scan.problems
    assert problem.path == path and "(file lines 7)" in problem.detail
    assert _video(scan, "val_b_right").expression.tolist() == [6, 6, 5, 5, -1, -1]


def test_empty_video_folder_is_reported_and_skipped(affwild2_tree):
    for image in (affwild2_tree / "cropped_aligned" / "train_c").iterdir():
        image.unlink()
    scan = scan_affwild2(affwild2_tree)
    assert "train_c" not in [video.name for video in scan.videos]
    [problem] = scan.problems
    assert problem.reason == "empty_video"
    assert problem.path == affwild2_tree / "cropped_aligned" / "train_c"


def test_annotated_video_without_images_is_reported(affwild2_tree):
    shutil.rmtree(affwild2_tree / "cropped_aligned" / "train_c")
    scan = scan_affwild2(affwild2_tree)
    assert _reasons(scan) == ["no_frames_folder"]
    assert "train_c" in str(scan.problems[0])


def test_video_in_train_and_validation_goes_to_validation_with_a_warning(affwild2_tree):
    annotations = affwild2_tree / "annotations" / "VA_Set"
    shutil.copy(annotations / "Train_Set" / "train_c.txt",
                annotations / "Validation_Set" / "train_c.txt")
    scan = scan_affwild2(affwild2_tree)
    assert _video(scan, "train_c").split == "val"
    assert _reasons(scan) == ["split_conflict"]


def test_split_conflict_across_tasks_keeps_both_tasks_labels(affwild2_tree):
    expr = affwild2_tree / "annotations" / "EXPR_Set" / "Validation_Set" / "train_a.txt"
    shutil.move(affwild2_tree / "annotations" / "EXPR_Set" / "Train_Set" / "train_a.txt", expr)
    scan = scan_affwild2(affwild2_tree)
    video = _video(scan, "train_a")
    assert video.split == "val" and _reasons(scan) == ["split_conflict"]
    assert video.va.shape == (12, 2) and video.expression.size == 12


def _write_au(root, task_folder, split_folder, video, lines):
    path = root / "annotations" / task_folder / split_folder / f"{video}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_action_units_are_read_per_frame_with_unknowns_and_bad_lines(affwild2_tree):
    _write_au(affwild2_tree, "AU_Set", "Train_Set", "train_a",
              ["AU1,AU2,AU4,AU6,AU12,AU15,AU20,AU25", "1,0,0,0,1,0,0,1",
               "-1,-1,-1,-1,-1,-1,-1,-1", "1,0,2,0,0,0,0,0", "0,1"])
    scan = scan_affwild2(affwild2_tree)
    video = _video(scan, "train_a")
    assert scan.action_units == ("AU1", "AU2", "AU4", "AU6", "AU12", "AU15", "AU20", "AU25")
    assert video.au.shape == (4, 8) and video.au[0].tolist() == [1, 0, 0, 0, 1, 0, 0, 1]
    assert (video.au[1:] == -1).all()               # unknown, a value 2, a short line
    [problem] = [p for p in scan.problems if p.reason == "bad_lines"]
    assert "2 malformed line(s) (file lines 4, 5)" in problem.detail
    table = video.frame_table().set_index("frame")
    assert table.loc[1, "AU12"] == 1 and table.loc[5, "AU12"] == -1   # past the file: unknown
    assert "AU1" not in _video(scan, "train_c").frame_table().columns   # no AU file


def test_later_releases_twelve_units_and_mixed_sets_are_merged_by_name(affwild2_tree):
    twelve = "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"
    _write_au(affwild2_tree, "AU_Set", "Train_Set", "train_a", [twelve, ",".join(["1"] * 12)])
    _write_au(affwild2_tree, "AU_Set", "Validation_Set", "val_b_right", ["AU12,AU1", "1,0"])
    scan = scan_affwild2(affwild2_tree)
    assert scan.action_units == tuple(twelve.split(","))
    right = _video(scan, "val_b_right").frame_table().set_index("frame")
    assert right.loc[1, "AU12"] == 1 and right.loc[1, "AU1"] == 0
    assert "AU26" not in right.columns          # the store fills a unit a video lacks with -1


def test_bad_action_unit_header_skips_that_file(affwild2_tree):
    path = _write_au(affwild2_tree, "AU_Detection_Challenge", "Train_Set", "train_a",
                     ["Neutral,AU2", "0,1"])
    scan = scan_affwild2(affwild2_tree)
    [problem] = [p for p in scan.problems if p.reason == "bad_header"]
    assert problem.path == path and "action-unit names" in problem.detail
    assert scan.action_units == () and _video(scan, "train_a").au.size == 0
