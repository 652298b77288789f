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
``csr_matvec`` is not scipy's public API: it is looked up once, checked on values where any
other order of the additions gives other bits (:func:`_adds_in_order`), and np.bincount is used
whenever it is missing or fails the check.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from stream_cf.engine.storage import FloatArray, Int32Array, IntArray

_ONES: FloatArray = np.ones(1 << 12)  # unit weights, grown as needed (read-only use)


def row_sums_bincount(indptr: IntArray, indices: Int32Array, x: FloatArray) -> FloatArray:
    """The reference: a gather of x at ``indices`` summed per row by np.bincount."""
    rows = indptr.size - 1
    lengths = np.diff(indptr)
    where = np.repeat(np.arange(rows, dtype=np.int64), lengths)
    out: FloatArray = np.bincount(where, weights=x.take(indices), minlength=rows)
    return out


def _unit_weights(size: int) -> FloatArray:
    global _ONES
    if _ONES.size < size:
        _ONES = np.ones(max(size, 2 * _ONES.size))
    return _ONES[:size]


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
    of the additions shows (large and small values that cancel, in several row lengths)."""
    rng = np.random.default_rng(20261130)
    x = rng.standard_normal(512) * 10.0 ** rng.integers(-8, 9, 512)
    x[:4] = (1e16, 1.0, -1e16, 3.0)  # 1 is lost in order, kept by other orders
    lengths = np.array([0, 1, 2, 3, 4, 7, 8, 9, 16, 17, 31, 64, 129, 256, 511, 1000])
    indptr = np.concatenate(([0], np.cumsum(lengths)))
    indices = rng.integers(0, x.size, int(indptr[-1])).astype(np.int32)
    indices[:4] = (0, 1, 2, 3)
    try:
        fast = _with_matvec(matvec, indptr, indices, x)
    except (TypeError, ValueError):
        return False
    return fast.tobytes() == row_sums_bincount(indptr, indices, x).tobytes()


_MATVEC = _matvec()
if _MATVEC is not None and not _adds_in_order(_MATVEC):
    _MATVEC = None


def fast_path() -> bool:
    """Whether :func:`row_sums` runs scipy's compiled loop (else np.bincount)."""
    return _MATVEC is not None


def row_sums(indptr: IntArray, indices: Int32Array, x: FloatArray) -> FloatArray:
    """out[r] = Σ x[j] over row r's entries j, added left to right from 0.0 (see the module
    docstring). ``indptr``: R + 1 offsets from 0; ``indices``: entries < x.size."""
    if _MATVEC is None:
        return row_sums_bincount(indptr, indices, x)
    return _with_matvec(_MATVEC, indptr, indices, x)
