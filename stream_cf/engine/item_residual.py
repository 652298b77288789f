"""The item-based residual of ``knn_baseline`` (``item_residual`` > 0), computed when read.

For a user u and an item i, over the items j ≠ i that u rated, with e_uj = r_uj − b_uj the
residual of u's own rating of j around the baseline (μ + b_u + b_j, :mod:`~stream_cf.engine.baseline`)
and r̄_v = Σ_v / n_v every rater's running mean, the similarity of items i and j is Sarwar's
adjusted cosine over their common raters C_ij (u excluded), shrunk by β = ``item_shrinkage``::

    c_vx = r_vx − r̄_v
    s_ij = Σ_{v∈C_ij} c_vi·c_vj / sqrt(Σ_{v∈C_ij} c_vi² · Σ_{v∈C_ij} c_vj²) · n_ij / (n_ij + β)

(n_ij = |C_ij|; 0 when C_ij is empty, a norm is 0, or the numerator is 0 — within 1e-12 of
Σ|c_vi·c_vj|, so a cancellation to an exact 0 stays 0). M(u;i) = the K = ``item_residual`` items
j with the largest s_ij > 0 (ties: u's earlier rating of j), and the item terms of the estimate::

    Σ_{j∈M(u;i)} s_ij·e_uj    and    Σ_{j∈M(u;i)} s_ij

pooled with the user-based ones (:mod:`~stream_cf.engine.predict`)::

    r̂_ui = clip(b_ui + (Σ_{v∈N(i;u)} w_uv·e_vi + Σ_{j∈M(u;i)} s_ij·e_uj)
                      / (Σ_{v∈N(i;u)} |w_uv| + Σ_{j∈M(u;i)} s_ij + λ))

Nothing is kept: the sums run over the current ratings at every read (the raters of u's items,
from the per-item rater rows, joined with the raters of the wanted items), so rate, re-rate,
unrate and forget_user are reflected exactly, in any order. Each s_ij is summed over its common
raters in ascending slot order and M(u;i) in its selection order, whichever items are read
together, so one item (predict) and many (predict_many, the ``rating`` lists) give the same bits.
Cost per read: Σ_{j∈I_u} n_j entries scanned, and one entry per (common rater, i, j) triple.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream_cf.engine.state import EngineState
from stream_cf.engine.storage import FloatArray, IntArray, ranges

# A centred cross sum within this fraction of Σ|c_vi·c_vj| is the rounding residue of an exact 0.
_RELATIVE_ZERO = 1e-12
# The most (wanted item, item of u) cells summed in one pass; more wanted items go in chunks
# (each cell's sum is the same, whichever chunk it is in).
_CELLS = 1 << 17


@dataclass(frozen=True)
class ItemTerms:
    """The item terms of each wanted column and the selected (column, item j) pairs, grouped by
    column in the order summed (s_ij descending, then u's earlier rating of j)."""

    num: FloatArray  # Σ_{j∈M(u;i)} s_ij·e_uj per column
    den: FloatArray  # Σ_{j∈M(u;i)} s_ij per column
    count: IntArray  # |M(u;i)| per column
    colpos: IntArray  # per selected pair: its column
    items: IntArray  # per selected pair: the item slot j
    sims: FloatArray  # s_ij
    ratings: FloatArray  # r_uj
    baselines: FloatArray  # b_uj = μ + b_u + b_j


def _means(st: EngineState, slots: IntArray) -> FloatArray:
    """r̄_v of the given (rating) user slots."""
    ratings = st.ratings
    out: FloatArray = ratings.user_sum[slots] / ratings.user_count[slots]
    return out


def similarities(
    st: EngineState, u: int, cols: IntArray, mine: IntArray, shrinkage: float
) -> FloatArray:
    """s_ij as a (len(cols), len(mine)) array: the wanted item slots ``cols`` (distinct) against
    u's item slots ``mine``; 0 where j = i."""
    if cols.size * mine.size > _CELLS and cols.size > 1:
        step = max(1, _CELLS // max(mine.size, 1))
        parts = [
            similarities(st, u, cols[lo : lo + step], mine, shrinkage)
            for lo in range(0, cols.size, step)
        ]
        return np.concatenate(parts, axis=0)
    ratings = st.ratings
    n_cols, n_mine = cols.size, mine.size
    high = st.users.high
    # the wanted items' raters but u, grouped by rater (ascending): (column, centred rating)
    bcol, bv, bval = ratings.items_rows(cols)
    keep = bv != u
    bcol, bv, bval = bcol[keep], bv[keep], bval[keep]
    order = np.argsort(bv, kind="stable")
    bcol, bv = bcol[order], bv[order]
    bc = bval[order] - _means(st, bv)
    blen = np.bincount(bv, minlength=high)
    bstart = np.cumsum(blen) - blen
    # the raters of u's items (per-item rater rows) that rated a wanted item too
    pool = ratings.item_users
    lengths = pool.length[mine]
    first = np.cumsum(lengths) - lengths
    index = ranges(pool.start[mine], lengths)
    hit = np.flatnonzero(blen[pool.pool[index]])
    jpos = np.searchsorted(first + lengths, hit, side="right")
    v = pool.pool[index[hit]].astype(np.int64)
    # their ratings of j: the cell ids sit beside the rater slots in the per-item cell rows
    cells = ratings.by_item.pool[ratings.by_item.start[mine[jpos]] + (hit - first[jpos])]
    order = np.argsort(jpos * high + v)  # (j, rater ascending): the order of every sum
    jpos, v = jpos[order], v[order]
    cj = ratings.cell_value[cells[order]] - _means(st, v)
    # one entry per (rater, i, j): the rater's wanted items beside each of its items of u
    count = blen[v]
    at = ranges(bstart[v], count)
    col = bcol[at]
    j = np.repeat(jpos, count)
    x = bc[at]
    y = np.repeat(cj, count)
    other = mine[j] != cols[col]
    col, j, x, y = col[other], j[other], x[other], y[other]
    cell = col * n_mine + j
    size = n_cols * n_mine

    def total(weights: FloatArray | None) -> FloatArray:
        out: FloatArray = np.bincount(cell, weights=weights, minlength=size).astype(np.float64)
        return out

    xy = x * y
    n, sxy, sxx, syy = total(None), total(xy), total(x * x), total(y * y)
    magnitude = total(np.abs(xy))
    norm = np.sqrt(sxx * syy)
    s = np.zeros(size, dtype=np.float64)
    np.divide(sxy, norm, out=s, where=(norm > 0) & (np.abs(sxy) > _RELATIVE_ZERO * magnitude))
    s = np.clip(s, -1.0, 1.0)
    if shrinkage > 0:
        s = s * (n / (n + shrinkage))
    return s.reshape(n_cols, n_mine)


def item_terms(
    st: EngineState,
    u: int,
    cols: IntArray,
    *,
    neighbours: int,
    shrinkage: float,
    mu: float,
    user_bias: float,
    item_bias: FloatArray,
) -> ItemTerms:
    """The item terms of u for the distinct item slots ``cols`` (``item_bias``: b_j by item
    slot; ``user_bias``: u's b_u)."""
    mine, r_u, seq_u = st.ratings.user_row(u)
    s = similarities(st, u, cols, mine, shrinkage)
    rows, js = np.nonzero(s > 0)
    sims = s[rows, js]
    order = np.lexsort((seq_u[js], -sims, rows))
    rows, js, sims = rows[order], js[order], sims[order]
    per_col = np.bincount(rows, minlength=cols.size)
    starts = np.cumsum(per_col) - per_col
    chosen = np.arange(rows.size) - starts[rows] < neighbours
    rows, js, sims = rows[chosen], js[chosen], sims[chosen]
    b_uj = mu + user_bias + item_bias[mine[js]]
    e = r_u[js] - b_uj
    num = np.bincount(rows, weights=sims * e, minlength=cols.size).astype(np.float64)
    den = np.bincount(rows, weights=sims, minlength=cols.size).astype(np.float64)
    return ItemTerms(
        num=num,
        den=den,
        count=np.bincount(rows, minlength=cols.size).astype(np.int64),
        colpos=rows.astype(np.int64),
        items=mine[js],
        sims=sims,
        ratings=r_u[js],
        baselines=b_uj,
    )
