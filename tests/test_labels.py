"""numvae.model.labels: a conditional model's labels, checked once (shape, integers, range)
and turned into one-hot rows (eq. CD1). The conditional model itself: test_conditional.py."""
import numpy as np
import pytest

from numvae.model.labels import check_labels, one_hot


def test_one_hot_rows_have_a_single_one_at_the_label():
    rows = one_hot(np.array([2, 0, 2]), 3, np.float32)
    np.testing.assert_array_equal(rows, [[0, 0, 1], [1, 0, 0], [0, 0, 1]])
    assert rows.dtype == np.float32


def test_labels_become_int64_and_whole_floats_are_labels():
    assert check_labels([1, 0], 2, 2).dtype == np.int64
    np.testing.assert_array_equal(check_labels(np.array([3.0, 1.0]), 4, 2), [3, 1])


@pytest.mark.parametrize("y, message", [
    (None, r"needs the labels y: \(batch,\) integers in \[0, 4\)"),
    (np.array([1.5, 2.0]), r"one integer label per example, shape \(2,\); got shape \(2,\) of float64"),
    (np.array([[1, 2]]), r"shape \(2,\); got shape \(1, 2\)"),
    (np.array([1, 4]), r"holds the label 4; expected integers in \[0, 4\)"),
    (np.array([-1, 0]), "holds the label -1"),
])
def test_bad_labels_are_refused_in_one_line(y, message):
    with pytest.raises(ValueError, match=message):
        check_labels(y, 4, 2)
