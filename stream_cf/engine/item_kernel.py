"""The compiled read of the item-based residual (``_item_kernel.c``), with the numpy path of
:mod:`~stream_cf.engine.item_residual` as its reference and fallback.

The kernel computes, for user u and each wanted item i, the same sums as the numpy path in the
same order (see :mod:`~stream_cf.engine.item_residual` for the formula)::

    s_ij = clip(Σ_{v∈C_ij} c_vi·c_vj / sqrt(Σ_{v∈C_ij} c_vi² · Σ_{v∈C_ij} c_vj²), −1, 1)
           · n_ij / (n_ij + β),                                  c_vx = r_vx − r̄_v
    num_i = Σ_{j∈M(u;i)} s_ij·(r_uj − b_uj),   den_i = Σ_{j∈M(u;i)} s_ij

each sum from 0.0, term by term, C_ij in ascending rater slot and M(u;i) in its selection order
(s_ij descending, then u's earlier rating of j), every product rounded before it is added
(built with -ffp-contract=off), so the bits equal the numpy path's
(tests/engine/test_item_kernel.py). The raters of up to 64 wanted items at a time are marked
(by rank over their union) in a dense array over the user slots, each with the wanted columns it
rated, and the rater row of each item j of u is scanned once for them (Σ_{j∈I_u} n_j entries
read in order, whatever the number of columns; the hits of each j read back in rater slot
order, each feeding the sums of every column it rated): one compiled loop where the numpy path
makes ~60 calls and ~20 passes over the entries and hits.

The extension is built by ``pip install -e .`` (``[[tool.setuptools.ext-modules]]`` in
pyproject.toml, optional: a machine without a C compiler installs without it). :data:`KERNEL`
is None when it is missing, and :func:`item_terms` then returns None (the caller sums in
numpy); with ``CI=true`` in the environment the test suite requires it.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_cf.engine.extensions import compiled
from stream_cf.engine.state import EngineState
from stream_cf.engine.storage import FloatArray, IntArray

KERNEL: ModuleType | None = compiled("_item_kernel", "item_terms")


def _state(st: EngineState) -> tuple[npt.NDArray[Any], ...]:
    """The kernel's view of the ratings (read at every call: the arrays grow by replacement)."""
    ratings = st.ratings
    users, values, raters = ratings.by_user, ratings.item_values, ratings.item_users
    return (
        users.start,
        users.length,
        users.pool,
        values.start,
        values.pool,
        raters.start,
        raters.length,
        raters.pool,
        ratings.cell_item,
        ratings.cell_value,
        ratings.user_sum,
        ratings.user_count,
    )


def item_sums(
    st: EngineState,
    u: int,
    i: int,
    mark: IntArray,
    *,
    neighbours: int,
    shrinkage: float,
    base_u: float,
    item_bias: FloatArray,
) -> tuple[float, float, int] | None:
    """(num, den, |M(u;i)|) of one wanted item slot i from the kernel (a predict), or None
    without it. ``mark``: a dense int64 array over the user slots, -1 everywhere (left so);
    ``base_u`` = μ + b_u."""
    kernel = KERNEL
    if kernel is None:
        return None
    wanted = np.array([i], dtype=np.int64)
    sums: tuple[float, float, int] = kernel.item_terms(
        u, neighbours, shrinkage, base_u, wanted, mark, item_bias, *_state(st), None, None, None,
        None, None,
    )  # fmt: skip
    return sums


def item_terms(
    st: EngineState,
    u: int,
    cols: IntArray,
    mark: IntArray,
    *,
    neighbours: int,
    shrinkage: float,
    base_u: float,
    item_bias: FloatArray,
) -> tuple[FloatArray, FloatArray, IntArray, IntArray, IntArray, FloatArray] | None:
    """(num, den, count per column; per selected pair its column, item slot j, and the rows
    s_ij, r_uj, b_uj of a (3, pairs) array) from the kernel, or None without it (``mark``,
    ``base_u``: as in :func:`item_sums`)."""
    kernel = KERNEL
    if kernel is None:
        return None
    cols = np.ascontiguousarray(cols, dtype=np.int64)
    n_cols = cols.size
    cap = n_cols * min(neighbours, int(st.ratings.by_user.length[u]))
    out_cols = np.empty(cap, dtype=np.int64)
    out_items = np.empty(cap, dtype=np.int64)
    out_values = np.empty((3, cap), dtype=np.float64)
    num_den = np.empty((2, n_cols), dtype=np.float64)
    count = np.empty(n_cols, dtype=np.int64)
    total = kernel.item_terms(
        u, neighbours, shrinkage, base_u, cols, mark, item_bias, *_state(st), out_cols, out_items,
        out_values, num_den, count,
    )  # fmt: skip
    return num_den[0], num_den[1], count, out_cols[:total], out_items[:total], out_values[:, :total]
