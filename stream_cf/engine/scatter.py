"""The pair sums' update pair by pair: the pairs that change, scatter-added by flat index.

A micro-batch's net cell changes (:mod:`stream_cf.engine.commit`) change the sums of exactly the
ordered pairs (x, y) where x changed a cell (x, t) and y rated t before or after. This module
lists those pairs and adds their deltas into the int32 tiles of
:class:`~stream_cf.engine.pairs.PairSums` through one flat int64 view of all tiles, so the work
is in proportion to the pairs that change (the block update's, to changed users × all users).

Addressing (:class:`Layout`): tile (bi, bj) of ``tile`` × ``tile`` slots sits at tile number
bi·side + bj of the reservation, so the word of cell (u, v) is row(u) + col(v) with
row(u) = 2·((u div tile)·side·tile² + (u mod tile)·tile) and col(v) = 2·((v div tile)·tile² +
(v mod tile)): one addition per pair once each user's two offsets are known.

Units are the store's: integers of s·value with s = 2 (every value a multiple of 0.5). Per
changed cell j = (x, t), with old/new presence p, q (0/1) and old/new scaled values A, B (0 where
absent), let d0 = q − p, d1 = B − A, d2 = B² − A². Then, for every y that rated t before the
batch and whose cell (y, t) did not change (value Y)::

    sums[x, y] += [d0, d1, d2, Y·d1]          sums[y, x] += [d0, Y·d0, Y²·d0, Y·d1]

and for every pair of changed cells j = (x, t), k = (y, t) of one item (j = k included: the
diagonal; both orders)::

    sums[x, y] += [q_j·q_k − p_j·p_k, B_j·q_j·q_k − A_j·p_j·p_k,
                   B_j²·q_j·q_k − A_j²·p_j·p_k, B_j·B_k − A_j·A_k]

Each (ordered pair, item) gets exactly one delta, so the result equals applying the cells one by
one, in any order.

Lanes: a cell's four int32 sums [n, Σx, Σx², Σxy] are two int64 words, (n, Σx) and (Σx², Σxy),
low lane first (little-endian machines only: :data:`PACKED`). A delta [a, b] of a word is added
as the int64 a + b·2³² (products like (Y·d1)·2³² taken modulo 2⁶⁴, as int64 arithmetic wraps):
exact while the low lane (n, resp. Σx²) stays within [0, 2³¹) before and after every addition.
It does: each addition applies one (pair, item) delta, so every intermediate value is the sum of
the pair's items with some items at their old state and the others at their new one, a count or
a sum of squares, ≥ 0, and within the int32 bound the caller checked
(:meth:`~stream_cf.engine.pairs.PairSums.fits`). The high lane wraps modulo 2³² like the int32
it is.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from stream_cf.engine.storage import BoolArray, FloatArray, IntArray

PACKED = sys.byteorder == "little"  # an int32 lane pair read as one int64: low lane first
SHIFT = np.int64(32)


@dataclass(frozen=True)
class Layout:
    """Where cell (u, v) is among the int64 words of the reservation (see the module
    docstring): ``tile`` slots per tile side, ``side`` tiles per side."""

    tile: int
    side: int

    def _split(self, u: IntArray) -> tuple[IntArray, IntArray]:
        """(u div tile, u mod tile), by shifts when the tile is a power of two."""
        if self.tile & (self.tile - 1) == 0:
            return u >> (self.tile.bit_length() - 1), u & (self.tile - 1)
        block, local = np.divmod(u, self.tile)
        return block, local

    def row(self, u: IntArray) -> IntArray:
        """2·((u div tile)·side·tile² + (u mod tile)·tile) per slot."""
        block, local = self._split(u)
        out = block * (2 * self.side * self.tile * self.tile)
        out += local * (2 * self.tile)
        return out

    def col(self, v: IntArray) -> IntArray:
        """2·((v div tile)·tile² + (v mod tile)) per slot."""
        block, local = self._split(v)
        out = block * (2 * self.tile * self.tile)
        out += local * 2
        return out

    def cell(self, u: int, v: int) -> int:
        """row(u) + col(v) for one pair."""
        tile, side = self.tile, self.side
        return 2 * (
            (u // tile) * side * tile * tile
            + (u % tile) * tile
            + (v // tile) * tile * tile
            + v % tile
        )


def scatter_cell(
    flat: npt.NDArray[np.int64],
    layout: Layout,
    x: int,
    *,
    others: IntArray,
    other_twice: IntArray,
    change: tuple[int, int, int],
) -> None:
    """One changed cell (x, t) (the single-event path): with (d0, d1, d2) = ``change`` (see
    the module docstring) sums[x, x] += [d0, d1, d2, d2] and, for every other rater y of t
    (``others``, distinct, x not among them; scaled values Y = ``other_twice``),
    sums[x, y] += [d0, d1, d2, Y·d1] and sums[y, x] += [d0, Y·d0, Y²·d0, Y·d1]. Four words
    per other rater and two for the diagonal, every index once: one fancy-indexed addition."""
    d0, d1, d2 = change
    m = int(others.size)
    diag = layout.cell(x, x)
    index = np.empty(4 * m + 2, dtype=np.int64)
    words = np.empty(4 * m + 2, dtype=np.int64)
    row = layout.col(others)
    row += layout.cell(x, 0)  # row(x) + col(y)
    col = layout.row(others)
    col += layout.cell(0, x)  # row(y) + col(x)
    index[0:m] = row
    np.add(row, 1, out=index[m : 2 * m])
    index[2 * m : 3 * m] = col
    np.add(col, 1, out=index[3 * m : 4 * m])
    index[4 * m] = diag
    index[4 * m + 1] = diag + 1
    high = other_twice << SHIFT
    y_d1 = high * d1
    words[0:m] = d0 + (d1 << 32)
    np.add(y_d1, d2, out=words[m : 2 * m])
    np.multiply(high + 1, d0, out=words[2 * m : 3 * m])
    np.multiply(other_twice * other_twice, d0, out=words[3 * m : 4 * m])
    words[3 * m : 4 * m] += y_d1
    words[4 * m] = d0 + (d1 << 32)
    words[4 * m + 1] = d2 + (d2 << 32)
    flat[index] += words


def scatter_update(
    flat: npt.NDArray[np.int64],
    layout: Layout,
    *,
    cell_users: IntArray,
    cell_cols: IntArray,
    new_twice: IntArray,
    new_present: BoolArray,
    where: IntArray,
    raters: IntArray,
    old_values: FloatArray,
) -> None:
    """Add the deltas of the changed cells (see the module docstring) into ``flat``.

    ``flat``: the reservation's int64 words, cells placed by ``layout``. The changed cells are
    (``cell_users[j]``, ``cell_cols[j]``), each once, ``cell_cols`` indexing the touched items;
    ``new_twice``/``new_present`` their scaled values (2·value, 0 where absent) and presence
    after the batch. ``where``, ``raters``, ``old_values``: the touched items' raters before
    the batch (position among the touched items, ascending; rater slot; value).
    """
    n_cols = int(cell_cols.max()) + 1
    twice_old = np.rint(2.0 * old_values).astype(np.int64)
    # the old entries that are changed cells: their old value is the cell's A (p = 1)
    n_users = int(max(int(raters.max(initial=-1)), int(cell_users.max())) + 1)
    p = np.zeros(cell_users.size, dtype=np.int64)
    a = np.zeros(cell_users.size, dtype=np.int64)
    changed_user = np.zeros(n_users, dtype=np.bool_)
    changed_user[cell_users] = True
    maybe = np.flatnonzero(changed_user[raters])
    if maybe.size:
        cell_key = cell_cols * n_users + cell_users
        order = np.argsort(cell_key)
        sorted_key = cell_key[order]
        key = where[maybe] * n_users + raters[maybe]
        pos = np.minimum(np.searchsorted(sorted_key, key), sorted_key.size - 1)
        hit = sorted_key[pos] == key
        cell = order[pos[hit]]
        p[cell] = 1
        a[cell] = twice_old[maybe[hit]]
        if hit.any():
            keep = np.ones(raters.size, dtype=np.bool_)
            keep[maybe[hit]] = False
            where, raters, twice_old = where[keep], raters[keep], twice_old[keep]
    q = new_present.astype(np.int64)
    b = np.where(new_present, new_twice, 0)
    _with_unchanged(
        flat,
        layout,
        users=cell_users,
        cols=cell_cols,
        deltas=(q - p, b - a, b * b - a * a),
        where=where,
        raters=raters,
        twice=twice_old,
        n_cols=n_cols,
    )
    _among_changed(flat, layout, users=cell_users, cols=cell_cols, cells=(p, q, a, b))


def _with_unchanged(
    flat: npt.NDArray[np.int64],
    layout: Layout,
    *,
    users: IntArray,
    cols: IntArray,
    deltas: tuple[IntArray, IntArray, IntArray],
    where: IntArray,
    raters: IntArray,
    twice: IntArray,
    n_cols: int,
) -> None:
    """sums[x, y] and sums[y, x] for every changed cell (x, t) and unchanged old rater y of t."""
    d0, d1, d2 = deltas
    live = np.flatnonzero((d0 != 0) | (d1 != 0) | (d2 != 0))
    if live.size == 0 or raters.size == 0:
        return
    per_col = np.bincount(where, minlength=n_cols)
    t = cols[live]
    counts = per_col[t]
    total = int(counts.sum())
    if total == 0:
        return
    # entry[k]: the old rater of the k-th pair (each live cell's item's raters in turn)
    ends = np.cumsum(counts)
    entry = np.repeat((np.cumsum(per_col) - per_col)[t] - (ends - counts), counts)
    entry += np.arange(total, dtype=np.int64)
    d0, d1, d2 = d0[live], d1[live], d2[live]
    x = users[live]
    high = twice << SHIFT  # Y·2³² per old rater
    # sums[x, y]: word 0 = d0 + d1·2³², word 1 = d2 + (Y·d1)·2³²
    index = np.repeat(layout.row(x), counts)
    index += layout.col(raters)[entry]
    np.add.at(flat, index, np.repeat(d0 + (d1 << SHIFT), counts))
    index += 1
    y_d1 = high[entry]
    y_d1 *= np.repeat(d1, counts)
    word = np.repeat(d2, counts)
    word += y_d1
    np.add.at(flat, index, word)
    # sums[y, x]: word 0 = d0 + (Y·d0)·2³² = d0·(1 + Y·2³²), word 1 = Y²·d0 + (Y·d1)·2³²,
    # interleaved: one cache miss per cell (the rows of x stay in cache, these are scattered)
    index = layout.row(raters)[entry]
    index += np.repeat(layout.col(x), counts)
    both = np.repeat(index, 2)
    both[1::2] += 1
    e0 = np.repeat(d0, counts)
    words = np.empty(2 * total, dtype=np.int64)
    np.multiply((high + 1)[entry], e0, out=words[0::2])
    word1 = (twice * twice)[entry]
    word1 *= e0
    np.add(word1, y_d1, out=words[1::2])
    np.add.at(flat, both, words)


def _among_changed(
    flat: npt.NDArray[np.int64],
    layout: Layout,
    *,
    users: IntArray,
    cols: IntArray,
    cells: tuple[IntArray, IntArray, IntArray, IntArray],
) -> None:
    """sums[x, y] for every pair of changed cells (x, t), (y, t) of one item (both orders, and
    x = y: the diagonal)."""
    p, q, a, b = cells
    alive = np.flatnonzero((p | q) != 0)  # a cell absent before and after adds nothing
    if alive.size == 0:
        return
    t = cols[alive]
    order = alive[np.argsort(t, kind="stable")]
    sizes = np.bincount(t)
    first = np.cumsum(sizes) - sizes
    per = sizes[cols[order]]  # each cell pairs with every cell of its item
    j = np.repeat(order, per)
    starts = np.repeat(first[cols[order]], per)
    k = order[starts + np.arange(j.size) - np.repeat(np.cumsum(per) - per, per)]
    qq = q[j] * q[k]
    pp = p[j] * p[k]
    b_j = b[j]
    a_j = a[j]
    n = qq - pp
    sx = b_j * qq - a_j * pp
    sxx = b_j * b_j * qq - a_j * a_j * pp
    sxy = b_j * b[k] - a_j * a[k]
    index = layout.row(users[j]) + layout.col(users[k])
    np.add.at(flat, index, n + (sx << SHIFT))
    np.add.at(flat, index + 1, sxx + (sxy << SHIFT))
