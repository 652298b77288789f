"""The item-based residual of ``knn_baseline`` (``item_residual`` > 0), computed when read.

For a user u and an item i, over the items j ≠ i that u rated, with e_uj = r_uj − b_uj the
residual of u's own rating of j around the baseline (μ + b_u + b_j,
:mod:`~stream_cf.engine.baseline`) and r̄_v = Σ_v / n_v every rater's running mean, the
similarity of items i and j is Sarwar's adjusted cosine over their common raters C_ij (u
excluded), shrunk by β = ``item_shrinkage``::

    c_vx = r_vx − r̄_v
    s_ij = Σ_{v∈C_ij} c_vi·c_vj / sqrt(Σ_{v∈C_ij} c_vi² · Σ_{v∈C_ij} c_vj²) · n_ij / (n_ij + β)

(n_ij = |C_ij|; 0 when C_ij is empty, a norm is 0, or the numerator is 0 — within 1e-12 of
Σ|c_vi·c_vj|, so a cancellation to an exact 0 stays 0). M(u;i) = the K = ``item_residual`` items
j with the largest s_ij > 0 (ties: the lower item slot, i.e. the earlier first appearance of j
in the stream, a rule no re-rate moves), and the item terms of the estimate::

    Σ_{j∈M(u;i)} s_ij·e_uj    and    Σ_{j∈M(u;i)} s_ij

pooled with the user-based ones (:mod:`~stream_cf.engine.predict`)::

    r̂_ui = clip(b_ui + (Σ_{v∈N(i;u)} w_uv·e_vi + Σ_{j∈M(u;i)} s_ij·e_uj)
                      / (Σ_{v∈N(i;u)} |w_uv| + Σ_{j∈M(u;i)} s_ij + λ))

Nothing is kept: the sums run over the current ratings at every read, so rate, re-rate, unrate
and forget_user are reflected exactly, in any order. One wanted item (a predict) is read from its
side: the rows of i's raters w, in ascending slot order, each entry's item looked up in a dense
position array of u's items (Σ_{w∈R_i} n_w entries scanned, no sort of the hits). Several
(predict_many, the ``rating`` lists) join the raters of u's items (the per-item rater rows,
Σ_{j∈I_u} n_j entries) with the raters of the wanted items. Either way each s_ij is summed over
its common raters in ascending slot order and M(u;i) in its selection order, so one item and
many give the same bits (tests/engine/test_item_residual.py). Work per read: the entries
scanned, and one entry per (common rater, i, j) triple (~3,000 per warm predict on ML-100K at
60,000 ratings).

Where the compiled kernel is built (:mod:`~stream_cf.engine.item_kernel`, ``_item_kernel.c``),
:func:`item_terms` and :func:`item_sums` read through it: the same sums in the same order, in one
compiled scan of the rater rows of u's items for up to 64 wanted items at a time (their raters
marked over the user slots, each with the wanted items it rated), the same bits
(tests/engine/test_item_kernel.py); the numpy functions here stay its reference and its
fallback.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from stream_cf.engine import item_kernel
from stream_cf.engine.state import EngineState
from stream_cf.engine.storage import FloatArray, IntArray, grown, ranges

# A centred cross sum within this fraction of Σ|c_vi·c_vj| is the rounding residue of an exact 0.
_RELATIVE_ZERO = 1e-12
# The most (wanted item, item of u) cells summed in one pass; more wanted items go in chunks
# (each cell's sum is the same, whichever chunk it is in).
_CELLS = 1 << 14


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
    out: FloatArray = ratings.user_sum.take(slots) / ratings.user_count.take(slots)
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
    if cols.size == 1:
        return _one_column(st, u, int(cols[0]), mine, shrinkage)
    ratings = st.ratings
    n_cols, n_mine = cols.size, mine.size
    high = st.users.high
    # (gathers as ndarray.take: several times faster than fancy indexing on these sizes)
    # the wanted items' raters but u, grouped by rater (ascending): (column, centred rating)
    bcol, bv, bval = ratings.items_rows(cols)
    keep = bv != u
    bcol, bv, bval = bcol[keep], bv[keep], bval[keep]
    order = np.argsort(bv, kind="stable")
    bcol, bv = bcol.take(order), bv.take(order)
    bc = bval.take(order) - _means(st, bv)
    blen = np.bincount(bv, minlength=high)
    bstart = np.cumsum(blen) - blen
    # the raters of u's items (per-item rater rows) that rated a wanted item too
    pool = ratings.item_users
    lengths = pool.length.take(mine)
    ends = np.cumsum(lengths)
    first = ends - lengths
    index = ranges(pool.start.take(mine), lengths)
    hit = np.flatnonzero(blen.take(pool.pool.take(index)))
    jpos = np.searchsorted(ends, hit, side="right")
    index = index.take(hit)
    v = pool.pool.take(index).astype(np.int64)
    # their ratings of j: the cell ids sit beside the rater slots in the per-item cell rows
    cells = ratings.by_item.pool.take(
        ratings.by_item.start.take(mine.take(jpos)) + (hit - first.take(jpos))
    )
    order = np.argsort(jpos * high + v)  # (j, rater ascending): the order of every sum
    jpos, v = jpos.take(order), v.take(order)
    cj = ratings.cell_value.take(cells.take(order)) - _means(st, v)
    # one entry per (rater, i, j): the rater's wanted items beside each of its items of u
    count = blen.take(v)
    at = ranges(bstart.take(v), count)
    col = bcol.take(at)
    j = np.repeat(jpos, count)
    x = bc.take(at)
    y = np.repeat(cj, count)
    other = mine.take(j) != cols.take(col)
    if not other.all():
        col, j, x, y = col[other], j[other], x[other], y[other]
    return _finish(col * n_mine + j, n_cols * n_mine, x, y, shrinkage).reshape(n_cols, n_mine)


def _one_column(st: EngineState, u: int, i: int, mine: IntArray, shrinkage: float) -> FloatArray:
    """:func:`similarities` of one wanted item (a predict), scanned from i's side: the rows of
    i's raters w (ascending, u left out), each entry's item looked up in a dense position array
    of u's items (:data:`_POSITIONS`). The entries come rater by rater, so each s_ij sums its
    common raters in ascending slot order, as the join does: the same sums in the same order.
    Entries scanned: Σ_{w∈R_i} n_w; nothing sorted but i's raters."""
    ratings = st.ratings
    raters = ratings.item_users.row(i)
    order = np.argsort(raters)
    w = raters.take(order).astype(np.int64)
    held = ratings.by_item.row(i).take(order)
    keep = w != u
    if not keep.all():
        w, held = w[keep], held[keep]
    means = _means(st, w)
    centred = ratings.cell_value.take(held) - means
    rows = ratings.by_user
    lengths = rows.length.take(w)
    cells = rows.pool.take(ranges(rows.start.take(w), lengths))
    pos = _POSITIONS.mark(st.items.high, mine, i)
    try:
        j = pos.take(ratings.cell_item.take(cells))
    finally:
        pos[mine] = -1
    hit = np.flatnonzero(j >= 0)
    row = np.cumsum(lengths).searchsorted(hit, side="right")
    x = centred.take(row)
    y = ratings.cell_value.take(cells.take(hit)) - means.take(row)
    return _finish(j.take(hit), mine.size, x, y, shrinkage).reshape(1, mine.size)


class _Positions(threading.local):
    """A dense array over the item slots, -1 but at the items being looked up, reused from read
    to read (one per thread): set by :meth:`mark`, cleared by the caller (pos[items] = -1), both
    in O(len(items))."""

    def __init__(self) -> None:
        self.pos: IntArray = np.zeros(0, dtype=np.int64)

    def array(self, high: int) -> IntArray:
        """The array (-1 everywhere), grown to at least ``high`` item slots."""
        pos = self.pos
        if pos.size < high:
            pos = self.pos = np.full(grown(pos.size, high), -1, dtype=np.int64)
        return pos

    def mark(self, high: int, items: IntArray, excluded: int) -> IntArray:
        """pos[items[k]] = k, but pos[excluded] = -1; -1 elsewhere (``high``: the item slots)."""
        pos = self.array(high)
        pos[items] = np.arange(items.size, dtype=np.int64)
        pos[excluded] = -1
        return pos


_POSITIONS = _Positions()
_MARKS = _Positions()  # the same over the user slots: the raters the kernel looks for


def _finish(
    cell: IntArray, size: int, x: FloatArray, y: FloatArray, shrinkage: float
) -> FloatArray:
    """s of the ``size`` cells from the centred pairs (x, y) = (c_vi, c_vj) of each entry's
    ``cell``, each cell's sums in the entries' order (a bincount adds them one by one)::

        s = clip(Σxy / sqrt(Σx²·Σy²), −1, 1) · n / (n + β)

    0 where a norm is 0 or |Σxy| ≤ 1e-12·Σ|xy| (a cancellation to an exact 0)."""
    xy = x * y
    sxy = np.bincount(cell, weights=xy, minlength=size)
    sxx = np.bincount(cell, weights=x * x, minlength=size)
    syy = np.bincount(cell, weights=y * y, minlength=size)
    magnitude = np.bincount(cell, weights=np.abs(xy), minlength=size)
    norm = np.sqrt(sxx * syy)
    s = np.zeros(size, dtype=np.float64)
    np.divide(sxy, norm, out=s, where=(norm > 0) & (np.abs(sxy) > _RELATIVE_ZERO * magnitude))
    np.minimum(np.maximum(s, -1.0, out=s), 1.0, out=s)  # np.clip's values, at less cost
    if shrinkage > 0:
        n = np.bincount(cell, minlength=size)
        s *= n / (n + shrinkage)
    return s


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
    slot; ``user_bias``: u's b_u): from the compiled kernel (:mod:`~stream_cf.engine.item_kernel`,
    the same bits) when it is built, else from :func:`item_terms_numpy`."""
    if item_kernel.KERNEL is None:
        return item_terms_numpy(
            st,
            u,
            cols,
            neighbours=neighbours,
            shrinkage=shrinkage,
            mu=mu,
            user_bias=user_bias,
            item_bias=item_bias,
        )
    return item_terms_compiled(
        st,
        u,
        cols,
        neighbours=neighbours,
        shrinkage=shrinkage,
        mu=mu,
        user_bias=user_bias,
        item_bias=item_bias,
    )


def item_sums(
    st: EngineState,
    u: int,
    i: int,
    *,
    neighbours: int,
    shrinkage: float,
    mu: float,
    user_bias: float,
    item_bias: FloatArray,
) -> tuple[float, float, int]:
    """(Σ_{j∈M(u;i)} s_ij·e_uj, Σ_{j∈M(u;i)} s_ij, |M(u;i)|) of one item slot i (a predict
    without its explanation): :func:`item_terms`' figures, without its arrays."""
    sums = item_kernel.item_sums(
        st,
        u,
        i,
        _MARKS.array(st.users.high),
        neighbours=neighbours,
        shrinkage=shrinkage,
        base_u=mu + user_bias,
        item_bias=item_bias,
    )
    if sums is not None:
        return sums
    terms = item_terms_numpy(
        st,
        u,
        np.array([i], dtype=np.int64),
        neighbours=neighbours,
        shrinkage=shrinkage,
        mu=mu,
        user_bias=user_bias,
        item_bias=item_bias,
    )
    return float(terms.num[0]), float(terms.den[0]), int(terms.count[0])


def item_terms_compiled(
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
    """:func:`item_terms` from the compiled kernel (which must be built)."""
    mark = _MARKS.array(st.users.high)
    out = item_kernel.item_terms(
        st,
        u,
        cols,
        mark,
        neighbours=neighbours,
        shrinkage=shrinkage,
        base_u=mu + user_bias,
        item_bias=item_bias,
    )
    if out is None:
        raise RuntimeError("the item residual's compiled kernel is not built")
    num, den, count, colpos, items, values = out
    return ItemTerms(
        num=num,
        den=den,
        count=count,
        colpos=colpos,
        items=items,
        sims=values[0],
        ratings=values[1],
        baselines=values[2],
    )


def item_terms_numpy(
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
    """:func:`item_terms` in numpy (the reference of the kernel, and its fallback)."""
    # u's items in the row's own order: each s_ij, the selection and its sums do not depend on it
    held = st.ratings.by_user.row(u)
    mine = st.ratings.cell_item.take(held).astype(np.int64)
    r_u = st.ratings.cell_value.take(held)
    s = similarities(st, u, cols, mine, shrinkage)
    if cols.size == 1:  # one column: the same selection with fewer steps
        js = np.flatnonzero(s[0] > 0)
        sims = s[0].take(js)
        order = np.lexsort((mine.take(js), -sims))[:neighbours]
        js, sims = js.take(order), sims.take(order)
        rows = np.zeros(js.size, dtype=np.int64)
    else:
        rows, js = np.nonzero(s > 0)
        sims = s[rows, js]
        order = np.lexsort((mine[js], -sims, rows))
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
