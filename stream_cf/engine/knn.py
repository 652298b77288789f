"""N(i;u) for many items at once, from the neighbours' own ratings (no users × items array).

For a user u with neighbourhood N (the usable neighbours sorted by similarity, best first; see
:mod:`stream_cf.engine.neighbours`) and an item i, N(i;u) is the k raters of i that come first in
N; when a run of equal similarities straddles the k-th rater, the run's raters with the earlier
rating of i (sequence number) are taken. :func:`select` finds it for every wanted item in one
pass over the neighbours' ratings: gather them (Σ_{v∈N} n_v pairs), sort by (item, neighbour
position), keep the first k of each item and settle the straddling runs by sequence. The
selected pairs come out grouped by item with the neighbours in N's order, the order every sum
over them is taken in (np.bincount adds in input order), so one item (predict) and every item
(recommend) give identical values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from stream_cf.engine import select_kernel
from stream_cf.engine.neighbours import Neighbourhood
from stream_cf.engine.state import EngineState
from stream_cf.engine.storage import FloatArray, IntArray


@dataclass(frozen=True)
class Picked:
    """The selected (neighbour, item) pairs, grouped by column, neighbours in N's order."""

    rows: IntArray  # position in N of the neighbour
    colpos: IntArray  # column (index into the wanted items, or the item slot itself)
    items: IntArray  # item slot
    values: FloatArray  # the neighbour's rating of the item
    n_cols: int

    def count(self) -> IntArray:
        """Neighbours selected per column."""
        out: IntArray = np.bincount(self.colpos, minlength=self.n_cols).astype(np.int64)
        return out


def select(
    st: EngineState,
    nb: Neighbourhood,
    cols: IntArray | None,
    k: int,
    source: Literal["auto", "users", "items"] = "auto",
) -> Picked:
    """N(i;u) for the distinct item slots ``cols`` (None: every item slot, the column is the
    slot).

    The (neighbour, item) pairs come from the neighbours' rows or, when that is cheaper (a few
    wanted items), from the wanted items' rows (``source`` forces one): the same pairs either
    way. Wanted items read from their rows go through the compiled kernel where it is built
    (:mod:`~stream_cf.engine.select_kernel`: the same pairs in the same order)."""
    ratings = st.ratings
    if cols is None:
        n_cols = st.items.high
        where, held = ratings.by_user.rows(nb.slots)
        cells = held.astype(np.int64)
        colpos = ratings.cell_item[cells].astype(np.int64)
    else:
        n_cols = int(cols.size)
        by_items = int(ratings.item_count[cols].sum())
        cheaper = by_items < int(ratings.user_count[nb.slots].sum())
        if source == "items" or (source == "auto" and cheaper):
            compiled = select_kernel.select_columns(st, nb, cols, k)
            if compiled is not None:
                rows, colpos, items, values = compiled
                return Picked(rows, colpos, items, values, n_cols=n_cols)
            colpos, held = ratings.by_item.rows(cols)
            cells = held.astype(np.int64)
            position = np.full(st.users.high, -1, dtype=np.int64)
            position[nb.slots] = np.arange(nb.slots.size)
            where = position[ratings.cell_user[cells]]
            keep = where >= 0
        else:
            where, held = ratings.by_user.rows(nb.slots)
            cells = held.astype(np.int64)
            position = np.full(st.items.high, -1, dtype=np.int64)
            position[cols] = np.arange(cols.size)
            colpos = position[ratings.cell_item[cells]]
            keep = colpos >= 0
        where, cells, colpos = where[keep], cells[keep], colpos[keep]
    items = ratings.cell_item[cells].astype(np.int64)
    order = np.lexsort((where, colpos))
    where, cells, items, colpos = where[order], cells[order], items[order], colpos[order]
    counts = np.bincount(colpos, minlength=n_cols)
    starts = np.cumsum(counts) - counts
    rank = np.arange(colpos.size, dtype=np.int64) - starts[colpos]
    chosen = rank < k
    heavy = np.flatnonzero(counts > k)
    if heavy.size:
        kth = nb.group[where[starts[heavy] + k - 1]]
        nxt = nb.group[where[starts[heavy] + k]]
        tied = heavy[kth == nxt]
        if tied.size:
            run = np.full(n_cols, -1, dtype=np.int64)
            run[tied] = kth[kth == nxt]
            in_tied = run[colpos] >= 0
            group = nb.group[where]
            before = in_tied & (group < run[colpos])
            in_run = np.flatnonzero(in_tied & (group == run[colpos]))
            chosen[in_tied] = before[in_tied]
            need = k - np.bincount(colpos[before], minlength=n_cols)
            seq = ratings.cell_seq[cells[in_run]]
            run_cols = colpos[in_run]
            by_seq = np.lexsort((seq, run_cols))
            sorted_cols = run_cols[by_seq]
            place = np.empty(in_run.size, dtype=np.int64)
            place[by_seq] = np.arange(in_run.size) - np.searchsorted(sorted_cols, sorted_cols)
            chosen[in_run] = place < need[run_cols]
    return Picked(
        rows=where[chosen],
        colpos=colpos[chosen],
        items=items[chosen],
        values=ratings.cell_value[cells[chosen]],
        n_cols=n_cols,
    )


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


def rating_order(
    values: FloatArray, raw: FloatArray, count: IntArray, cand: IntArray, n: int
) -> IntArray:
    """Positions of the n best, best first: by the (clipped) prediction, ties at the clip by the
    unclipped estimate, then by the number of neighbours, then by first appearance (slot)."""
    if n <= 0 or values.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((cand, -count, -raw, -values))
    return order[:n].astype(np.int64)
