"""Writing a batch's net cell changes: the grid and the pair sums in one block update.

A micro-batch is reduced to the net change per (user slot, item slot) before it gets here
(:mod:`stream_cf.engine.batch`, :mod:`stream_cf.engine.fast`); :func:`commit_cells` reads the
touched items' old raters and values from the grid's item-major copies, hands them to
:meth:`~stream_cf.engine.pairs.PairSums.update_block` and then writes the new cells.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np
import numpy.typing as npt

from stream_cf.engine.storage import FloatArray, IntArray

if TYPE_CHECKING:
    from stream_cf.engine.model import UserKNN

# the block update's temporaries per (changed user, user slot): the rows and columns to add
# (2 x 32 B), the products (24 B) and their gathers; and the most one block may take
BYTES_PER_CELL = 100
MAX_BLOCK_BYTES = 256 * 2**20


def commit_cells(
    model: UserKNN,
    cu: IntArray,
    ci: IntArray,
    raw: FloatArray,
    seqs: IntArray,
) -> None:
    """Write changed cells (user slot, item slot) -> value (NaN: removed) with their sequence
    numbers, and update the pair sums in one block. Each cell appears once.

    The block's temporaries hold ~100 bytes per (changed user, user slot); past
    :data:`MAX_BLOCK_BYTES` the cells are committed in groups of changed users, one after the
    other (each group reads the state the previous ones wrote: the same sums, since they depend
    only on the final grid)."""
    st = model.state
    n_users = st.users.high
    changed = _distinct(cu, n_users)
    groups = min(changed.size, -(-changed.size * n_users * BYTES_PER_CELL // MAX_BLOCK_BYTES))
    if groups > 1:
        for part in np.array_split(changed, groups):
            picked = np.isin(cu, part)
            commit_cells(model, cu[picked], ci[picked], raw[picked], seqs[picked])
        return
    grid = st.grid
    present = ~np.isnan(raw)
    vals = np.where(present, raw, 0.0)
    st.changed_rows.update(changed.tolist())
    touched, tl = _distinct(ci, st.items.high, inverse=True)
    st.note_values(vals[present])
    # every product and partial sum is a multiple of 0.25 below 2**22: exact in float32
    exact32 = 16.0 * st.value_bound**2 * touched.size <= 2.0**24
    # the touched items' rows of the item-major mask and values (one contiguous read each; a
    # column gather of the user-major grid costs ~10x more)
    mask_t = grid.mask_t[touched, :n_users]
    values_t: npt.NDArray[Any]
    if exact32 and grid.twice_t is not None:  # the int8 2·value copy (of the old state)
        values_t = grid.twice_t[touched, :n_users]
        scale = 2.0
    else:
        # values are 0 where the mask is off: gather only the ~6% present cells
        at = np.flatnonzero(mask_t)
        t, r = np.divmod(at, n_users)
        values_t = np.zeros(mask_t.shape, dtype=np.float32 if exact32 else np.float64)
        values_t.ravel()[at] = grid.values.ravel().take(r * grid.values.shape[1] + touched[t])
        scale = 1.0
    was = mask_t[tl, cu]
    old_values = np.where(was, values_t[tl, cu].astype(np.float64) / scale, 0.0)
    old_total = float(old_values[was].sum())
    raters = st.item_count[touched] + np.bincount(tl, weights=present, minlength=touched.size)
    st.pairs.update_block(
        n_users=n_users,
        cell_users=cu,
        cell_cols=tl,
        mask_t=mask_t,
        values_t=values_t,
        new_values=vals,
        new_present=present,
        scale=scale,
        exact32=exact32,
        raters=raters.astype(np.int64),
    )
    grid.write(cu, ci, raw, seqs, twice=st.twice_ok)
    delta = present.astype(np.int64) - was.astype(np.int64)
    np.add.at(st.item_count, ci, delta)
    np.add.at(st.item_sum, ci, vals - old_values)
    st.item_sum[ci[st.item_count[ci] == 0]] = 0.0  # exactly 0 once an item has no rating
    st.n_ratings += int(delta.sum())
    st.total += float(vals.sum()) - old_total
    if st.n_ratings == 0:
        st.total = 0.0


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
