"""Windows never cross a missing face or label; missing frames are interpolated sensibly."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from affecttrack.data.sequences import fill_missing, gap_free_runs, window_starts
from affecttrack.errors import AffectTrackError


@st.composite
def video_frames(draw):
    """Sorted, unique frame numbers (with jumps) and a validity flag per frame."""
    steps = draw(st.lists(st.integers(1, 3), min_size=0, max_size=80))
    frames = np.cumsum([draw(st.integers(1, 5))] + steps).astype(np.int64)
    valid = np.array(draw(st.lists(st.booleans(), min_size=frames.size, max_size=frames.size)))
    return frames, valid


def _window_is_clean(frames, valid, start, span):
    window = slice(start, start + span)
    return bool(valid[window].all()) and bool(np.all(np.diff(frames[window]) == 1))


def test_runs_split_at_jumps_and_invalid_frames():
    frames = np.array([1, 2, 3, 5, 6, 7, 8, 9])
    valid = np.array([True, True, True, True, True, False, True, True])
    assert gap_free_runs(frames, valid) == [(0, 3), (3, 5), (6, 8)]


def test_windows_step_by_stride_and_cover_the_tail():
    starts = window_starts([(0, 25)], length=10, stride=4)
    assert starts.tolist() == [0, 4, 8, 12, 15]


def test_many_to_one_needs_the_frame_after_the_window():
    assert window_starts([(0, 10)], length=10, target="many_to_one").size == 0
    assert window_starts([(0, 11)], length=10, target="many_to_one").tolist() == [0]
    assert window_starts([(0, 10)], length=10, target="many_to_many").tolist() == [0]


def test_unknown_target_is_a_clear_error():
    with pytest.raises(AffectTrackError, match="many_to_one"):
        window_starts([(0, 10)], target="one_to_one")


@settings(max_examples=200, deadline=None)
@given(video_frames(), st.integers(1, 12), st.integers(1, 7),
       st.sampled_from(["many_to_many", "many_to_one"]))
def test_windows_never_span_a_gap_and_cover_every_long_run(video, length, stride, target):
    frames, valid = video
    stride = min(stride, length)  # a stride longer than the window skips frames by design
    runs = gap_free_runs(frames, valid)
    span = length + (target == "many_to_one")
    starts = window_starts(runs, length=length, stride=stride, target=target)
    for start in starts:
        assert _window_is_clean(frames, valid, start, span)
    covered = np.zeros(frames.size, dtype=bool)
    for start in starts:
        covered[start:start + span] = True
    for run_start, run_stop in runs:
        if run_stop - run_start >= span:
            assert covered[run_start:run_stop].all()
    # The runs themselves are exactly the valid frames, split at every jump.
    in_runs = np.zeros(frames.size, dtype=bool)
    for run_start, run_stop in runs:
        assert _window_is_clean(frames, valid, run_start, run_stop - run_start)
        in_runs[run_start:run_stop] = True
    assert np.array_equal(in_runs, valid)


def test_fill_missing_interpolates_and_holds_the_ends():
    filled = fill_missing(np.array([3, 5]), np.array([[0.0, 1.0], [1.0, -1.0]]),
                          np.arange(1, 8))
    np.testing.assert_allclose(filled[:, 0], [0, 0, 0, 0.5, 1, 1, 1])
    np.testing.assert_allclose(filled[:, 1], [1, 1, 1, 0, -1, -1, -1])


def test_fill_missing_without_any_prediction_is_an_error():
    with pytest.raises(AffectTrackError, match="no prediction"):
        fill_missing(np.array([]), np.zeros((0, 2)), np.arange(5))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 60), min_size=1, max_size=20, unique=True),
       st.data())
def test_fill_missing_properties(given_frames, data):
    given_frames = np.array(given_frames)
    values = np.array(data.draw(st.lists(
        st.floats(-1, 1), min_size=given_frames.size, max_size=given_frames.size)))[:, None]
    all_frames = np.arange(-5, 70)
    filled = fill_missing(given_frames, values, all_frames)[:, 0]
    order = np.argsort(given_frames)
    known, known_values = given_frames[order], values[order, 0]
    at_known = filled[np.searchsorted(all_frames, known)]
    np.testing.assert_allclose(at_known, known_values, atol=1e-6)
    assert np.all(filled[all_frames <= known[0]] == np.float32(known_values[0]))
    assert np.all(filled[all_frames >= known[-1]] == np.float32(known_values[-1]))
    for left, right, lv, rv in zip(known[:-1], known[1:], known_values[:-1], known_values[1:]):
        between = filled[(all_frames > left) & (all_frames < right)]
        assert np.all(between >= min(lv, rv) - 1e-6) and np.all(between <= max(lv, rv) + 1e-6)
