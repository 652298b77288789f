"""Sums of gathered values per row, added left to right (the b_u sums of ``knn_baseline``).

For rows r = 0..R−1 whose entries are ``indices[indptr[r]:indptr[r+1]]`` (the CSR layout) and a
vector x::

    out[r] = (((0.0 + x[j_0]) + x[j_1]) + ...) + x[j_last]      (float64, in the row's order)

the additions np.bincount makes for ``np.bincount(rows, weights=x[indices])``, so the result is
the same bits as that formula (:func:`row_sums_bincount`, the reference). The fast path is scipy's
compiled CSR matrix-vector product with unit weights (``csr_matvec`` of scipy.sparse's
sparsetools: per row, sum = 0; sum += 1.0·x[j] for each entry in order; 1.0·x is exact, fused or
not): one pass, the sum held in a register, where the gather and np.bincount make three passes
and a store per entry (about 5x the time at the ~7,000 entries one prediction's neighbours have).
``csr_matvec`` is not scipy's public API: it is looked up at the first sum, checked on values
where any other order of the additions gives other bits (:func:`_adds_in_order`), and np.bincount
is used whenever it is missing or fails the check.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from stream_cf.engine.storage import FloatArray, Int32Array, IntArray, ranges

_ONES: list[FloatArray] = [np.ones(1 << 12)]  # unit weights, grown as needed (read only)
# the largest pool :func:`segment_sums` reads in place (its unit weights: 8 bytes per entry)
POOL_LIMIT = 1 << 24


def row_sums_bincount(indptr: IntArray, indices: Int32Array, x: FloatArray) -> FloatArray:
    """The reference: a gather of x at ``indices`` summed per row by np.bincount."""
    rows = indptr.size - 1
    lengths = np.diff(indptr)
    where = np.repeat(np.arange(rows, dtype=np.int64), lengths)
    sums = np.bincount(where, weights=x.take(indices), minlength=rows)
    out: FloatArray = sums.astype(np.float64, copy=False)
    return out


def _unit_weights(size: int) -> FloatArray:
    if _ONES[0].size < size:
        _ONES[0] = np.ones(max(size, 2 * _ONES[0].size))
    return _ONES[0][:size]


def _matvec() -> Callable[..., Any] | None:
    """scipy's ``csr_matvec(n_row, n_col, Ap, Aj, Ax, Xx, Yx)`` if it is there."""
    try:
        tools = importlib.import_module("scipy.sparse._sparsetools")
    except ImportError:
        return None
    found = getattr(tools, "csr_matvec", None)
    return found if callable(found) else None


def _with_matvec(
    matvec: Callable[..., Any], indptr: IntArray, indices: Int32Array, x: FloatArray
) -> FloatArray:
    rows = indptr.size - 1
    out = np.zeros(rows, dtype=np.float64)
    if rows == 0:
        return out
    if indices.size < 2**31 - 1:  # one index type for Ap and Aj (no converted copies)
        ap = indptr.astype(np.int32)
        aj = indices.astype(np.int32, copy=False)
    else:
        ap = indptr.astype(np.int64, copy=False)
        aj = indices.astype(np.int64)
    matvec(rows, x.size, ap, aj, _unit_weights(indices.size), x, out)
    return out


def _adds_in_order(matvec: Callable[..., Any]) -> bool:
    """Whether ``matvec`` gives the bits of :func:`row_sums_bincount` on rows where the order
    of the additions shows (large and small values that cancel, in several row lengths), both
    as plain CSR rows and as segments of a pool read in place (:func:`_in_place`)."""
    rng = np.random.default_rng(20261130)
    x = rng.standard_normal(512) * 10.0 ** rng.integers(-8, 9, 512)
    x[:4] = (1e16, 1.0, -1e16, 3.0)  # 1 is lost in order, kept by other orders
    lengths = np.array([0, 1, 2, 3, 4, 7, 8, 9, 16, 17, 31, 64, 129, 256, 511, 1000])
    indptr = np.concatenate(([0], np.cumsum(lengths)))
    indices = rng.integers(0, x.size, int(indptr[-1])).astype(np.int32)
    indices[:4] = (0, 1, 2, 3)
    reference = row_sums_bincount(indptr, indices, x)
    # the same rows as segments of a pool, in another order and with gaps between them
    gaps = rng.integers(0, 5, lengths.size)
    placed = rng.permutation(lengths.size)
    starts = np.zeros(lengths.size, dtype=np.int64)
    starts[placed] = np.cumsum(gaps[placed] + lengths[placed]) - lengths[placed]
    pool = rng.integers(0, x.size, int(starts.max() + lengths.max())).astype(np.int32)
    pool[ranges(starts, lengths)] = indices
    try:
        fast = _with_matvec(matvec, indptr, indices, x)
        segments = _in_place(matvec, starts, lengths, pool, x)
    except (TypeError, ValueError):
        return False
    return fast.tobytes() == reference.tobytes() == segments.tobytes()


def fast_path() -> bool:
    """Whether :func:`row_sums` runs scipy's compiled loop (else np.bincount)."""
    return PRODUCT.get() is not None


def row_sums(indptr: IntArray, indices: Int32Array, x: FloatArray) -> FloatArray:
    """out[r] = Σ x[j] over row r's entries j, added left to right from 0.0 (see the module
    docstring). ``indptr``: R + 1 offsets from 0; ``indices``: entries < x.size."""
    matvec = PRODUCT.get()
    if matvec is None:
        return row_sums_bincount(indptr, indices, x)
    return _with_matvec(matvec, indptr, indices, x)


def segment_sums(
    starts: IntArray, lengths: IntArray, pool: Int32Array, x: FloatArray
) -> FloatArray:
    """:func:`row_sums` of rows that are segments of one pool: row k's entries are
    pool[starts[k] : starts[k] + lengths[k]] (each < x.size).

    With the compiled product and a pool of at most :data:`POOL_LIMIT` entries, the pool is
    read where it is (:func:`_in_place`); else the segments are gathered into one array first."""
    matvec = PRODUCT.get()
    if matvec is None or pool.size > POOL_LIMIT or starts.size == 0:
        offsets = np.zeros(starts.size + 1, dtype=np.int64)
        lengths.cumsum(out=offsets[1:])
        return row_sums(offsets, pool[ranges(starts, lengths)], x)
    return _in_place(matvec, starts, lengths, pool, x)


def _in_place(
    matvec: Callable[..., Any], starts: IntArray, lengths: IntArray, pool: Int32Array, x: FloatArray
) -> FloatArray:
    """The segments taken by descending start and given to the product as the rows (s_0, e_0),
    (e_0, s_1), (s_1, e_1), ... of one CSR index array (the pool itself): every in-between row
    (e_k, s_{k+1}) has s_{k+1} ≤ s_k ≤ e_k, an end before its start, for which scipy's loop
    does nothing (its sum is not used either way; :func:`_adds_in_order` checks the others)."""
    rows = starts.size
    order = starts.argsort()[::-1]
    bounds = np.empty(2 * rows, dtype=np.int32)
    first = starts[order]
    bounds[0::2] = first
    np.add(first, lengths[order], out=bounds[1::2])
    out = np.zeros(2 * rows - 1, dtype=np.float64)
    matvec(2 * rows - 1, x.size, bounds, pool, _unit_weights(pool.size), x, out)
    sums = np.empty(rows, dtype=np.float64)
    sums[order] = out[0::2]
    return sums


class _Product:
    """scipy's product, looked up and checked at the first sum (importing scipy.sparse takes
    ~15 MB and ~0.3 s: paid only by a process that sums b_u)."""

    def __init__(self) -> None:
        self.looked_up = False
        self.matvec: Callable[..., Any] | None = None

    def get(self) -> Callable[..., Any] | None:
        if not self.looked_up:
            found = _matvec()
            self.set(found if found is not None and _adds_in_order(found) else None)
        return self.matvec

    def set(self, matvec: Callable[..., Any] | None) -> None:
        """Use ``matvec`` from now on (None: np.bincount)."""
        self.matvec = matvec
        self.looked_up = True


PRODUCT = _Product()
