"""Subject-independent protocols: no subject on both sides, folds partition the frames."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from affecttrack.errors import AffectTrackError
from affecttrack.training.splits import subject_holdout, subject_kfold


def make_frames(per_subject: list[list[int]]) -> pd.DataFrame:
    """One row per frame: subject s<i> with the expression labels listed for it."""
    records = [{"subject": f"s{i:02d}", "expression": label}
               for i, labels in enumerate(per_subject) for label in labels]
    return pd.DataFrame.from_records(records).rename_axis("row").reset_index()


subjects_strategy = st.lists(st.lists(st.integers(0, 4), min_size=1, max_size=6),
                             min_size=2, max_size=16)


@settings(max_examples=60, deadline=None)
@given(per_subject=subjects_strategy, fraction=st.floats(0.05, 0.95), seed=st.integers(0, 99))
def test_holdout_never_puts_a_subject_on_both_sides(per_subject, fraction, seed) -> None:
    frames = make_frames(per_subject)
    split = subject_holdout(frames, fraction, seed)
    assert not set(split.train["subject"]) & set(split.test["subject"])
    assert sorted([*split.train["row"], *split.test["row"]]) == list(frames["row"])
    assert len(split.train) and len(split.test)
    again = subject_holdout(frames, fraction, seed)
    assert again.test_subjects == split.test_subjects      # seeded


@settings(max_examples=60, deadline=None)
@given(per_subject=subjects_strategy, folds=st.integers(2, 6), seed=st.integers(0, 99))
def test_kfold_test_folds_partition_the_frames_by_subject(per_subject, folds, seed) -> None:
    frames = make_frames(per_subject)
    if folds > len(per_subject):
        with pytest.raises(AffectTrackError, match="at least"):
            subject_kfold(frames, folds, seed)
        return
    splits = subject_kfold(frames, folds, seed)
    assert len(splits) == folds
    tested = sorted(row for split in splits for row in split.test["row"])
    assert tested == list(frames["row"])                    # every frame tested exactly once
    for split in splits:
        assert len(split.test)
        assert not set(split.train["subject"]) & set(split.test["subject"])
        assert len(split.train) + len(split.test) == len(frames)
    fold_subjects = [set(split.test["subject"]) for split in splits]
    assert sum(map(len, fold_subjects)) == len(set().union(*fold_subjects))


def test_holdout_keeps_a_class_only_one_subject_shows_in_training() -> None:
    frames = make_frames([[0, 1], [0, 1], [0, 1], [0, 1, 3]])    # only s03 shows class 3
    for seed in range(20):
        split = subject_holdout(frames, fraction=0.5, seed=seed)
        assert "s03" not in split.test_subjects
        assert set(split.train["expression"]) == {0, 1, 3}


def test_kfold_spreads_each_class_evenly_over_folds() -> None:
    frames = make_frames([[0] * 4] * 10 + [[1] * 4] * 10)       # 10 subjects per class
    for split in subject_kfold(frames, folds=5, seed=3):
        assert split.test["expression"].value_counts().to_dict() == {0: 8, 1: 8}


def test_protocols_refuse_too_few_subjects_or_bad_settings() -> None:
    frames = make_frames([[0, 1, 2]])
    with pytest.raises(AffectTrackError, match="at least 2 subjects"):
        subject_holdout(frames)
    with pytest.raises(AffectTrackError, match="between 0 and 1"):
        subject_holdout(make_frames([[0], [1]]), fraction=1.5)
    with pytest.raises(AffectTrackError, match="at least 2 folds"):
        subject_kfold(make_frames([[0], [1]]), folds=1)
