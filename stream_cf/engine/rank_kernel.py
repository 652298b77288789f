"""The compiled reads of a ``vote`` list (``_rank_kernel.c``), with the numpy path of
:mod:`~stream_cf.engine.ranking` as its reference and fallback.

The kernel computes the numpy path's sums in the numpy path's order (formula:
:mod:`~stream_cf.engine.ranking`)::

    total_v = Σ_{j∈I_u, v rated j} x_j          w_v = total_v / √n_v        (v ≠ u, total_v > 0)
    s_i     = Σ_{v∈N(u), v rated i} w_v^e · g_v(i)                  score_i = s_i / n_i^d

each sum from 0.0, term by term: total_v over I_u latest first and, within an item, its rater
row's order (np.bincount's order over the concatenated rows); s_i over N(u) best first (within
a neighbour each item once); every product rounded before it is added (built with
-ffp-contract=off). N(u): the K largest w_v, ties by ``user_since``, then by slot (knn.top_n
over the candidates in ascending slot); the list: the n largest scores, ties by the lower item
slot. No probe floor (``gather.ratio_floor`` only skips users that cannot be among the K): the
kernel offers every user with total_v > 0 to a heap of the K best, reading the totals back by a
scan of the user slots (or along the entries, when they are few next to the slots), and divides
only where total_v reaches the heap's worst w (w_v ≤ total_v as n_v ≥ 1: the others cannot
enter). Histories (u's, and the neighbours' under ``latest`` and ``shared``) are each row read
backwards where it is in the order of its events, else the cells of all the rows out of order
sorted together by one radix sort on (row, sequence number), as the numpy path's sort.

What C's libm could round otherwise is computed by numpy and passed in, so the bits are numpy's
(tests/engine/test_rank_kernel.py): x_j (np.power, with the rarity's n_j^b), w^e, g of ``latest``
(a table of 2^(−p/h_n) by position p, numpy's recency over 0, 1, 2, ...: an elementwise ufunc
gives each element the same bits whatever the array), g of ``shared`` (np.exp2 of the costs the
kernel writes, the same additions and minima as :func:`~stream_cf.engine.ranking.nearest_shared`)
and n_i^d (a table by count, numpy's power over 0, 1, 2, ...). Every ``vote`` variant is compiled
(neighbour recency none, latest, shared; any b, e, d, K, include_seen).

The extension is built by ``pip install -e .`` (``[[tool.setuptools.ext-modules]]`` in
pyproject.toml, optional). :data:`KERNEL` is None when it is missing and the caller takes the
numpy path; with ``CI=true`` in the environment the test suite requires it.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np

from stream_cf.engine.extensions import compiled
from stream_cf.engine.state import EngineState
from stream_cf.engine.storage import FloatArray, IntArray

KERNEL: ModuleType | None = compiled("_rank_kernel", "vote_scores")

MODES = {"none": 0, "latest": 1, "shared": 2}


def history(kernel: ModuleType, st: EngineState, u: int) -> IntArray:
    """u's item slots latest first (:func:`~stream_cf.engine.ranking.history`'s)."""
    users = st.ratings.by_user
    items = np.empty(int(users.length[u]), dtype=np.int64)
    size: int = kernel.history(
        u, users.start, users.length, users.pool, st.ratings.cell_item, st.ratings.cell_seq, items
    )
    return items[:size]


def neighbours(
    kernel: ModuleType, st: EngineState, u: int, *, items: IntArray, x: FloatArray, k: int
) -> tuple[IntArray, FloatArray]:
    """N(u) best first and w_uv, from u's items latest first and their weights x."""
    raters = st.ratings.item_users
    slots = np.empty(k, dtype=np.int64)
    w = np.empty(k, dtype=np.float64)
    size: int = kernel.neighbours(
        u, k, items, x, raters.start, raters.length, raters.pool, st.ratings.user_count,
        st.user_since, slots, w,
    )  # fmt: skip
    return slots[:size], w[:size]


def shared_cost(
    kernel: ModuleType,
    st: EngineState,
    *,
    slots: IntArray,
    mine: IntArray,
    half_life: float,
    neighbour_half_life: float,
    skip_mine: bool,
) -> tuple[FloatArray, IntArray, IntArray]:
    """shared's cost per cell of the neighbours' histories (each latest first, in N(u)'s order;
    g = 2^(−cost)), the cells' item slots and the cells per neighbour; with ``skip_mine`` the
    cells of u's own items (``mine``) are left out (not listed: their g is never read)."""
    users = st.ratings.by_user
    size = int(users.length[slots].sum())
    cost = np.empty(size, dtype=np.float64)
    items = np.empty(size, dtype=np.int64)
    counts = np.empty(slots.size, dtype=np.int64)
    written: int = kernel.shared_cost(
        half_life, neighbour_half_life, int(skip_mine), slots, mine, users.start, users.length,
        users.pool, st.ratings.cell_item, st.ratings.cell_seq, cost, items, st.ratings.item_count,
        counts,
    )  # fmt: skip
    if not 0 <= written <= size:
        raise RuntimeError(f"shared_cost wrote {written} of {size} cells")
    return cost[:written], items[:written], counts


class PowerTable:
    """``f(np.arange(size))`` for the sizes asked so far (grown by doubling), per parameter."""

    def __init__(self) -> None:
        self.key = float("nan")
        self.values: FloatArray = np.zeros(0, dtype=np.float64)

    def get(self, key: float, size: int, build: Callable[[FloatArray], FloatArray]) -> FloatArray:
        """The table of ``key`` with at least ``size`` entries (``build`` of 0, 1, 2, ...)."""
        if key != self.key or self.values.size < size:
            grown = max(size, 2 * self.values.size if key == self.key else 0, 64)
            self.values = np.ascontiguousarray(build(np.arange(grown, dtype=np.float64)))
            self.key = key
        return self.values


def scores(
    kernel: ModuleType,
    st: EngineState,
    *,
    n: int,
    mode: str,
    include_seen: bool,
    slots: IntArray,
    we: FloatArray,
    mine: IntArray,
    g: FloatArray,
    damp: FloatArray | None,
    cells: IntArray | None = None,
    counts: IntArray | None = None,
) -> tuple[int, int, int, IntArray, FloatArray]:
    """(candidates, g's length needed or 0, damp's length needed or 0, the n best item slots,
    their scores); the best are valid when both lengths needed are 0. ``g``: none, empty;
    latest, the table by position; shared, per cell, with ``cells`` the cells' item slots and
    ``counts`` the cells per neighbour (:func:`shared_cost`'s)."""
    users = st.ratings.by_user
    best = np.empty(n, dtype=np.int64)
    values = np.empty(n, dtype=np.float64)
    n_cand, need_g, need_damp = kernel.vote_scores(
        n, MODES[mode], int(include_seen), int(damp is not None), slots, we, g,
        damp if damp is not None else g, mine, users.start, users.length, users.pool,
        st.ratings.cell_item, st.ratings.cell_seq, st.ratings.item_count, best, values,
        cells if cells is not None else best, counts if counts is not None else best,
    )  # fmt: skip
    size = min(n, n_cand)
    return n_cand, need_g, need_damp, best[:size], values[:size]
