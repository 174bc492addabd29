"""The best one-to-one matching of clusters to classes, by the Hungarian algorithm, written by
hand (Kuhn 1955, Munkres 1957; here in the shortest-augmenting-path form with potentials,
O(n^2 m) for an n x m cost matrix).

Used to score a clustering without labels: the mixture prior's most responsible component
for each image against its digit (``clustering_accuracy``). The test compares
``linear_sum_assignment`` with brute force over every permutation of small matrices.
"""
import numpy as np


def linear_sum_assignment(cost):
    """The assignment of rows to distinct columns with the least total cost.

    cost: (n, m) finite numbers. Every row gets a column when n <= m, every column a row
    when n > m. Returns (rows, cols), two int arrays of length min(n, m), rows increasing,
    such that cost[rows, cols].sum() is minimal (the same convention as SciPy's function
    of that name, which numvae does not need).

    The algorithm keeps potentials u (rows) and v (columns) with u_i + v_j <= cost_ij, an
    edge being "tight" when equality holds. Rows are added one at a time; each finds a
    shortest augmenting path over the reduced costs cost_ij - u_i - v_j (a Dijkstra-like
    sweep over the columns), the potentials move so that the path becomes tight, and the
    matching flips along it. At the end every matched edge is tight and the potentials
    prove optimality (linear programming duality).
    """
    cost = np.asarray(cost, np.float64)
    if cost.ndim != 2:
        raise ValueError(f"cost must be a 2-D matrix; got shape {cost.shape}")
    if not np.isfinite(cost).all():
        raise ValueError("cost must hold finite numbers only")
    if cost.shape[0] > cost.shape[1]:                     # more rows: match the columns
        cols, rows = linear_sum_assignment(cost.T)
        order = np.argsort(rows)
        return rows[order], cols[order]
    n, m = cost.shape
    # 1-based arrays with a virtual column 0, as in the textbook presentation
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    row_of = np.zeros(m + 1, dtype=int)                   # row_of[j]: row matched to column j
    for i in range(1, n + 1):
        row_of[0] = i
        j0 = 0                                            # the path ends at column j0
        min_reduced = np.full(m + 1, np.inf)              # best reduced cost to each column
        previous = np.zeros(m + 1, dtype=int)             # the path's previous column
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = row_of[j0]
            free = ~used[1:]
            reduced = cost[i0 - 1] - u[i0] - v[1:]        # reduced costs from row i0
            better = free & (reduced < min_reduced[1:])
            min_reduced[1:][better] = reduced[better]
            previous[1:][better] = j0
            candidates = np.where(free, min_reduced[1:], np.inf)
            j1 = int(np.argmin(candidates)) + 1
            delta = candidates[j1 - 1]
            # move the potentials: the visited rows up, the visited columns down
            u[row_of[used]] += delta
            v[used] -= delta
            min_reduced[1:][free] -= delta
            j0 = j1
            if row_of[j0] == 0:                           # a free column: augment
                break
        while j0:                                         # flip the matching along the path
            j1 = previous[j0]
            row_of[j0] = row_of[j1]
            j0 = j1
    cols = np.flatnonzero(row_of[1:]) + 1
    rows = row_of[cols] - 1
    order = np.argsort(rows)
    return rows[order], cols[order] - 1


def clustering_accuracy(clusters, labels):
    """The fraction of examples whose cluster, matched one-to-one to a class by
    ``linear_sum_assignment`` on the contingency table, is their class.

    clusters, labels: (n,) non-negative ints. Returns (accuracy, {cluster: class}); a
    cluster left without a class (more clusters than classes) counts as wrong.
    """
    clusters, labels = np.asarray(clusters), np.asarray(labels)
    if clusters.shape != labels.shape or clusters.ndim != 1 or len(clusters) == 0:
        raise ValueError(f"clusters and labels must be two non-empty 1-D arrays of the same "
                         f"length; got shapes {clusters.shape} and {labels.shape}")
    counts = np.zeros((clusters.max() + 1, labels.max() + 1))
    np.add.at(counts, (clusters, labels), 1)              # counts[k, c]: cluster k, class c
    rows, cols = linear_sum_assignment(-counts)           # the most examples on the diagonal
    return float(counts[rows, cols].sum() / len(labels)), dict(zip(rows.tolist(), cols.tolist()))
