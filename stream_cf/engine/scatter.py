"""The pair sums' update pair by pair: the pairs that change, scatter-added by flat index.

A micro-batch's net cell changes (:mod:`stream_cf.engine.commit`) change the sums of exactly the
user pairs {x, y} where x changed a cell (x, t) and y rated t before or after. This module lists
those pairs and adds their deltas into the int32 tiles of :class:`~stream_cf.engine.pairs.PairSums`
through one flat int64 view of all tiles, so the work is in proportion to the pairs that change
(the block update's, to changed users × all users).

Cells (see :mod:`~stream_cf.engine.pairs`): an unordered pair {hi, lo} (hi ≥ lo) is one cell of
six int32 lanes [n, Σxy, Σhi², Σhi, Σlo², Σlo] (sums over the items both rated of 2·value: hi's,
lo's and their products), read as three int64 words W0 = (n, Σxy), Whi = (Σhi², Σhi),
Wlo = (Σlo², Σlo), low lane first (little-endian machines only: :data:`PACKED`).

Addressing (:class:`Layout`): tile (bi, bj) (bj ≤ bi) of ``tile`` × ``tile`` cells sits at tile
number bi·side + bj of the reservation, so W0 of cell {hi, lo} is word row(hi) + col(lo) with
row(u) = 3·((u div tile)·side·tile² + (u mod tile)·tile) and col(v) = 3·((v div tile)·tile² +
(v mod tile)), Whi the word after it and Wlo the next. A changed user x's pairs with older users
(smaller slots) sit in x's own row; only its pairs with newer users are scattered over their rows.

Units are the store's: integers of s·value with s = 2 (every value a multiple of 0.5). Per
changed cell j = (x, t), with old/new presence p, q (0/1) and old/new scaled values A, B (0 where
absent), let d0 = q − p, d1 = B − A, d2 = B² − A². Then, for every y that rated t before the
batch and whose cell (y, t) did not change (value Y), the cell {x, y} gains::

    W0 += [d0, Y·d1]        Wx += [d2, d1]        Wy += [Y²·d0, Y·d0]

(Wx is Whi if x > y, else Wlo), and for every ordered pair of changed cells j = (x, t),
k = (y, t) of one item with x ≠ y, x's lanes gain [B_j²·q_j·q_k − A_j²·p_j·p_k, B_j·q_j·q_k −
A_j·p_j·p_k] and, once per unordered pair (from the order with x > y),
W0 += [q_j·q_k − p_j·p_k, B_j·B_k − A_j·A_k]; the diagonal cell {x, x} of a changed cell gains
W0 += [q − p, B² − A²] and both Whi and Wlo += [B² − A², B − A]. Each (pair, item) gets exactly
one delta, so the result equals applying the cells one by one, in any order.

Lanes: a delta [a, b] of a word is added as the int64 a + b·2³² (products like (Y·d1)·2³² taken
modulo 2⁶⁴, as int64 arithmetic wraps): exact while the low lane (n, resp. a Σ²) stays within
[0, 2³¹) before and after every addition. It does: each addition applies one (pair, item)
delta, so every intermediate value is the sum of the pair's items with some items at their old
state and the others at their new one, a count or a sum of squares, ≥ 0, and within the int32
bound the caller checked (:meth:`~stream_cf.engine.pairs.PairSums.fits`). The high lane wraps
modulo 2³² like the int32 it is.

Speed: the touched items' old raters are sorted once by (item, slot) (one plain sort of packed
int64 keys), so a changed cell's pairs are two runs of consecutive entries, its older raters
(the cells in x's own row) and its newer ones, each with its words at fixed places: no per-pair
comparison, minimum or maximum. The per-rater words (col(y) or row(y), [0, Y]·2³²,
[Y², Y]) are tables over the entries; the pairs are listed and added in chunks of
:data:`CHUNK` (whole runs), so the temporaries stay in cache between the ten numpy passes
over them.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import numpy.typing as npt

from stream_cf.engine.extensions import compiled
from stream_cf.engine.storage import BoolArray, FloatArray, IntArray

PACKED = sys.byteorder == "little"  # an int32 lane pair read as one int64: low lane first
SHIFT = np.int64(32)
WORDS = 3  # int64 words per cell: W0, Whi, Wlo
CHUNK = 1 << 14  # pairs listed at a time (about; whole cells)


# the compiled single-cell update (``scatter_cell`` in _item_kernel.c: the same int64 additions,
# so the same words); None where the extension is not built (tests/engine/test_scatter_kernel.py)
KERNEL: ModuleType | None = compiled("_item_kernel", "scatter_cell")


@dataclass(frozen=True)
class Layout:
    """Where cell {hi, lo} is among the int64 words of the reservation (see the module
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
        """3·((u div tile)·side·tile² + (u mod tile)·tile) per slot."""
        block, local = self._split(u)
        out = block * (WORDS * self.side * self.tile * self.tile)
        out += local * (WORDS * self.tile)
        return out

    def col(self, v: IntArray) -> IntArray:
        """3·((v div tile)·tile² + (v mod tile)) per slot."""
        block, local = self._split(v)
        out = block * (WORDS * self.tile * self.tile)
        out += local * WORDS
        return out

    def cell(self, hi: int, lo: int) -> int:
        """row(hi) + col(lo) for one pair (hi ≥ lo; cell(u, 0) = row(u), cell(0, v) =
        col(v))."""
        tile, side = self.tile, self.side
        return WORDS * (
            (hi // tile) * side * tile * tile
            + (hi % tile) * tile
            + (lo // tile) * tile * tile
            + lo % tile
        )


def scatter_cell(
    flat: npt.NDArray[np.int64],
    layout: Layout,
    x: int,
    *,
    others: IntArray,
    other_twice: IntArray,
    change: tuple[int, int, int],
    words_of: tuple[IntArray, IntArray],
) -> None:
    """One changed cell (x, t) (the single-event path): with (d0, d1, d2) = ``change`` (see the
    module docstring) the diagonal cell {x, x} gains W0 += [d0, d2], Whi = Wlo += [d2, d1] and,
    for every other rater y of t (``others``, distinct, x not among them; scaled values
    Y = ``other_twice``), the cell {x, y} gains W0 += [d0, Y·d1], Wx += [d2, d1],
    Wy += [Y²·d0, Y·d0]. ``words_of``: per slot v, col(v) + (0, 1, 2) and row(v) + (0, 2, 1)
    (:meth:`~stream_cf.engine.pairs.PairSums.lanes_at`'s tables), so that the words of {x, y}
    come as (W0, Wx, Wy) for an older y (x's row) and a newer one (y's row) alike. Three
    words per other rater, every index once: one fancy-indexed addition; then the diagonal's
    three (the compiled :data:`KERNEL` where it is built: the same additions in one loop)."""
    d0, d1, d2 = change
    v_lo, v_hi = words_of
    kernel = KERNEL
    if kernel is not None:  # one compiled loop over the others, then the diagonal
        kernel.scatter_cell(
            x, d0, d1, d2, layout.cell(x, 0), layout.cell(0, x), layout.cell(x, x), flat, v_lo,
            v_hi, np.ascontiguousarray(others, dtype=np.int64),
            np.ascontiguousarray(other_twice, dtype=np.int64),
        )  # fmt: skip
        return
    m = int(others.size)
    index = np.where(
        (others < x)[:, None],  # {x, y} in x's row for an older y, else in y's row
        v_lo[others] + layout.cell(x, 0),
        v_hi[others] + layout.cell(0, x),
    )
    words = np.empty((m, 3), dtype=np.int64)
    w0, wx, wy = words[:, 0], words[:, 1], words[:, 2]
    np.multiply(other_twice, d1 << 32, out=w0)  # [d0, Y·d1]: Y·d1·2³² + d0
    w0 += d0
    wx[:] = d2 + (d1 << 32)  # [d2, d1]
    np.multiply(other_twice + (1 << 32), other_twice, out=wy)  # [Y², Y]·d0: (Y² + Y·2³²)·d0
    wy *= d0
    flat[index] += words
    diag = layout.cell(x, x)
    flat[diag : diag + 3] += (d0 + (d2 << 32), d2 + (d1 << 32), d2 + (d1 << 32))


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
    the batch (position among the touched items; rater slot; value), in any order.
    """
    n_cols = int(cell_cols.max()) + 1
    n_users = int(max(int(raters.max(initial=-1)), int(cell_users.max())) + 1)
    bits = n_users.bit_length()
    # the old raters by (item, slot): each item's older raters of a user x come before x
    key, twice_old = _by_item_and_slot(
        (where << bits) | raters, np.rint(2.0 * old_values).astype(np.int64)
    )
    # the old entries that are changed cells: their old value is the cell's A (p = 1)
    cell_key = (cell_cols << bits) | cell_users
    p = np.zeros(cell_users.size, dtype=np.int64)
    a = np.zeros(cell_users.size, dtype=np.int64)
    if key.size:
        pos = np.minimum(np.searchsorted(key, cell_key), key.size - 1)
        hit = key[pos] == cell_key
        if hit.any():
            p[hit] = 1
            a[hit] = twice_old[pos[hit]]
            keep = np.ones(key.size, dtype=np.bool_)
            keep[pos[hit]] = False
            key, twice_old = key[keep], twice_old[keep]
    q = new_present.astype(np.int64)
    b = np.where(new_present, new_twice, 0)
    slots = np.arange(n_users, dtype=np.int64)
    offsets = (layout.row(slots), layout.col(slots))
    _with_unchanged(
        flat,
        offsets,
        users=cell_users,
        cols=cell_cols,
        deltas=(q - p, b - a, b * b - a * a),
        key=key,
        twice=twice_old,
        bits=bits,
        n_cols=n_cols,
    )
    _among_changed(flat, offsets, users=cell_users, cols=cell_cols, cells=(p, q, a, b))


def _by_item_and_slot(key: IntArray, twice: IntArray) -> tuple[IntArray, IntArray]:
    """``key`` (≥ 0) ascending and ``twice`` in the same order: one plain sort of
    key·2^b + (twice − min) where that fits in an int64 (several times faster than an argsort
    and a gather, on numpy's vectorised sorts), else by argsort."""
    if key.size == 0:
        return key, twice
    low = int(twice.min())
    bits = max(1, (int(twice.max()) - low).bit_length())
    if int(key.max()) >= 1 << (62 - bits):
        order = np.argsort(key)
        return key[order], twice[order]
    packed = key << bits
    packed |= twice - low
    packed.sort()
    out = packed & ((1 << bits) - 1)
    out += low
    packed >>= bits
    return packed, out


def _chunks(ends: IntArray) -> list[tuple[int, int]]:
    """Runs of consecutive segments of about :data:`CHUNK` pairs each (``ends``: the
    cumulative pair counts), as (first segment, last segment + 1)."""
    cuts = np.searchsorted(ends, np.arange(CHUNK, int(ends[-1]), CHUNK), side="left") + 1
    bounds = np.unique(np.concatenate(([0], cuts, [ends.size]))).tolist()
    return list(itertools.pairwise(bounds))


def _with_unchanged(
    flat: npt.NDArray[np.int64],
    offsets: tuple[IntArray, IntArray],
    *,
    users: IntArray,
    cols: IntArray,
    deltas: tuple[IntArray, IntArray, IntArray],
    key: IntArray,
    twice: IntArray,
    bits: int,
    n_cols: int,
) -> None:
    """The cells {x, y} of every changed cell (x, t) and unchanged old rater y of t
    (``key``: the old raters' t·2^bits + y, ascending, ``twice``: their 2·value;
    ``offsets``: row(u) and col(u) per user slot).

    Each changed cell's item's raters split at x: the older ones (y < x) are x's row part,
    cell {x, y} at row(x) + col(y) with x's lanes in Whi, the newer ones at row(y) + col(x)
    with x's lanes in Wlo; each side is one run of consecutive entries."""
    d0, d1, d2 = deltas
    live = np.flatnonzero((d0 != 0) | (d1 != 0) | (d2 != 0))
    if live.size == 0 or key.size == 0:
        return
    raters = key & ((1 << bits) - 1)
    # item t's raters: entries first[t] .. first[t + 1]
    first = np.searchsorted(key, np.arange(n_cols + 1, dtype=np.int64) << bits)
    t = cols[live]
    x = users[live]
    split = np.searchsorted(key, (t << bits) | x)  # x itself is not among them
    row_of, col_of = offsets
    high = twice << SHIFT  # Y·2³² per old rater
    y_word = twice * twice + high  # Wy per unit of d0: [Y², Y]
    x_word = d2[live] + (d1[live] << SHIFT)  # Wx per cell: [d2, d1]
    d0, d1 = d0[live], d1[live]
    # (the run's first entry, its length, its base word, its table of per-rater words)
    older = (first[t], split - first[t], row_of[x], col_of[raters])
    newer = (split, first[t + 1] - split, col_of[x], row_of[raters])
    # older raters: x's lanes in Whi (word 1), y's in Wlo (word 2); newer: the other way round
    for (begin, counts, base, other), x_at, y_at in (
        (older, flat[1:], flat[2:]),
        (newer, flat[2:], flat[1:]),
    ):
        _runs(
            flat,
            (x_at, y_at),
            begin=begin,
            counts=counts,
            base=base,
            other=other,
            words=(high, y_word, x_word),
            d=(d0, d1),
        )


def _runs(
    flat: npt.NDArray[np.int64],
    lanes: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]],
    *,
    begin: IntArray,
    counts: IntArray,
    base: IntArray,
    other: IntArray,
    words: tuple[IntArray, IntArray, IntArray],
    d: tuple[IntArray, IntArray],
) -> None:
    """For every run j (entries begin[j] .. begin[j] + counts[j] of the per-rater tables): the
    cells base[j] + other[entry] gain W0 += [d0, Y·d1], x's word (``lanes[0]``, offset view)
    += x_word[j], y's word (``lanes[1]``) += [Y², Y]·d0."""
    ends = np.cumsum(counts)
    if ends.size == 0 or int(ends[-1]) == 0:
        return
    high, y_word, x_word = words
    d0, d1 = d
    x_at, y_at = lanes
    steps = np.arange(int(counts.max(initial=0)) + CHUNK, dtype=np.int64)
    for c0, c1 in _chunks(ends):
        cnt = counts[c0:c1]
        start = int(ends[c0] - counts[c0])
        m = int(ends[c1 - 1]) - start
        if m == 0:
            continue
        # entry[k]: the old rater of the k-th pair (each run's entries in turn)
        entry = np.repeat(begin[c0:c1] - (ends[c0:c1] - cnt - start), cnt)
        entry += steps[:m]
        index = other[entry]
        index += np.repeat(base[c0:c1], cnt)
        w0 = high[entry]
        w0 *= np.repeat(d1[c0:c1], cnt)
        wy = y_word[entry]
        e0 = d0[c0:c1]
        if (e0 == 1).all():  # new ratings (the common case): d0 = 1
            w0 += 1
        else:
            rep0 = np.repeat(e0, cnt)
            w0 += rep0
            wy *= rep0
        np.add.at(flat, index, w0)
        np.add.at(x_at, index, np.repeat(x_word[c0:c1], cnt))
        np.add.at(y_at, index, wy)


def _among_changed(
    flat: npt.NDArray[np.int64],
    offsets: tuple[IntArray, IntArray],
    *,
    users: IntArray,
    cols: IntArray,
    cells: tuple[IntArray, IntArray, IntArray, IntArray],
) -> None:
    """The cells {x, y} of every pair of changed cells (x, t), (y, t) of one item (x = y: the
    diagonal)."""
    p, q, a, b = cells
    alive = np.flatnonzero((p | q) != 0)  # a cell absent before and after adds nothing
    if alive.size == 0:
        return
    t = cols[alive]
    order = alive[np.argsort(t, kind="stable")]
    sizes = np.bincount(t)
    first = np.cumsum(sizes) - sizes
    per = sizes[cols[order]]  # each cell pairs with every cell of its item (both orders)
    j = np.repeat(order, per)
    starts = np.repeat(first[cols[order]], per)
    k = order[starts + np.arange(j.size) - np.repeat(np.cumsum(per) - per, per)]
    qq = q[j] * q[k]
    pp = p[j] * p[k]
    b_j = b[j]
    a_j = a[j]
    x, y = users[j], users[k]
    row_of, col_of = offsets
    index = row_of[np.maximum(x, y)] + col_of[np.minimum(x, y)]
    # x's lanes [Σx², Σx]: Whi if x > y, Wlo if x < y, both on the diagonal
    own = b_j * b_j * qq - a_j * a_j * pp + ((b_j * qq - a_j * pp) << SHIFT)
    np.add.at(flat, index + 2 - (x > y), own)
    diag = x == y
    np.add.at(flat, index[diag] + 1, own[diag])
    # W0 = [n, Σxy] once per unordered pair: from the order x ≥ y
    top = x >= y
    w0 = (qq - pp) + ((b_j * b[k] - a_j * a[k]) << SHIFT)
    np.add.at(flat, index[top], w0[top])
