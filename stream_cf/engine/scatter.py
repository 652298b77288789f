"""The pair sums' update pair by pair: the pairs that change, scatter-added by flat index.

A micro-batch's net cell changes (:mod:`stream_cf.engine.commit`) change the sums of exactly the
ordered pairs (x, y) where x changed a cell (x, t) and y rated t before or after. This module
lists those pairs and adds their deltas into the int32 tiles of
:class:`~stream_cf.engine.pairs.PairSums` through one flat int64 view of all tiles, so the work
is in proportion to the pairs that change (the block update's, to changed users × all users).

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
as the int64 a + b·2³²: exact while the low lane (n, resp. Σx²) stays within [0, 2³¹) before and
after every addition. It does: each addition applies one (pair, item) delta, so every
intermediate value is the sum of the pair's items with some items at their old state and the
others at their new one, a count or a sum of squares, ≥ 0, and within the int32 bound the caller
checked (:meth:`~stream_cf.engine.pairs.PairSums.fits`). The high lane wraps modulo 2³² like the
int32 it is.
"""

from __future__ import annotations

import sys

import numpy as np
import numpy.typing as npt

from stream_cf.engine.storage import BoolArray, FloatArray, IntArray

PACKED = sys.byteorder == "little"  # an int32 lane pair read as one int64: low lane first
SHIFT = np.int64(32)


def scatter_update(
    flat: npt.NDArray[np.int64],
    tile_words: IntArray,
    tile: int,
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

    ``flat``: every tile's cells as int64 words (two per cell); ``tile_words[bi, bj]``: the word
    offset of tile (bi, bj), ``tile`` user slots per side. The changed cells are
    (``cell_users[j]``, ``cell_cols[j]``), each once, ``cell_cols`` indexing the touched items;
    ``new_twice``/``new_present`` their scaled values (2·value) and presence after the batch.
    ``where``, ``raters``, ``old_values``: the touched items' raters before the batch (position
    among the touched items, ascending; rater slot; value).
    """
    n_cols = int(cell_cols.max()) + 1 if cell_cols.size else 0
    twice_old = np.rint(2.0 * old_values).astype(np.int64)
    # the old entries that are changed cells: their old value is the cell's A (p = 1)
    n_users = int(max(int(raters.max(initial=-1)), int(cell_users.max())) + 1)
    p = np.zeros(cell_users.size, dtype=np.int64)
    a = np.zeros(cell_users.size, dtype=np.int64)
    changed_user = np.zeros(n_users, dtype=np.bool_)
    changed_user[cell_users] = True
    maybe = np.flatnonzero(changed_user[raters])
    keep: BoolArray | None = None
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
        keep = np.ones(raters.size, dtype=np.bool_)
        keep[maybe[hit]] = False
    q = new_present.astype(np.int64)
    b = np.where(new_present, new_twice, 0)
    d0 = q - p
    d1 = b - a
    d2 = b * b - a * a
    if keep is not None:
        where, raters, twice_old = where[keep], raters[keep], twice_old[keep]
    _with_unchanged(
        flat,
        tile_words,
        tile,
        users=cell_users,
        cols=cell_cols,
        deltas=(d0, d1, d2),
        where=where,
        raters=raters,
        twice=twice_old,
        n_cols=n_cols,
    )
    _among_changed(flat, tile_words, tile, cell_users, cell_cols, (p, q, a, b), n_cols)


def _with_unchanged(
    flat: npt.NDArray[np.int64],
    tile_words: IntArray,
    tile: int,
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
    starts = np.cumsum(per_col) - per_col
    t = cols[live]
    counts = per_col[t]
    total = int(counts.sum())
    if total == 0:
        return
    ends = np.cumsum(counts)
    entry = np.repeat(starts[t] - (ends - counts), counts)
    entry += np.arange(total, dtype=np.int64)
    y = raters[entry]
    value = twice[entry]
    x = users[live]
    e0 = np.repeat(d0[live], counts)
    e1 = np.repeat(d1[live], counts)
    v_d1 = value * e1
    v_d1 <<= SHIFT
    words = tile_words.ravel()
    n_blocks = int(tile_words.shape[1])
    tile_x, local_x = np.divmod(x, tile)
    tile_y, local_y = np.divmod(y, tile)
    # sums[x, y]: word 0 = d0 + d1·2³², word 1 = d2 + (Y·d1)·2³²
    index = words[np.repeat(tile_x * n_blocks, counts) + tile_y]
    index += np.repeat(local_x * (2 * tile), counts)
    index += 2 * local_y
    np.add.at(flat, index, np.repeat(d0[live] + (d1[live] << SHIFT), counts))
    index += 1
    word = np.repeat(d2[live], counts)
    word += v_d1
    np.add.at(flat, index, word)
    # sums[y, x]: word 0 = d0 + (Y·d0)·2³², word 1 = Y²·d0 + (Y·d1)·2³²
    index = words[tile_y * n_blocks + np.repeat(tile_x, counts)]
    index += local_y * (2 * tile)
    index += np.repeat(2 * local_x, counts)
    v_d0 = value * e0
    word = v_d0 << SHIFT
    word += e0
    np.add.at(flat, index, word)
    index += 1
    v_d0 *= value
    v_d0 += v_d1
    np.add.at(flat, index, v_d0)


def _among_changed(
    flat: npt.NDArray[np.int64],
    tile_words: IntArray,
    tile: int,
    users: IntArray,
    cols: IntArray,
    cells: tuple[IntArray, IntArray, IntArray, IntArray],
    n_cols: int,
) -> None:
    """sums[x, y] for every pair of changed cells (x, t), (y, t) of one item (both orders, and
    x = y: the diagonal)."""
    p, q, a, b = cells
    alive = np.flatnonzero((p | q) != 0)  # a cell absent before and after adds nothing
    if alive.size == 0:
        return
    t = cols[alive]
    order = alive[np.argsort(t, kind="stable")]
    sizes = np.bincount(t, minlength=n_cols)
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
    x = users[j]
    y = users[k]
    index = tile_words.ravel()[(x // tile) * int(tile_words.shape[1]) + y // tile]
    index += (x % tile) * (2 * tile) + 2 * (y % tile)
    np.add.at(flat, index, n + (sx << SHIFT))
    np.add.at(flat, index + 1, sxx + (sxy << SHIFT))
