"""Neighbourhood selection and the kNN estimators, vectorized over many items at once.

For a user u with similarity row w (one value per user slot) the usable neighbours are the users
with w > min_similarity (min_similarity=0.0: w > 0, as Surprise's ``KNNWithMeans``) or, with
min_similarity=None, every w ≠ 0. For an item i, N(i;u) is the k usable raters of i with the
largest w; equal similarities are ordered by the earlier rating of i (its arrival sequence).

Estimators over N(i;u):

- explicit (``KNNWithMeans``): r̂_ui = r̄_u + Σ_v w_uv·(r_vi − r̄_v) / Σ_v |w_uv|
- implicit: ŝ_ui = Σ_v w_uv·r_vi / Σ_v |w_uv|   (r_vi the accumulated weight)

:func:`select` finds N(i;u) for many columns without a per-item loop: neighbours are sorted by w
once; a column with at most k usable raters takes them all; for the others the k-th rater's row
is the cut, and when the cut falls inside a run of equal similarities the run's raters of that
column are ranked by sequence (earliest first). The sums are accumulated with ``np.bincount`` in
neighbour order, so predicting one item and scoring all items give bit-identical results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream_cf.engine.storage import BoolArray, FloatArray, IntArray


@dataclass(frozen=True)
class Neighbourhood:
    """The usable neighbours of one user, sorted by similarity (descending, stable by slot)."""

    slots: IntArray  # user slots, best first
    weights: FloatArray  # their similarities w_uv
    group: IntArray  # run id of equal similarities, per position


def neighbourhood(w: FloatArray, usable: BoolArray) -> Neighbourhood:
    """Sort the usable neighbours by descending similarity (stable, so ties keep slot order)."""
    slots = np.flatnonzero(usable)
    order = np.argsort(-w[slots], kind="stable")
    slots = slots[order]
    weights = w[slots]
    group = np.zeros(slots.size, dtype=np.int64)
    if slots.size > 1:
        np.cumsum(weights[1:] != weights[:-1], out=group[1:])
    return Neighbourhood(slots=slots, weights=weights, group=group)


def select(
    nb: Neighbourhood, mask: BoolArray, seq: IntArray, cols: IntArray, k: int
) -> tuple[IntArray, IntArray]:
    """N(i;u) for every column in ``cols``: the selected (neighbour position, column position)
    pairs, ordered by column position's rows ascending within each column.

    ``mask``/``seq`` are the full grid arrays; positions index ``nb.slots`` and ``cols``.
    """
    empty = np.zeros(0, dtype=np.int64)
    if nb.slots.size == 0 or cols.size == 0 or k <= 0:
        return empty, empty
    sub = mask[nb.slots][:, cols]  # neighbours x columns, best neighbour first
    rows, colpos = np.nonzero(sub)
    total = np.count_nonzero(sub, axis=0)
    heavy = np.flatnonzero(total > k)
    if heavy.size == 0:
        return rows.astype(np.int64), colpos.astype(np.int64)

    # rows of the raters of each heavy column, column by column (rows ascending)
    h_col, h_row = np.nonzero(np.ascontiguousarray(sub[:, heavy].T))
    starts = np.zeros(heavy.size, dtype=np.int64)
    np.cumsum(total[heavy][:-1], out=starts[1:])
    cut = np.full(cols.size, nb.slots.size, dtype=np.int64)  # first row not selected
    kth = h_row[starts + k - 1]
    nxt = h_row[starts + k]
    straddle = nb.group[kth] == nb.group[nxt]
    cut[heavy] = kth + 1
    keep = rows < cut[colpos]
    rows = rows[keep]
    colpos = colpos[keep]
    if not np.any(straddle):
        return rows.astype(np.int64), colpos.astype(np.int64)

    # The k-th and (k+1)-th raters have equal similarity: inside that run, take the earliest.
    tied = heavy[straddle]
    run = nb.group[kth[straddle]]
    first_of_run = np.searchsorted(nb.group, run, side="left")
    cut[tied] = first_of_run
    keep = rows < cut[colpos]
    rows = rows[keep]
    colpos = colpos[keep]
    run_of_col = np.full(cols.size, -1, dtype=np.int64)
    run_of_col[tied] = run
    h_cols = heavy[h_col]
    in_run = run_of_col[h_cols] == nb.group[h_row]
    r_rows = h_row[in_run]
    r_cols = h_cols[in_run]
    r_seq = seq[nb.slots[r_rows], cols[r_cols]]
    order = np.lexsort((r_seq, r_cols))
    r_rows = r_rows[order]
    r_cols = r_cols[order]
    # rank inside each column's run; need = k − raters before the run
    before = np.zeros(cols.size, dtype=np.int64)
    before_counts = np.bincount(colpos, minlength=cols.size)
    before[tied] = before_counts[tied]
    run_start = np.searchsorted(r_cols, r_cols, side="left")
    rank = np.arange(r_cols.size) - run_start
    chosen = rank < (k - before[r_cols])
    rows = np.concatenate((rows, r_rows[chosen]))
    colpos = np.concatenate((colpos, r_cols[chosen]))
    # the row-major order of the untied path: rows ascending within every column
    order = np.lexsort((colpos, rows))
    return rows[order].astype(np.int64), colpos[order].astype(np.int64)


@dataclass(frozen=True)
class Scores:
    """Per column: Σ w·dev, Σ |w| and the number of neighbours used."""

    num: FloatArray
    den: FloatArray
    count: IntArray


def score(
    nb: Neighbourhood,
    rows: IntArray,
    colpos: IntArray,
    *,
    values: FloatArray,
    cols: IntArray,
    means: FloatArray | None,
) -> Scores:
    """Accumulate num = Σ w_uv·(r_vi − r̄_v) (or Σ w_uv·r_vi when ``means`` is None) and
    den = Σ |w_uv| over the selected pairs, in neighbour order."""
    size = cols.size
    slots = nb.slots[rows]
    w = nb.weights[rows]
    r = values[slots, cols[colpos]]
    dev = r if means is None else r - means[slots]
    num: FloatArray = np.bincount(colpos, weights=w * dev, minlength=size).astype(np.float64)
    den: FloatArray = np.bincount(colpos, weights=np.abs(w), minlength=size).astype(np.float64)
    count = np.bincount(colpos, minlength=size).astype(np.int64)
    return Scores(num=num, den=den, count=count)


def top_n(scores: FloatArray, order_key: IntArray, n: int) -> IntArray:
    """Positions of the n largest scores, best first, ties by ``order_key`` ascending."""
    if n <= 0 or scores.size == 0:
        return np.zeros(0, dtype=np.int64)
    pos = np.arange(scores.size)
    if scores.size > 4 * n:
        threshold = np.partition(scores, scores.size - n)[scores.size - n]
        pos = np.flatnonzero(scores >= threshold)
    order = np.lexsort((order_key[pos], -scores[pos]))
    return pos[order[:n]].astype(np.int64)
