"""The Hungarian algorithm against brute force over every assignment, and the clustering
accuracy built on it."""
import itertools

import numpy as np
import pytest

from numvae.diagnostics.matching import clustering_accuracy, linear_sum_assignment


def brute_force(cost):
    """The least total cost over every assignment of min(n, m) distinct pairs."""
    n, m = cost.shape
    if n <= m:
        return min(cost[range(n), list(cols)].sum() for cols in itertools.permutations(range(m), n))
    return min(cost[list(rows), range(m)].sum() for rows in itertools.permutations(range(n), m))


def check(cost):
    rows, cols = linear_sum_assignment(cost)
    assert len(rows) == len(cols) == min(cost.shape)
    assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
    assert list(rows) == sorted(rows)
    assert cost[rows, cols].sum() == pytest.approx(brute_force(cost), abs=1e-9)


@pytest.mark.parametrize("n", range(1, 7))
def test_square_random_costs_match_brute_force(n):
    rng = np.random.default_rng(n)
    for _ in range(20):
        check(rng.normal(size=(n, n)))


@pytest.mark.parametrize("n", range(1, 7))
def test_ties_match_brute_force(n):
    """Small integer costs: many optimal assignments, many equal reduced costs."""
    rng = np.random.default_rng(10 + n)
    for _ in range(20):
        check(rng.integers(0, 3, size=(n, n)).astype(float))
    check(np.zeros((n, n)))


@pytest.mark.parametrize("shape", [(2, 5), (5, 2), (3, 4), (4, 3), (1, 6), (6, 1)])
def test_rectangular_costs_match_brute_force(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(20):
        check(rng.normal(size=shape))
        check(rng.integers(0, 2, size=shape).astype(float))


def test_bad_costs_are_refused():
    with pytest.raises(ValueError, match="2-D"):
        linear_sum_assignment(np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        linear_sum_assignment(np.array([[0.0, np.inf], [1.0, 2.0]]))


def test_clustering_accuracy_is_invariant_to_renaming_the_clusters():
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    renamed = np.array([5, 5, 3, 3, 0, 0, 1])        # one example of class 2 in its own cluster
    accuracy, mapping = clustering_accuracy(renamed, labels)
    assert accuracy == pytest.approx(6 / 7)
    assert mapping[5] == 0 and mapping[3] == 1 and mapping[0] == 2
    assert clustering_accuracy(labels, labels)[0] == 1.0
