"""The compiled choice of N(i;u) for a few wanted items (``select_columns`` in
``_select_kernel.c``), with :func:`stream_cf.engine.knn.select`'s numpy path as its reference and
fallback.

For user u's neighbourhood N (usable neighbours by w_uv descending, slot ascending; ``group`` the
run of equal w) and each wanted item slot i, in column order: the raters of i found in N, by
their position p in N; the first k, except that a run of equal w straddling the k-th place gives
its places left to its raters with the earlier rating of i (cell_seq, then p). Out come the
chosen (p, column, item slot, rating) grouped by column in p order: what the numpy path returns,
the same values (copies, nothing computed), so the sums over them are the same bits
(tests/engine/test_select_kernel.py). It reads the wanted items' rows (Σ_i n_i cells), where the
numpy path gathers, sorts (np.lexsort) and masks them in ~40 numpy calls: the predicted ratings
of a published list (``predict_many`` of its ten items) are computed through it.

:data:`KERNEL` is None when the extension is not built (``CI=true``: the tests require it).
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from stream_cf.engine.extensions import compiled
from stream_cf.engine.neighbours import Neighbourhood
from stream_cf.engine.state import EngineState
from stream_cf.engine.storage import FloatArray, IntArray

KERNEL: ModuleType | None = compiled("_select_kernel", "select_columns")
# the kernel's scratch over the user slots: -1 everywhere between calls (grown as users come)
_POSITION: list[IntArray] = [np.full(0, -1, dtype=np.int64)]


def select_columns(
    st: EngineState, nb: Neighbourhood, cols: IntArray, k: int
) -> tuple[IntArray, IntArray, IntArray, FloatArray] | None:
    """(positions in N, columns, item slots, ratings) of the chosen pairs for the distinct item
    slots ``cols`` (see the module docstring), or None without the kernel."""
    kernel = KERNEL
    if kernel is None:
        return None
    ratings = st.ratings
    cells = ratings.by_item
    high = st.users.high
    if _POSITION[0].size < high:
        _POSITION[0] = np.full(max(high, 2 * _POSITION[0].size), -1, dtype=np.int64)
    cols = np.ascontiguousarray(cols, dtype=np.int64)
    cap = min(int(cells.length[cols].sum()), cols.size * k)
    rows = np.empty(cap, dtype=np.int64)
    colpos = np.empty(cap, dtype=np.int64)
    items = np.empty(cap, dtype=np.int64)
    values = np.empty(cap, dtype=np.float64)
    written: int = kernel.select_columns(
        k, cols, np.ascontiguousarray(nb.slots, dtype=np.int64),
        np.ascontiguousarray(nb.group, dtype=np.int64), _POSITION[0], cells.start, cells.length,
        cells.pool, ratings.cell_user, ratings.cell_seq, ratings.cell_item, ratings.cell_value,
        rows, colpos, items, values,
    )  # fmt: skip
    return rows[:written], colpos[:written], items[:written], values[:written]
