"""The matrix products of the dense block update (:meth:`PairSums.update_block
<stream_cf.engine.pairs.PairSums.update_block>`) and its corrections between changed users.

The changed cells of a micro-batch come as :class:`Cells`; the products multiply per-cell weights
by the touched items' old mask M, values V and V² (item-major) either in one product over every
changed user and touched item (:func:`products_dense`) or user by user over each user's own items
(:func:`products_by_user`); :func:`shared_items` corrects the entries between two changed users.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_cf.engine.storage import BoolArray, FloatArray, IntArray


@dataclass(frozen=True)
class Cells:
    """The changed cells of a block update: user slot, touched row, the changed users (sorted)
    and each cell's index among them, old/new presence (p, q as 0/1) and values (a, b; 0 where
    absent)."""

    users: IntArray
    cols: IntArray
    changed: IntArray
    x_local: IntArray
    p: FloatArray
    a: FloatArray
    q: FloatArray
    b: FloatArray


Products = tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any]]


def products_dense(
    cells: Cells,
    weights: npt.NDArray[Any],
    mask_t: BoolArray,
    values_t: npt.NDArray[Any],
    dtype: type[np.floating[Any]],
) -> Products:
    """W @ M (3 channels), W @ V (2) and W @ V² (1), each (channels, c, n_users), with the
    per-cell ``weights`` spread over (changed user, touched item): three matrix products."""
    c = int(cells.changed.size)
    n_cols, n_users = mask_t.shape
    spread = np.zeros((6, c, n_cols), dtype=dtype)
    spread[:, cells.x_local, cells.cols] = weights
    m = mask_t.astype(dtype)
    v = values_t.astype(dtype, copy=False)
    on_m = (spread[:3].reshape(3 * c, n_cols) @ m).reshape(3, c, n_users)
    on_v = (spread[3:5].reshape(2 * c, n_cols) @ v).reshape(2, c, n_users)
    on_v2 = (spread[5] @ (v * v)).reshape(1, c, n_users)
    return on_m, on_v, on_v2


def products_by_user(
    cells: Cells,
    weights: npt.NDArray[Any],
    mask_t: BoolArray,
    values_t: npt.NDArray[Any],
    dtype: type[np.floating[Any]],
) -> Products:
    """The same as :func:`products_dense`, one changed user at a time over that user's items:
    a micro-batch's users rate a few items each out of hundreds touched (ML-100K in time order:
    ~25 users, ~1,000 cells, ~550 items per 1,000 events), so this multiplies ~1/10 of the
    weights, on rows gathered from the compact (bool, int8) item-major blocks."""
    c = int(cells.changed.size)
    n_users = int(mask_t.shape[1])
    order = np.argsort(cells.x_local, kind="stable")
    bounds = np.searchsorted(cells.x_local[order], np.arange(c + 1)).tolist()
    items = cells.cols[order]
    w = np.ascontiguousarray(weights[:, order])
    out = np.empty((c, 6, n_users), dtype=dtype)
    for x in range(c):
        lo, hi = bounds[x], bounds[x + 1]
        rows = items[lo:hi]
        m = mask_t[rows].astype(dtype)
        v = values_t[rows].astype(dtype)
        np.matmul(w[:3, lo:hi], m, out=out[x, :3])
        np.matmul(w[3:5, lo:hi], v, out=out[x, 3:5])
        v *= v
        np.matmul(w[5:, lo:hi], v, out=out[x, 5:])
    by_channel = out.transpose(1, 0, 2)
    return by_channel[:3], by_channel[3:5], by_channel[5:]


def shared_items(cells: Cells, dtype: type[np.floating[Any]]) -> tuple[FloatArray, FloatArray]:
    """What the dense products got wrong between two changed users: their corrections (c x c x 4
    each, float64, exact) for the items where both changed a cell.

    The products read every y's old column. For a pair of changed cells j = (x, t) and
    k = (y, t) of the same item (j = k included) the row of x needs
    f(b_j, b_k)·q_j·q_k − f(a_j, a_k)·p_j·p_k (f = [1, r_x, r_x², r_x·r_y]) where the products
    gave [d0_j, d1_j, d2_j]·p_k and d1_j·a_k: the difference is [q_j, b_j, b_j², ·]·(q_k − p_k)
    and b_j·(b_k − a_k) (b = 0 where absent). The column of x must not count t for y at all (y's
    side of that item is in y's own row), where the products gave
    [d0_j·p_k, d0_j·a_k, d0_j·a_k², d1_j·a_k]. Returns (rows, cols): rows[x, y] and cols[y, x]
    to add, indexed by the changed users' local numbers. Summed pair by pair when the items
    have few changed cells each, else as matrix products over (changed user × touched item)
    (in ``dtype``: exact like the main products).
    """
    c = int(cells.changed.size)
    n_cols = int(cells.cols.max()) + 1
    sizes = np.bincount(cells.cols, minlength=n_cols)
    pairs = float(np.dot(sizes, sizes))
    # measured (ns): ~35 per pair plus ~30 µs; the products ~0.015 per multiply-add in float32
    # (float64 about twice) plus ~0.15 ms
    per_mac = 0.015 if dtype == np.float32 else 0.03
    if 35.0 * pairs + 30_000.0 < 8.0 * c * c * n_cols * per_mac + 150_000.0:
        return _shared_pairs(cells, sizes)
    return _shared_products(cells, n_cols, dtype)


def _shared_pairs(cells: Cells, sizes: IntArray) -> tuple[FloatArray, FloatArray]:
    """:func:`shared_items` by enumerating the pairs of changed cells of each item."""
    c = int(cells.changed.size)
    order = np.argsort(cells.cols, kind="stable")
    first = np.cumsum(sizes) - sizes  # each item's first cell in the sorted order
    per = sizes[cells.cols[order]]  # every sorted cell pairs with each cell of its item
    j = np.repeat(order, per)
    starts = np.repeat(first[cells.cols[order]], per)
    k = order[starts + np.arange(j.size) - np.repeat(np.cumsum(per) - per, per)]
    p, q, a, b = cells.p, cells.q, cells.a, cells.b
    moved = (q - p)[k]  # q_k − p_k
    a_k = a[k]
    b_j = b[j]
    size = c * c
    index = cells.x_local[j] * c + cells.x_local[k]
    rows = np.empty((4, size))
    rows[0] = np.bincount(index, weights=q[j] * moved, minlength=size)
    rows[1] = np.bincount(index, weights=b_j * moved, minlength=size)
    rows[2] = np.bincount(index, weights=b_j * b_j * moved, minlength=size)
    rows[3] = np.bincount(index, weights=b_j * (b[k] - a_k), minlength=size)
    index = cells.x_local[k] * c + cells.x_local[j]
    d0 = (q - p)[j]
    cols = np.empty((4, size))
    cols[0] = np.bincount(index, weights=-d0 * p[k], minlength=size)
    cols[1] = np.bincount(index, weights=-d0 * a_k, minlength=size)
    cols[2] = np.bincount(index, weights=-d0 * a_k * a_k, minlength=size)
    cols[3] = np.bincount(index, weights=-(b - a)[j] * a_k, minlength=size)
    return rows.T.reshape(c, c, 4), cols.T.reshape(c, c, 4)


def _shared_products(
    cells: Cells, n_cols: int, dtype: type[np.floating[Any]]
) -> tuple[FloatArray, FloatArray]:
    """:func:`shared_items` as products of (changed user × touched item) matrices."""
    c = int(cells.changed.size)
    p, q, a, b = cells.p, cells.q, cells.a, cells.b
    x_side = np.zeros((5, c, n_cols), dtype=dtype)  # per x: q, b, b², d0, d1
    x_side[:, cells.x_local, cells.cols] = [q, b, b * b, q - p, b - a]
    y_side = np.zeros((5, n_cols, c), dtype=dtype)  # per y: q − p, b − a, p, a, a²
    y_side[:, cells.cols, cells.x_local] = [q - p, b - a, p, a, a * a]
    rows = np.empty((c, c, 4))
    rows[:, :, :3] = (
        (x_side[:3].reshape(3 * c, n_cols) @ y_side[0]).reshape(3, c, c).transpose(1, 2, 0)
    )
    rows[:, :, 3] = x_side[1] @ y_side[1]
    cols = np.empty((c, c, 4))
    # cols[y, x] = −Σ_t d0_x·[p_y, a_y, a_y²] and −Σ_t d1_x·a_y
    on_y = x_side[3] @ y_side[2:].transpose(1, 0, 2).reshape(n_cols, 3 * c)
    cols[:, :, :3] = -on_y.reshape(c, 3, c).transpose(2, 0, 1)
    cols[:, :, 3] = -(x_side[4] @ y_side[3]).T
    return rows, cols
