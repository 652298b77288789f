"""Additive pair sums over co-rated items, one cell per unordered pair of users, and their exact
update.

For every ordered pair of user slots (a, b) the sums over the items both a and b rated are::

    sums[a, b] = [n, Σ r_a, Σ r_a², Σ r_a·r_b]

so that for the pair (u, v): n = sums[u,v,0], Σx = sums[u,v,1], Σy = sums[v,u,1],
Σx² = sums[u,v,2], Σy² = sums[v,u,2], Σxy = sums[u,v,3]. n and Σ r_a·r_b are the same for (a, b)
and (b, a), so the store keeps each unordered pair {hi, lo} (hi ≥ lo) once, as one cell of six
lanes::

    [n, Σ r_hi·r_lo, Σ r_hi², Σ r_hi, Σ r_lo², Σ r_lo]

(:data:`AS_HI`: the lanes of sums[hi, lo]; :data:`AS_LO`: of sums[lo, hi]; the diagonal cell
{u, u} holds u's own sums in both halves). A user's row of the sums is its cells with older
users (smaller slots: the row part) and with newer ones (the column part).

Storage: the lower triangle of square tiles of :data:`TILE` × :data:`TILE` user slots (tile
(bi, bj) for bj ≤ bi, cell {hi, lo} in tile (hi div TILE, lo div TILE) at (hi mod TILE,
lo mod TILE)), allocated as users appear (so growing never copies what is there: no batch stalls
because the arrays grew), each lane an int32 **integer** sum of the values scaled by s = 2
(n, Σ (2r_a)(2r_b), Σ (2r)², Σ 2r, ...): exact, 24 bytes per unordered pair (12 per ordered
pair), while every value stored is a multiple of 0.5 and the largest possible sum stays below
2^31 (n_max·(2·|r|_max)² < 2^31: with ratings up to 5, users of up to 21 million items). Once a
value is not on that grid, or the bound would be passed, the store turns into float64 sums of
the values themselves (48 bytes per unordered pair; rounding as any float sum), for good. Tiles
are zero pages until written, so a user slot costs only the rows and columns in use. The int32
tiles are views of one reservation of address space
(:class:`~stream_cf.engine.storage.Reservation`), tile (bi, bj) at tile number bi·:data:`SIDE` +
bj, so every cell has a fixed flat address (:class:`~stream_cf.engine.scatter.Layout`); past
:data:`SIDE` tiles per side, in float mode or where the reservation is refused, tiles are plain
arrays and the pair-by-pair update is off.

Reads and writes outside the pair-by-pair update speak the ordered sums (:meth:`PairSums.row`,
:meth:`~PairSums.col`, :meth:`~PairSums.block`, :meth:`~PairSums.set_rows`,
:meth:`~PairSums.add_stored`: [n, Σx, Σx², Σxy] per ordered pair) and map them onto the cells.

Updates: one changed cell at a time (:meth:`PairSums.update_cell`), pair by pair for a batch
(:meth:`PairSums.update_scatter`, :mod:`~stream_cf.engine.scatter`: work ∝ the pairs that change),
or by blocks (:meth:`PairSums.update_block`: work ∝ changed users × all users); the caller picks.
Every sum is additive over items, so a change of one item's column is an exact block update: with
old values a (mask p) and new values b (mask q) over the union U of old and new raters, and
C ⊆ U the users whose cell changed, the change f(b_x,b_y)·q_x·q_y − f(a_x,a_y)·p_x·p_y (f the
4-vector above) is non-zero only on rows or columns in C; taking a rating back restores the sums
exactly.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from stream_cf.engine.products import (
    Cells,
    products_by_user,
    products_dense,
    shared_items,
)
from stream_cf.engine.scatter import PACKED, WORDS, Layout, scatter_cell, scatter_update
from stream_cf.engine.storage import BoolArray, FloatArray, IntArray, Reservation

TILE = 512  # user slots per side of a tile (int32 tiles of 6 MB, float64 of 12 MB)
INT_LIMIT = 2**31 - 1
SCALE = 2.0  # integer sums are of 2·value
SIDE = 128  # tiles per side of the reservation (96 GiB of address space: 65,536 users)
LANES = 6  # n, Σxy, Σhi², Σhi, Σlo², Σlo
AS_HI = [0, 3, 2, 1]  # the lanes of sums[hi, lo] (n, Σx, Σx², Σxy)
AS_LO = [0, 5, 4, 1]  # the lanes of sums[lo, hi]
MIRROR = [0, 1, 4, 5, 2, 3]  # a cell's lanes with hi and lo swapped
SHARED = slice(0, 2)  # n, Σxy
HI = slice(2, 4)  # Σhi², Σhi
LO = slice(4, 6)  # Σlo², Σlo
LANE_UNITS = np.array([1.0, 1.0 / SCALE**2, 1.0 / SCALE**2, 1.0 / SCALE, 1.0 / SCALE**2, 1 / SCALE])


_INT_UNITS = np.array([1.0, 1.0 / SCALE, 1.0 / SCALE**2, 1.0 / SCALE**2])
_FLOAT_UNITS = np.ones(4)
# sums[u, v] then sums[v, u] from a cell's lanes in u's orientation (n, Σxy, Σu², Σu, Σv², Σv)
_BOTH_VIEWS = np.array(AS_HI + AS_LO)
_BOTH_UNITS = np.concatenate((_INT_UNITS, _INT_UNITS))


def _tile_words() -> int:
    """int64 words of an int32 tile (three per cell)."""
    return TILE * TILE * WORDS


def _as_lanes(ordered: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Ordered sums [n, Σx, Σx², Σxy] (last axis) as the lanes [n, Σxy, Σx², Σx] of the cell
    half they fill (their own half: lanes 0-3 where x is hi; lanes 2-3 go to lanes 4-5 where x
    is lo)."""
    return ordered[..., AS_HI]


class PairSums:
    """The pair sums in lower-triangle tiles of cells (see the module docstring), int32 scaled
    or float64."""

    def __init__(self) -> None:
        self.tiles: list[list[npt.NDArray[Any]]] = []  # row bi holds tiles (bi, 0..bi)
        self.integer = True  # int32 sums of 2·value (else float64 sums of the values)
        # int32 tiles live in one reservation, tile (bi, bj) at tile number bi·SIDE + bj, so
        # the pair-by-pair update addresses every cell by one flat index (scatter.Layout);
        # flat_ok turns False once a tile could not go there (float mode, past SIDE tiles)
        self.space: Reservation | None = None
        self.flat_ok = PACKED
        self._flat: tuple[Reservation, npt.NDArray[np.int64]] | None = None  # flat()'s view
        # per slot v, the words of cell {u, v} for u ≥ v less row(u) and for u < v less col(u),
        # u's word second (sums_at); grown with the tiles
        self._words_of: tuple[IntArray, IntArray] | None = None

    @property
    def blocks(self) -> int:
        return len(self.tiles)

    @property
    def cell_bytes(self) -> int:
        """Bytes per unordered pair."""
        return LANES * (4 if self.integer else 8)

    @property
    def nbytes(self) -> int:
        """Bytes allocated for tiles (virtual: untouched pages of a tile take no memory)."""
        return self.blocks * (self.blocks + 1) // 2 * TILE * TILE * self.cell_bytes

    def _tile(self, bi: int, bj: int) -> npt.NDArray[Any]:
        """A new zero tile for block (bi, bj): the next one of the reservation if it can be."""
        if self.integer and self.flat_ok:
            if self.space is None:
                self.space = Reservation.create(SIDE * SIDE * _tile_words() * 8)
            if self.space is not None and bi < SIDE and bj < SIDE:
                at = (bi * SIDE + bj) * _tile_words() * 8
                words = np.frombuffer(self.space, dtype=np.int64, count=_tile_words(), offset=at)
                return words.view(np.int32).reshape(TILE, TILE, LANES)
            self.flat_ok = False
        return np.zeros((TILE, TILE, LANES), dtype=np.int32 if self.integer else np.float64)

    def ensure(self, n_users: int) -> None:
        """Tiles for user slots [0, n_users) (new ones zero)."""
        need = -(-n_users // TILE)
        while self.blocks < need:
            b = self.blocks
            self.tiles.append([self._tile(b, bj) for bj in range(b + 1)])

    @property
    def scatter_ready(self) -> bool:
        """Whether the pair-by-pair update can address every tile (int32, one reservation)."""
        return self.integer and self.flat_ok and self.space is not None

    def flat(self) -> npt.NDArray[np.int64]:
        """The reservation as int64 words (three per cell, placed by :meth:`layout`)."""
        assert self.space is not None
        held = self._flat
        if held is None or held[0] is not self.space:  # one view per reservation
            held = (
                self.space,
                np.frombuffer(self.space, dtype=np.int64, count=SIDE * SIDE * _tile_words()),
            )
            self._flat = held
        return held[1]

    def layout(self) -> Layout:
        return Layout(tile=TILE, side=SIDE)

    def units(self) -> FloatArray:
        """Per ordered channel, the stored unit in rating units (int32: 1, 1/2, 1/4, 1/4)."""
        return (_INT_UNITS if self.integer else _FLOAT_UNITS).copy()

    def lane_units(self) -> FloatArray:
        """Per lane of a cell, the stored unit in rating units."""
        return LANE_UNITS.copy() if self.integer else np.ones(LANES)

    def to_float(self) -> None:
        """Turn the int32 sums into float64 sums of the values (for good)."""
        if not self.integer:
            return
        units = self.lane_units()
        self.tiles = [[tile.astype(np.float64) * units for tile in row] for row in self.tiles]
        self.integer = False
        self.space = None  # unmapped once the last int32 view is gone
        self._flat = None
        self.flat_ok = False

    def fits(self, max_count: int, value_bound: float) -> bool:
        """Whether int32 holds every sum of users with at most ``max_count`` items whose values
        are multiples of 0.5 within ±``value_bound`` (inf: off the grid)."""
        return bool(max_count * (SCALE * value_bound) ** 2 < INT_LIMIT)

    # ------------------------------------------------------------------ reads
    def _view(self, u: int, n: int) -> npt.NDArray[Any]:
        """u's cells with slots [0, n) as stored, in u's orientation (n x 6: n, Σxy, Σu², Σu,
        Σv², Σv): the row part (v ≤ u) as it is, the column part (v > u) mirrored."""
        bu, ul = divmod(u, TILE)
        blocks = -(-n // TILE)
        dtype = np.int32 if self.integer else np.float64
        out = np.empty((blocks * TILE, LANES), dtype=dtype)
        for bv in range(blocks):
            seg = out[bv * TILE : (bv + 1) * TILE]
            if bv < bu:
                seg[:] = self.tiles[bu][bv][ul]
            elif bv > bu:
                seg[:] = self.tiles[bv][bu][:, ul][:, MIRROR]
            else:
                tile = self.tiles[bu][bu]
                seg[: ul + 1] = tile[ul, : ul + 1]
                seg[ul + 1 :] = tile[ul + 1 :, ul][:, MIRROR]
        return out[:n]

    def sums_row(self, u: int, n: int) -> FloatArray:
        """u's sums with every slot in [0, n), in rating units (n x 6: n, Σx, Σy, Σx², Σy², Σxy;
        x: u's values, y: the other user's)."""
        view = self._view(u, n)
        out: FloatArray = view[:, [0, 3, 5, 2, 4, 1]] * self.lane_units()[[0, 3, 5, 2, 4, 1]]
        return out

    def row(self, u: int, n: int) -> FloatArray:
        """sums[u, :n] in rating units, float64 (n x 4)."""
        out: FloatArray = self._view(u, n)[:, AS_HI] * self.units()
        return out

    def col(self, u: int, n: int) -> FloatArray:
        """sums[:n, u] in rating units, float64 (n x 4)."""
        out: FloatArray = self._view(u, n)[:, AS_LO] * self.units()
        return out

    def row_at(self, u: int, slots: IntArray) -> FloatArray:
        """sums[u, slots] in rating units, float64 (len(slots) x 4): :meth:`row`'s values at
        ``slots``, read from the cells of those pairs only."""
        out: FloatArray = self._cells_at(u, slots)[:, AS_HI] * self.units()
        return out

    def col_at(self, u: int, slots: IntArray) -> FloatArray:
        """sums[slots, u] in rating units, float64 (len(slots) x 4): :meth:`col` at ``slots``."""
        out: FloatArray = self._cells_at(u, slots)[:, AS_LO] * self.units()
        return out

    def sums_at(self, u: int, slots: IntArray) -> tuple[FloatArray, FloatArray]:
        """(:meth:`row_at`, :meth:`col_at`) of u at ``slots``: the one cell of each pair read
        once (with int32 sums in the reservation, :meth:`lanes_at`)."""
        if not self.scatter_ready:
            cells = self._cells_at(u, slots)
            return cells[:, AS_HI] * self.units(), cells[:, AS_LO] * self.units()
        both: FloatArray = self.lanes_at(u, slots)[:, _BOTH_VIEWS] * _BOTH_UNITS
        return both[:, :4], both[:, 4:]

    def lanes_at(self, u: int, slots: IntArray) -> npt.NDArray[np.int32]:
        """u's cells with ``slots`` as stored (int32 sums in the reservation only), in u's
        orientation (len(slots) x 6: n, Σxy, Σu², Σu, Σv², Σv): one gather of each cell's three
        int64 words at their flat addresses (:class:`~stream_cf.engine.scatter.Layout`), u's own
        word (Whi where u is the higher slot, else Wlo) second."""
        v_lo, v_hi = self.word_tables()
        layout = self.layout()
        index = np.where(
            (slots <= u)[:, None],  # {u, v} in u's row (u hi), else in v's row
            v_lo[slots] + layout.cell(u, 0),
            v_hi[slots] + layout.cell(0, u),
        )
        lanes: npt.NDArray[np.int32] = self.flat()[index].view(np.int32)
        return lanes

    def word_tables(self) -> tuple[IntArray, IntArray]:
        """Per slot v (x 3): col(v) + (0, 1, 2), the words W0, Whi, Wlo of cell {u, v} less
        row(u) for u ≥ v, and row(v) + (0, 2, 1), W0, Wlo, Whi of cell {v, u} less col(u) for
        u < v (:class:`~stream_cf.engine.scatter.Layout`): u's word second either way. Kept for
        every slot of the tiles (48 bytes per slot)."""
        held = self._words_of
        width = self.blocks * TILE
        if held is None or held[0].shape[0] < width:
            layout = self.layout()
            every = np.arange(width, dtype=np.int64)
            held = (
                layout.col(every)[:, None] + np.array([0, 1, 2], dtype=np.int64),
                layout.row(every)[:, None] + np.array([0, 2, 1], dtype=np.int64),
            )
            self._words_of = held
        return held

    def _cells_at(self, u: int, slots: IntArray) -> npt.NDArray[Any]:
        """u's cells with ``slots`` as stored, in u's orientation (len(slots) x 6: n, Σxy, Σu²,
        Σu, Σv², Σv; :meth:`_view` at ``slots``), read tile by tile."""
        bu, ul = divmod(u, TILE)
        dtype = np.int32 if self.integer else np.float64
        out = np.empty((slots.size, LANES), dtype=dtype)
        if slots.size == 0:
            return out
        block, local = np.divmod(slots, TILE)
        for b in np.unique(block).tolist():
            pick = np.flatnonzero(block == b)
            vl = local[pick]
            if b < bu:
                out[pick] = self.tiles[bu][b][ul, vl]
            elif b > bu:
                out[pick] = self.tiles[b][bu][vl, ul][:, MIRROR]
            else:
                tile = self.tiles[bu][bu]
                hi = vl <= ul
                out[pick[hi]] = tile[ul, vl[hi]]
                out[pick[~hi]] = tile[vl[~hi], ul][:, MIRROR]
        return out

    def block(self, lo: int, hi: int, n: int) -> npt.NDArray[Any]:
        """sums[lo:hi, :n] as stored (rows within one tile row)."""
        bi, off = divmod(lo, TILE)
        rows = slice(off, off + hi - lo)
        parts = []
        for bj in range(-(-n // TILE)):
            if bj < bi:
                part = self.tiles[bi][bj][rows][..., AS_HI]
            elif bj > bi:
                part = self.tiles[bj][bi][:, rows][..., AS_LO].transpose(1, 0, 2)
            else:
                tile = self.tiles[bi][bi]
                older = np.arange(TILE)[None, :] <= np.arange(off, off + hi - lo)[:, None]
                part = np.where(
                    older[..., None],
                    tile[rows][..., AS_HI],
                    tile[:, rows][..., AS_LO].transpose(1, 0, 2),
                )
            parts.append(part)
        return np.concatenate(parts, axis=1)[:, :n]

    def dense(self, n: int) -> npt.NDArray[Any]:
        """sums[:n, :n] as stored, one array (n x n x 4: for checkpoints of float sums and
        tests; users² memory)."""
        if n == 0:
            return np.zeros((0, 0, 4), dtype=np.int32 if self.integer else np.float64)
        return np.concatenate([self.block(lo, min(lo + TILE, n), n) for lo in range(0, n, TILE)])

    # ------------------------------------------------------------------ writes
    def clear(self, slot: int) -> None:
        """Zero a released slot's cells (no residue may survive a user's erasure)."""
        bu, ul = divmod(slot, TILE)
        for b in range(bu + 1):
            self.tiles[bu][b][ul] = 0
        for b in range(bu, self.blocks):
            self.tiles[b][bu][:, ul] = 0

    def set_rows(self, lo: int, block: npt.NDArray[Any]) -> None:
        """Write whole rows sums[lo : lo + len(block), :width] from stored units (a rebuild):
        each row's own lanes of its cells, and n and Σxy of the cells it is the higher slot of
        (so writing every row fills every cell)."""
        rows, width = int(block.shape[0]), int(block.shape[1])
        block = block.astype(np.int32 if self.integer else np.float64, copy=False)
        start = 0
        while start < rows:  # the rows within one tile row at a time
            bi, off = divmod(lo + start, TILE)
            count = min(rows - start, TILE - off)
            start += count
            part = block[start - count : start]
            for bj in range(-(-width // TILE)):
                c0 = bj * TILE
                self._set_part(bi, bj, off, part[:, c0 : min(c0 + TILE, width)])

    def _set_part(self, bi: int, bj: int, off: int, part: npt.NDArray[Any]) -> None:
        """:meth:`set_rows` for rows off.. of tile row bi and the columns of tile column bj
        (``part``: rows x columns x 4, ordered, as stored). Lanes are copied one at a time
        (and lane pairs as one int64 word where they can be): numpy's loops over a short last
        axis are slow."""
        count, w = int(part.shape[0]), int(part.shape[1])
        mine = slice(off, off + count)
        older = None  # within the diagonal tile: the row part is v <= u, the column part v >= u
        if bj == bi:
            older = np.arange(w)[None, :] <= np.arange(off, off + count)[:, None]
        if bj <= bi:  # the row part: cells {u, v}, u hi
            cells = self.tiles[bi][bj][mine, :w]
            for lane, channel in enumerate(AS_HI):
                np.copyto(
                    cells[..., lane], part[..., channel], where=True if older is None else older
                )
            if bj < bi:
                return
        # the column part: u's Σ², Σ as the lo lanes of cells {v, u}, copied out row by row
        # first so the transposed write reads from cache
        own = np.empty((count, w, 2), dtype=part.dtype)
        own[..., 0] = part[..., 2]
        own[..., 1] = part[..., 1]
        tile = self.tiles[bj][bi]
        newer = (
            True
            if older is None
            else (np.arange(w)[None, :] >= np.arange(off, off + count)[:, None]).T
        )
        if self.integer and PACKED:  # Wlo as one int64 word
            words = tile.view(np.int64).reshape(TILE, TILE, WORDS)
            np.copyto(words[:w, mine, 2], own.view(np.int64).reshape(count, w).T, where=newer)
        else:
            for lane in range(2):
                np.copyto(tile[:w, mine, 4 + lane], own[..., lane].T, where=newer)

    def _stored(self, delta: FloatArray) -> npt.NDArray[Any]:
        """Deltas in rating units as stored units (exact integers in int32 mode)."""
        if not self.integer:
            return delta
        return np.rint(delta / self.units()).astype(np.int32)

    def update_cell(
        self,
        x: int,
        others: IntArray,
        other_values: FloatArray,
        old: float | None,
        new: float | None,
    ) -> None:
        """Exact update for one changed cell (user ``x``, one item).

        ``others`` are the item's other current raters and ``other_values`` their values (they do
        not change). With d0 = q − p, d1 = b·q − a·p, d2 = b²·q − a²·p (p, q: old/new presence,
        a, b: old/new value of x), sums[x, y] gains [d0, d1, d2, d1·y] and sums[y, x] gains
        [d0, y·d0, y²·d0, y·d1] for each other rater with value y; sums[x, x] gains
        [d0, d1, d2, d2].
        """
        if self.scatter_ready:  # int32 sums of 2·value, flat addresses
            twice_a = 0 if old is None else round(SCALE * old)
            twice_b = 0 if new is None else round(SCALE * new)
            change = (
                (new is not None) - (old is not None),
                twice_b - twice_a,
                twice_b * twice_b - twice_a * twice_a,
            )
            twice = np.rint(SCALE * other_values).astype(np.int64)
            scatter_cell(
                self.flat(),
                self.layout(),
                x,
                others=others,
                other_twice=twice,
                change=change,
                words_of=self.word_tables(),
            )
            return
        p = 0.0 if old is None else 1.0
        q = 0.0 if new is None else 1.0
        a = 0.0 if old is None else old
        b = 0.0 if new is None else new
        d0 = q - p
        d1 = b * q - a * p
        d2 = b * b * q - a * a * p
        y = other_values
        both = np.empty((2, others.size + 1, 4), dtype=np.float64)  # to (x, y), to (y, x)
        both[0, :-1, 0] = d0
        both[0, :-1, 1] = d1
        both[0, :-1, 2] = d2
        np.multiply(y, d1, out=both[0, :-1, 3])
        both[1, :-1, 0] = d0
        np.multiply(y, d0, out=both[1, :-1, 1])
        np.multiply(y, y, out=both[1, :-1, 2])
        both[1, :-1, 2] *= d0
        both[1, :-1, 3] = both[0, :-1, 3]
        both[0, -1] = (d0, d1, d2, d2)  # the diagonal: one contribution to (x, x)
        both[1, -1] = 0.0
        stored = self._stored(both)
        self._add_one(x, np.append(others, x), stored[0], stored[1])

    def _add_one(
        self, x: int, others: IntArray, to_row: npt.NDArray[Any], to_col: npt.NDArray[Any]
    ) -> None:
        """sums[x, others] += to_row and sums[others, x] += to_col (stored units, ordered
        channels; ``others`` distinct, x may be among them: its two parts both go to the
        diagonal cell), written into the cells."""
        bx, xl = divmod(x, TILE)
        block = others // TILE
        local = others - block * TILE
        row_lanes = _as_lanes(to_row)
        col_lanes = _as_lanes(to_col)
        older = others < x
        newer = others > x
        for b in np.unique(block[older]).tolist():  # cells {x, v} in x's row: x hi
            k = np.flatnonzero(older & (block == b))
            tile = self.tiles[bx][b]
            tile[xl, local[k], 0:4] += row_lanes[k]
            tile[xl, local[k], LO] += col_lanes[k, 2:4]
        for b in np.unique(block[newer]).tolist():  # cells {v, x} in x's column: x lo
            k = np.flatnonzero(newer & (block == b))
            tile = self.tiles[b][bx]
            tile[local[k], xl, 0:4] += col_lanes[k]
            tile[local[k], xl, LO] += row_lanes[k, 2:4]
        same = np.flatnonzero(others == x)
        if same.size:  # the diagonal cell: both contributions, its two halves alike
            diag = row_lanes[same[0]] + col_lanes[same[0]]
            tile = self.tiles[bx][bx]
            tile[xl, xl, 0:4] += diag
            tile[xl, xl, LO] += diag[2:4]

    def _scaled(self, part: npt.NDArray[Any], factor: float) -> npt.NDArray[Any]:
        """A product channel in stored units (int32 mode: an exact integer, rounded to be safe)."""
        if not self.integer:
            return part
        out = part * np.float32(factor) if part.dtype == np.float32 else part * factor
        return np.rint(out, out=out)

    def add(self, users: IntArray, n_users: int, rows: FloatArray, cols: FloatArray) -> None:
        """sums[users, :n_users] += rows and sums[:n_users, users] += cols (users distinct;
        rows: len(users) x n_users x 4, cols: n_users x len(users) x 4, rating units)."""
        self.add_stored(users, n_users, self._stored(rows), self._stored(cols))

    def add_stored(
        self,
        users: IntArray,
        n_users: int,
        stored_rows: npt.NDArray[Any],
        stored_cols: npt.NDArray[Any],
    ) -> None:
        """:meth:`add` with the deltas already in stored units.

        Each entry is a contribution to one ordered pair: stored_rows[i, v] to (x, v) and
        stored_cols[v, i] to (v, x), x = users[i]. The cell {hi, lo} takes n and Σxy from the
        contributions to (hi, lo) and each user's own lanes from those to (that user, the
        other) (the contributions to (lo, hi)'s n and Σxy are the same sums again, as the
        stores of both orders always agree)."""
        rows = _as_lanes(stored_rows)  # (x, v): n, Σxy, Σx², Σx
        cols = _as_lanes(stored_cols)  # (v, x): n, Σxy, Σv², Σv
        block_of = users // TILE
        for bx in np.unique(block_of).tolist():
            pick = np.flatnonzero(block_of == bx)
            local = users[pick] - bx * TILE
            for b in range(-(-n_users // TILE)):
                c0 = b * TILE
                w = min(c0 + TILE, n_users) - c0
                mine = rows[pick, c0 : c0 + w]  # k x w x 4
                theirs = cols[c0 : c0 + w][:, pick]  # w x k x 4
                if b < bx:  # cells {x, v} in x's row part
                    tile = self.tiles[bx][b]
                    tile[local, :w, 0:4] += mine
                    tile[local, :w, LO] += theirs[..., 2:4].transpose(1, 0, 2)
                elif b > bx:  # cells {v, x} in x's column part
                    tile = self.tiles[b][bx]
                    tile[:w, local, 0:4] += theirs
                    tile[:w, local, LO] += mine[..., 2:4].transpose(1, 0, 2)
                else:
                    self._add_diagonal_tile(bx, local, mine, theirs)

    def _add_diagonal_tile(
        self,
        b: int,
        local: IntArray,
        mine: npt.NDArray[Any],
        theirs: npt.NDArray[Any],
    ) -> None:
        """:meth:`add_stored` within the diagonal tile (b, b): per changed x (``local``), its
        row part (v < x), its column part (v > x) and the diagonal cell. A cell both of whose
        users changed gets two terms per lane, the contribution of a row (``mine``) before the
        one of a column (``theirs``), as everywhere in a tile (float sums: the same bits)."""
        tile = self.tiles[b][b]
        w = int(mine.shape[1])
        for i, xl in enumerate(local.tolist()):  # the rows' contributions
            tile[xl, :xl, 0:4] += mine[i, :xl]  # to (x, v < x): x hi
            tile[xl + 1 : w, xl, LO] += mine[i, xl + 1 : w, 2:4]  # to (x, v > x): x lo
            tile[xl, xl, 0:4] += mine[i, xl]
            tile[xl, xl, LO] += mine[i, xl, 2:4]
        for i, xl in enumerate(local.tolist()):  # the columns'
            tile[xl + 1 : w, xl, 0:4] += theirs[xl + 1 : w, i]  # to (v > x, x): v hi
            tile[xl, :xl, LO] += theirs[:xl, i, 2:4]  # to (v < x, x): v lo
            tile[xl, xl, 0:4] += theirs[xl, i]
            tile[xl, xl, LO] += theirs[xl, i, 2:4]

    def update_scatter(
        self,
        *,
        cell_users: IntArray,
        cell_cols: IntArray,
        new_values: FloatArray,
        new_present: BoolArray,
        where: IntArray,
        raters: IntArray,
        old_values: FloatArray,
    ) -> None:
        """:meth:`update_block`'s result pair by pair (:mod:`~stream_cf.engine.scatter`), in
        proportion to the pairs that change: for int32 sums in the reservation
        (:attr:`scatter_ready`). The touched items' raters before the batch come as lists
        (``where``: position among the touched items; rater slot; value; in any order), the
        changed cells as for :meth:`update_block`."""
        assert self.scatter_ready
        if cell_users.size == 0:
            return
        scatter_update(
            self.flat(),
            self.layout(),
            cell_users=cell_users,
            cell_cols=cell_cols,
            new_twice=np.rint(SCALE * np.where(new_present, new_values, 0.0)).astype(np.int64),
            new_present=new_present,
            where=where,
            raters=raters,
            old_values=old_values,
        )

    def update_block(
        self,
        *,
        n_users: int,
        cell_users: IntArray,
        cell_cols: IntArray,
        mask_t: BoolArray,
        values_t: npt.NDArray[Any],
        new_values: FloatArray,
        new_present: BoolArray,
        scale: float = 1.0,
        exact32: bool = False,
        raters: IntArray | None = None,
        method: Literal["dense", "by_user", "sparse"] | None = None,
    ) -> None:
        """Exact update for many changed cells at once (a micro-batch), vectorized over items.

        ``mask_t``/``values_t`` are the touched items' rows of the item-major grid before the
        batch (n_touched x n_users; ``values_t`` holds ``scale``·value, 0 where absent: float64,
        float32, or the grid's int8 2·value copy with scale 2); the changed cells are
        (``cell_users[j]``, ``cell_cols[j]``), each once, ``cell_cols`` indexing the touched rows,
        and ``new_values``/``new_present`` their values
        after the batch (0 / False: removed). For a changed cell (x, t) and every y in the union
        of t's old and new raters the row of x gains Δ[x, y] = f(b_x,b_y)q_xq_y − f(a_x,a_y)p_xp_y;
        for every such y whose cell in t did not change the column of x gains Δ[y, x]. Each
        (item, ordered pair) is thus counted once, which equals applying the cells one by one.
        With ``exact32`` (every value a multiple of 0.5, small enough that all products and
        partial sums are exact in float32) the dense products run in float32. ``raters`` (per
        touched row, about how many users rated it before or after) only feeds the choice
        between the dense and the pair-by-pair update (``method`` forces one); by default it is
        counted.
        """
        if cell_users.size == 0:
            return
        changed_users, x_local = np.unique(cell_users, return_inverse=True)
        n_cols = int(mask_t.shape[0])
        p = mask_t[cell_cols, cell_users]
        a = values_t[cell_cols, cell_users].astype(np.float64) / scale
        cells = Cells(
            users=cell_users,
            cols=cell_cols,
            changed=changed_users,
            x_local=x_local,
            p=p.astype(np.float64),
            a=a,
            q=new_present.astype(np.float64),
            b=np.where(new_present, new_values, 0.0),
        )
        # cost model (measured, in ns): products ~0.4 per multiply-add (float64; float32 about
        # half), pairs ~400 each. One product over every changed user and touched item
        # multiplies c x n_touched weights, mostly 0; by user only each user's own items (the
        # cells), at ~4x the cost per multiply-add (small products, gathers) plus ~20 µs per user
        c = int(changed_users.size)
        per_mac = 0.2 if exact32 else 0.4
        dense_cost = per_mac * 6 * c * n_cols * n_users
        by_user_cost = per_mac * 6 * 4 * cell_users.size * n_users + 20_000.0 * c
        by_user = method == "by_user" or (method is None and by_user_cost < dense_cost)
        dense_cost = min(dense_cost, by_user_cost)
        if raters is None:
            union = mask_t.copy()
            union[cell_cols, cell_users] |= new_present
            raters = np.count_nonzero(union, axis=1)
        sparse_cost = 400.0 * float(raters[cell_cols].sum())
        if method in {"dense", "by_user"} or (method is None and dense_cost < sparse_cost):
            dtype = np.float32 if exact32 else np.float64
            self._update_dense(
                n_users,
                cells=cells,
                mask_t=mask_t,
                values_t=values_t,
                scale=scale,
                dtype=dtype,
                by_user=by_user,
            )
        else:
            self._update_sparse(n_users, cells, mask_t, values_t.astype(np.float64) / scale)

    def _update_dense(
        self,
        n_users: int,
        *,
        cells: Cells,
        mask_t: BoolArray,
        values_t: npt.NDArray[Any],
        scale: float,
        dtype: type[np.floating[Any]],
        by_user: bool,
    ) -> None:
        """The block update as matrix products over the touched rows (in ``dtype``), either one
        product per channel over every changed user and touched item or, with ``by_user``, one
        per changed user over that user's items only (see
        :func:`~stream_cf.engine.products.products_by_user`).

        For a user y whose cells did not change, every term reads y's old column: with the
        per-cell weights d0 = q − p, d1 = b − a, d2 = b² − a² (p, q: old/new presence, a, b: old/new
        value, 0 where absent) spread over (changed user x, touched item t), the row of x gains
        [d0, d1, d2] @ M and d1 @ V, and the column of x gains [d0 @ M, d0 @ V, d0 @ V², d1 @ V]
        (M, V: the old mask and values, item-major; n and Σxy are the row's). The entries where
        y is a changed user too are then corrected item by item where both changed a cell
        (:func:`~stream_cf.engine.products.shared_items`). Values come scaled (V = scale·value,
        e.g. the int8 2·value copy) and the weights carry 1/scale: with integer or half ratings
        every product and sum is exact.
        """
        c = int(cells.changed.size)
        d0 = cells.q - cells.p
        d1 = cells.b - cells.a
        weights = np.stack(
            [d0, d1, cells.b * cells.b - cells.a * cells.a, d1 / scale, d0 / scale, d0 / scale**2]
        ).astype(dtype)  # per cell: 3 on M, 2 on V, 1 on V²
        if by_user:
            on_m, on_v, on_v2 = products_by_user(cells, weights, mask_t, values_t, dtype)
        else:
            on_m, on_v, on_v2 = products_dense(cells, weights, mask_t, values_t, dtype)
        # straight into the stored units (int32 integers: every product is exact)
        factor = 1.0 / self.units()
        kind = np.int32 if self.integer else np.float64
        rows = np.empty((c, n_users, 4), dtype=kind)
        cols = np.empty((n_users, c, 4), dtype=kind)
        for ch, (row_part, col_part) in enumerate(
            ((on_m[0], on_m[0]), (on_m[1], on_v[1]), (on_m[2], on_v2[0]), (on_v[0], on_v[0]))
        ):
            rows[:, :, ch] = self._scaled(row_part, factor[ch])
            cols[:, :, ch] = self._scaled(col_part, factor[ch]).T
        fix_rows, fix_cols = shared_items(cells, dtype)
        rows[:, cells.changed] += self._stored(fix_rows)
        cols[cells.changed] += self._stored(fix_cols)
        self.add_stored(cells.changed, n_users, rows, cols)

    def _update_sparse(
        self, n_users: int, cells: Cells, mask_t: BoolArray, values_t: FloatArray
    ) -> None:
        """The block update pair by pair (few changed cells per touched item's raters);
        ``values_t`` holds the old values themselves (float64)."""
        n_changed = int(cells.changed.size)
        n_cols = int(mask_t.shape[0])
        new_mask = mask_t.copy()
        new_mask[cells.cols, cells.users] = cells.q > 0
        new_vals = values_t.copy()
        new_vals[cells.cols, cells.users] = cells.b
        t_of, y_of = np.nonzero(mask_t | new_mask)  # item-major: grouped by touched row
        per_col = np.bincount(t_of, minlength=n_cols)
        starts = np.zeros(n_cols, dtype=np.int64)
        np.cumsum(per_col[:-1], out=starts[1:])
        counts = per_col[cells.cols]
        total = int(counts.sum())
        cell = np.repeat(np.arange(cells.users.size), counts)
        offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        y = y_of[np.repeat(starts[cells.cols], counts) + offsets]
        t = cells.cols[cell]
        xl = cells.x_local[cell]

        # the changed cells' values spread to their pairs, the other side's by flat index
        a_x = cells.a[cell]
        b_x = cells.b[cell]
        p_x = cells.p[cell]
        q_x = cells.q[cell]
        flat = t * n_users + y
        a_y = values_t.ravel().take(flat)
        b_y = new_vals.ravel().take(flat)
        p_y = mask_t.ravel().take(flat)
        q_y = new_mask.ravel().take(flat)

        # rows of the changed users: Δ[x, y] for every y in the union
        qq = q_x * q_y
        pp = p_x * p_y
        size = n_changed * n_users
        index = xl * n_users + y
        rows = np.empty((4, size), dtype=np.float64)
        rows[0] = np.bincount(index, weights=qq - pp, minlength=size)
        rows[1] = np.bincount(index, weights=b_x * qq - a_x * pp, minlength=size)
        rows[2] = np.bincount(index, weights=(b_x * b_x) * qq - (a_x * a_x) * pp, minlength=size)
        rows[3] = np.bincount(index, weights=b_x * b_y - a_x * a_y, minlength=size)
        row_sums = rows.T.reshape(n_changed, n_users, 4)

        # columns of the changed users: Δ[y, x] for every y whose cell did not change
        changed = np.zeros(mask_t.shape, dtype=np.bool_)
        changed[cells.cols, cells.users] = True
        same = ~changed.ravel().take(flat)
        y_s = y[same]
        v_s = a_y[same]
        d0 = (q_x - p_x)[same]
        d1 = (b_x - a_x)[same]
        v_d0 = v_s * d0
        index = y_s * n_changed + xl[same]
        cols = np.empty((4, size), dtype=np.float64)
        cols[0] = np.bincount(index, weights=d0, minlength=size)
        cols[1] = np.bincount(index, weights=v_d0, minlength=size)
        cols[2] = np.bincount(index, weights=v_s * v_d0, minlength=size)
        cols[3] = np.bincount(index, weights=v_s * d1, minlength=size)
        self.add(cells.changed, n_users, row_sums, cols.T.reshape(n_users, n_changed, 4))
