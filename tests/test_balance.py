"""The paper's balancing subsets keep frames with exactly the probabilities it describes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from affecttrack.data.balance import (
    balance_mask,
    keep_probability,
    reference_count,
    va_histogram,
)
from affecttrack.errors import AffectTrackError

# Three occupied cells of the 40 x 40 grid (each 0.05 wide) holding 6, 3 and 1 frames.
CELL_A, CELL_B, CELL_C = (0.52, 0.52), (-0.73, 0.27), (0.97, -0.98)


def _frames(cells_and_counts):
    points = [cell for cell, count in cells_and_counts for _ in range(count)]
    valence, arousal = np.array(points, dtype=np.float64).T
    return valence, arousal


KNOWN = _frames([(CELL_A, 6), (CELL_B, 3), (CELL_C, 1)])


def test_histogram_counts_known_cells_and_puts_one_in_the_last_bin():
    counts = va_histogram(np.array([1.0, -1.0, 0.52]), np.array([1.0, -1.0, 0.52]))
    assert counts.shape == (40, 40)
    assert counts[39, 39] == 1 and counts[0, 0] == 1 and counts[30, 30] == 1


@pytest.mark.parametrize("subset, reference", [
    ("subset1", 6.0),                          # the largest bin
    ("subset2", 10 / 3),                       # mean over the three non-empty bins
    ("subset3", (6.0 + 10 / 3) / 2),
])
def test_keep_probability_is_one_minus_bin_count_over_reference(subset, reference):
    probability = keep_probability(*KNOWN, subset)
    expected = np.clip(1 - np.array([6] * 6 + [3] * 3 + [1]) / reference, 0, 1)
    np.testing.assert_allclose(probability, expected)


def test_frames_with_both_labels_zero_are_dropped_but_single_zeros_are_not():
    valence = np.array([0.0, 0.0, 0.5, 0.5, 0.5])
    arousal = np.array([0.0, 0.5, 0.0, 0.5, 0.5])
    # Without the both-zero frame the cells hold 1, 1 and 2 frames; subset1's N is 2.
    probability = keep_probability(valence, arousal, "subset1")
    np.testing.assert_allclose(probability, [0.0, 0.5, 0.5, 0.0, 0.0])


def test_zero_frames_do_not_crowd_their_bin():
    # Two real frames near zero share the (0, 0) cell with ten all-zero placeholders.
    valence = np.array([0.01, 0.02] + [0.0] * 10 + [0.9])
    arousal = np.array([0.01, 0.02] + [0.0] * 10 + [0.9])
    probability = keep_probability(valence, arousal, "subset3")
    # Bins: (0,0) cell holds 2 frames, the 0.9 cell 1; N = (2 + 1.5) / 2 = 1.75.
    np.testing.assert_allclose(probability[:2], 0.0)
    np.testing.assert_allclose(probability[-1], 1 - 1 / 1.75)
    assert np.all(probability[2:12] == 0)


def test_none_keeps_every_labelled_frame_only():
    valence = np.array([0.0, 0.3, np.nan])
    arousal = np.array([0.0, 0.3, 0.2])
    mask = balance_mask(valence, arousal, "none", np.random.default_rng(0))
    assert mask.tolist() == [True, True, False]


def test_zero_probability_frames_are_never_kept():
    mask = balance_mask(*KNOWN, "subset1", np.random.default_rng(0))
    assert not mask[:6].any()


def test_balance_mask_keeps_frames_at_the_stated_rate():
    valence, arousal = _frames([(CELL_A, 3000), (CELL_B, 1000)])
    mask = balance_mask(valence, arousal, "subset1", np.random.default_rng(1))
    assert not mask[:3000].any()
    assert abs(mask[3000:].mean() - (1 - 1000 / 3000)) < 0.05


def test_unknown_subset_and_out_of_range_labels_are_clear_errors():
    with pytest.raises(AffectTrackError, match="subset4"):
        keep_probability(*KNOWN, "subset4")
    with pytest.raises(AffectTrackError, match=r"outside \[-1, 1\]"):
        keep_probability(np.array([5.0]), np.array([5.0]), "subset1")
    with pytest.raises(AffectTrackError, match="subset"):
        reference_count(np.ones((40, 40)), "all")


labels = arrays(np.float64, st.integers(1, 300),
                elements=st.sampled_from([-1.0, -0.5, 0.0, 0.02, 0.5, 0.51, 1.0]) | st.floats(-1, 1))


@settings(max_examples=150, deadline=None)
@given(st.data(), st.sampled_from(["subset1", "subset2", "subset3"]))
def test_probabilities_are_in_unit_interval_and_subset1_empties_the_fullest_bin(data, subset):
    valence = data.draw(labels)
    arousal = data.draw(arrays(np.float64, valence.size, elements=st.floats(-1, 1)))
    probability = keep_probability(valence, arousal, subset)
    assert np.all((probability >= 0) & (probability <= 1))
    assert np.all(probability[(valence == 0) & (arousal == 0)] == 0)
    if subset == "subset1":
        eligible = ~((valence == 0) & (arousal == 0))
        if eligible.any():
            counts = va_histogram(valence[eligible], arousal[eligible])
            fullest = np.argwhere(counts == counts.max())
            cells = np.stack([np.clip(np.searchsorted(np.linspace(-1, 1, 41), v, "right") - 1, 0, 39)
                              for v in (valence, arousal)], axis=1)
            in_fullest = (cells[:, None, :] == fullest[None]).all(-1).any(-1) & eligible
            assert in_fullest.any() and np.all(probability[in_fullest] == 0)
