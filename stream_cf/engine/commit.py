"""Writing a batch's net cell changes: the ratings, the counters and the pair sums' block update.

A micro-batch is reduced to the net change per (user slot, item slot) before it gets here
(:mod:`stream_cf.engine.batch`, :mod:`stream_cf.engine.fast`). :func:`commit_cells` updates the
pair sums (when the state keeps them) and then writes the new cells. The pair sums' update is
pair by pair (:meth:`~stream_cf.engine.pairs.PairSums.update_scatter`, the touched items' old
raters as lists) when that is the cheaper by :data:`PAIR_NS` and :data:`BLOCK_NS`, else by
blocks: the touched items' old raters and values gathered into a dense (touched items x users)
block for :meth:`~stream_cf.engine.pairs.PairSums.update_block`.
"""

from __future__ import annotations

from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

from stream_cf.engine.state import EngineState
from stream_cf.engine.storage import FloatArray, IntArray

# the block update's temporaries per (changed user, user slot): the rows and columns to add
# (2 x 32 B, and their int32 copies), the products (24 B) and their gathers; and the most one
# block may take
BYTES_PER_CELL = 120
MAX_BLOCK_BYTES = 256 * 2**20
# the choice between the pair-by-pair update (scatter.py) and the block update, by CPU time per
# batch at 2,000 and 4,000 users (benchmarks/scale.py's explicit stream, batches of 1,000, each
# path forced, Σ batch CPU / Σ units, load ~10 on 2 cores; ns): the pair by pair ~PAIR_NS per
# changed pair (listing it, its deltas, its three words added with np.add.at: 136 / 129); the
# block ~BLOCK_NS per (changed user, user slot) (the products, a row and a column mapped onto
# the cells, the item-major blocks: 413 / 344)
PAIR_NS = 130.0
BLOCK_NS = 380.0
# tests force one path ("scatter", "block"); None: the cheaper by the costs above
FORCE_PATH: str | None = None


def commit_cells(
    st: EngineState,
    cu: IntArray,
    ci: IntArray,
    raw: FloatArray,
    seqs: IntArray,
    *,
    cells: IntArray | None = None,
) -> None:
    """Write changed cells (user slot, item slot) -> value (NaN: removed) with their sequence
    numbers, and update the pair sums in one block. Each cell appears once.

    The block's temporaries hold ~120 bytes per (changed user, user slot); past
    :data:`MAX_BLOCK_BYTES` (the block update only) the cells are committed in groups of changed
    users, one after the other (each group reads the state the previous ones wrote: the same
    sums, since they depend only on the final ratings)."""
    if cu.size == 0:
        return
    n_users = st.users.high
    present = ~np.isnan(raw)
    vals = np.where(present, raw, 0.0)
    st.note_values(vals[present])
    pairs = st.pairs
    if pairs is not None:
        _keep_fitting(st, cu)
        scatter = pairs.scatter_ready and _scatter_wins(st, cu, ci)
        changed = _distinct(cu, n_users)
        groups = min(changed.size, -(-changed.size * n_users * BYTES_PER_CELL // MAX_BLOCK_BYTES))
        if groups > 1 and not scatter:  # (the pair-by-pair update has no block temporaries)
            for part in np.array_split(changed, groups):
                picked = np.isin(cu, part)
                commit_cells(
                    st,
                    cu[picked],
                    ci[picked],
                    raw[picked],
                    seqs[picked],
                    cells=None if cells is None else cells[picked],
                )
            return
        _update_pairs(st, cu, ci, vals, present, scatter=scatter)
    old = st.ratings.write(cu, ci, raw, seqs, cells=cells)
    was = ~np.isnan(old)
    delta = present.astype(np.int64) - was.astype(np.int64)
    st.n_ratings += int(delta.sum())
    st.total += float(vals.sum()) - float(old[was].sum())
    if st.n_ratings == 0:
        st.total = 0.0


def commit_one(
    st: EngineState, u: int, i: int, value: float | None, seq: int, *, cell: int | None = None
) -> None:
    """:func:`commit_cells` of one cell (the single-event path: no block temporaries; ``cell``:
    the cell id of (u, i) if known, -1 for none)."""
    ratings = st.ratings
    if value is not None:
        st.note_value(value)
    if cell is None:
        cell = ratings.cell_of(u, i)
    pairs = st.pairs
    if pairs is not None:
        if pairs.integer and not pairs.fits(int(ratings.user_count[u]) + 1, st.value_bound):
            pairs.to_float()
        # the item's raters in pool order: each pair's cell gets one addition, in any order
        raters = ratings.item_users.row(i).astype(np.int64)  # cell_user of by_item's entries
        values = ratings.cell_value.take(ratings.by_item.row(i))
        old_here = None
        if cell >= 0:  # u is among them
            others = raters != u
            raters, values = raters[others], values[others]
            old_here = float(ratings.cell_value[cell])
        pairs.update_cell(u, raters, values, old_here, value)
    old = ratings.write_one(u, i, value, seq, cell=cell)
    st.n_ratings += (value is not None) - (old is not None)
    st.total += (0.0 if value is None else value) - (0.0 if old is None else old)
    if st.n_ratings == 0:
        st.total = 0.0


def _keep_fitting(st: EngineState, cu: IntArray) -> None:
    """Turn int32 pair sums into float64 ones if the batch could pass their bound."""
    pairs = st.pairs
    assert pairs is not None
    # the most items a user can have after the batch: int32 sums must still hold every sum
    most = int(st.ratings.user_count[: st.users.high].max(initial=0)) + int(
        np.bincount(cu, minlength=1).max(initial=0)
    )
    if pairs.integer and not pairs.fits(most, st.value_bound):
        pairs.to_float()


def _update_pairs(
    st: EngineState,
    cu: IntArray,
    ci: IntArray,
    vals: FloatArray,
    present: npt.NDArray[np.bool_],
    *,
    scatter: bool,
) -> None:
    """The pair sums' update for the cells (before the ratings are written): pair by pair
    where ``scatter``, else by blocks."""
    pairs = st.pairs
    assert pairs is not None
    n_users = st.users.high
    ratings = st.ratings
    touched, tl = _distinct(ci, st.items.high, inverse=True)
    # the touched items' old raters and values (before the batch's writes)
    where, raters, values = ratings.items_rows(touched)
    if scatter:
        pairs.update_scatter(
            cell_users=cu,
            cell_cols=tl,
            new_values=vals,
            new_present=present,
            where=where,
            raters=raters,
            old_values=values,
        )
        return
    # every product and partial sum is a multiple of 0.25 below 2**22: exact in float32
    exact32 = 16.0 * st.value_bound**2 * touched.size <= 2.0**24
    # those as dense rows (touched x users)
    mask_t = np.zeros((touched.size, n_users), dtype=np.bool_)
    mask_t[where, raters] = True
    values_t: npt.NDArray[Any]
    if exact32 and st.twice_ok:  # 2·value as int8: 8x smaller, exact
        values_t = np.zeros(mask_t.shape, dtype=np.int8)
        values_t[where, raters] = np.rint(2.0 * values)
        scale = 2.0
    else:
        values_t = np.zeros(mask_t.shape, dtype=np.float32 if exact32 else np.float64)
        values_t[where, raters] = values
        scale = 1.0
    raters_after = ratings.item_count[touched] + np.bincount(
        tl, weights=present, minlength=touched.size
    )
    pairs.update_block(
        n_users=n_users,
        cell_users=cu,
        cell_cols=tl,
        mask_t=mask_t,
        values_t=values_t,
        new_values=vals,
        new_present=present,
        scale=scale,
        exact32=exact32,
        raters=raters_after.astype(np.int64),
    )


def _scatter_wins(st: EngineState, cu: IntArray, ci: IntArray) -> bool:
    """Whether the pair-by-pair update is the cheaper (see :data:`PAIR_NS`): changed pairs
    ≈ Σ over changed cells of the item's raters before the batch, against changed users × user
    slots for the block update."""
    if FORCE_PATH is not None:
        return FORCE_PATH == "scatter"
    n_users = st.users.high
    changed = int(np.count_nonzero(np.bincount(cu)))
    pairs = float(st.ratings.item_count[ci].sum())
    return PAIR_NS * pairs < BLOCK_NS * changed * n_users


@overload
def _distinct(slots: IntArray, high: int) -> IntArray: ...
@overload
def _distinct(
    slots: IntArray, high: int, *, inverse: Literal[True]
) -> tuple[IntArray, IntArray]: ...
def _distinct(
    slots: IntArray, high: int, *, inverse: bool = False
) -> IntArray | tuple[IntArray, IntArray]:
    """The distinct slots (below ``high``) in increasing order, and with ``inverse`` each
    slot's index among them: np.unique by a flag array (the slots are dense and bounded)."""
    seen = np.zeros(high, dtype=np.bool_)
    seen[slots] = True
    distinct = np.flatnonzero(seen)
    if not inverse:
        return distinct
    rank = np.cumsum(seen) - 1
    return distinct, rank[slots]
