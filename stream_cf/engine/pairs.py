"""Additive pair sums over co-rated items, at 16 bytes per ordered pair, and their exact update.

For every ordered pair of user slots (a, b) the store holds, over the items both a and b rated::

    sums[a, b] = [n, Σ r_a, Σ r_a², Σ r_a·r_b]

so that for the pair (u, v): n = sums[u,v,0], Σx = sums[u,v,1], Σy = sums[v,u,1],
Σx² = sums[u,v,2], Σy² = sums[v,u,2], Σxy = sums[u,v,3].

Storage: square tiles of :data:`TILE` × :data:`TILE` user slots, allocated as users appear (so
growing never copies what is there: no batch stalls because the arrays grew), each cell four
int32 **integer** sums of the values scaled by s = 2 (n, Σ 2r, Σ (2r)², Σ (2r_a)(2r_b)): exact,
16 bytes per ordered pair, while every value stored is a multiple of 0.5 and the largest
possible sum stays below 2^31 (n_max·(2·|r|_max)² < 2^31: with ratings up to 5, users of up to
21 million items). Once a value is not on that grid, or the bound would be passed, the store
turns into float64 sums of the values themselves (32 bytes per ordered pair; rounding as any
float sum), for good. Tiles are zero pages until written, so a user slot costs only the rows
and columns in use. The int32 tiles are views of one reservation of address space
(:class:`~stream_cf.engine.storage.Reservation`), tile (bi, bj) at tile number bi·:data:`SIDE` + bj,
so every cell has a fixed flat address (:class:`~stream_cf.engine.scatter.Layout`); past
:data:`SIDE` tiles per side, in float mode or where the reservation is refused, tiles are plain
arrays and the pair-by-pair update is off.

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
from stream_cf.engine.scatter import PACKED, Layout, scatter_cell, scatter_update
from stream_cf.engine.storage import BoolArray, FloatArray, IntArray, Reservation

TILE = 512  # user slots per side of a tile (int32 tiles of 4 MB, float64 of 8 MB)
INT_LIMIT = 2**31 - 1
SCALE = 2.0  # integer sums are of 2·value
SIDE = 128  # int32 tiles per side of the reservation (64 GiB of address space: 65,536 users)


_INT_UNITS = np.array([1.0, 1.0 / SCALE, 1.0 / SCALE**2, 1.0 / SCALE**2])
_FLOAT_UNITS = np.ones(4)
_TWO_WORDS = np.arange(2, dtype=np.int64)  # a cell's two int64 words: (n, Σx), (Σx², Σxy)


def _tile_words() -> int:
    """int64 words of an int32 tile (two per cell)."""
    return TILE * TILE * 2


class PairSums:
    """The pair sums in tiles (see the module docstring), int32 scaled or float64."""

    def __init__(self) -> None:
        self.tiles: list[list[npt.NDArray[Any]]] = []
        self.integer = True  # int32 sums of 2·value (else float64 sums of the values)
        # int32 tiles live in one reservation, tile (bi, bj) at tile number bi·SIDE + bj, so
        # the pair-by-pair update addresses every cell by one flat index (scatter.Layout);
        # flat_ok turns False once a tile could not go there (float mode, past SIDE tiles)
        self.space: Reservation | None = None
        self.flat_ok = PACKED
        self._flat: tuple[Reservation, npt.NDArray[np.int64]] | None = None  # flat()'s view

    @property
    def blocks(self) -> int:
        return len(self.tiles)

    @property
    def cell_bytes(self) -> int:
        return 16 if self.integer else 32

    @property
    def nbytes(self) -> int:
        """Bytes allocated for tiles (virtual: untouched pages of a tile take no memory)."""
        return self.blocks * self.blocks * TILE * TILE * self.cell_bytes

    def _tile(self, bi: int, bj: int) -> npt.NDArray[Any]:
        """A new zero tile for block (bi, bj): the next one of the reservation if it can be."""
        if self.integer and self.flat_ok:
            if self.space is None:
                self.space = Reservation.create(SIDE * SIDE * _tile_words() * 8)
            if self.space is not None and bi < SIDE and bj < SIDE:
                at = (bi * SIDE + bj) * _tile_words() * 8
                words = np.frombuffer(self.space, dtype=np.int64, count=_tile_words(), offset=at)
                return words.view(np.int32).reshape(TILE, TILE, 4)
            self.flat_ok = False
        return np.zeros((TILE, TILE, 4), dtype=np.int32 if self.integer else np.float64)

    def ensure(self, n_users: int) -> None:
        """Tiles for user slots [0, n_users) (new ones zero)."""
        need = -(-n_users // TILE)
        while self.blocks < need:
            b = self.blocks
            for bi, row in enumerate(self.tiles):
                row.append(self._tile(bi, b))
            self.tiles.append([self._tile(b, bj) for bj in range(b + 1)])

    @property
    def scatter_ready(self) -> bool:
        """Whether the pair-by-pair update can address every tile (int32, one reservation)."""
        return self.integer and self.flat_ok and self.space is not None

    def flat(self) -> npt.NDArray[np.int64]:
        """The reservation as int64 words (two per cell, placed by :meth:`layout`)."""
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
        """Per channel, the stored unit in rating units (int32: 1, 1/2, 1/4, 1/4)."""
        return (_INT_UNITS if self.integer else _FLOAT_UNITS).copy()

    def to_float(self) -> None:
        """Turn the int32 sums into float64 sums of the values (for good)."""
        if not self.integer:
            return
        units = self.units()
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
    def row(self, u: int, n: int) -> FloatArray:
        """sums[u, :n] in rating units, float64 (n x 4)."""
        bu, ul = divmod(u, TILE)
        parts = [self.tiles[bu][bj][ul] for bj in range(-(-n // TILE))]
        out: FloatArray = np.concatenate(parts)[:n].astype(np.float64) * self.units()
        return out

    def col(self, u: int, n: int) -> FloatArray:
        """sums[:n, u] in rating units, float64 (n x 4)."""
        bu, ul = divmod(u, TILE)
        parts = [self.tiles[bi][bu][:, ul] for bi in range(-(-n // TILE))]
        out: FloatArray = np.concatenate(parts)[:n].astype(np.float64) * self.units()
        return out

    def row_at(self, u: int, slots: IntArray) -> FloatArray:
        """sums[u, slots] in rating units, float64 (len(slots) x 4): :meth:`row`'s values at
        ``slots``, read from the tiles that hold them only."""
        return self._at(u, slots, along_row=True)

    def col_at(self, u: int, slots: IntArray) -> FloatArray:
        """sums[slots, u] in rating units, float64 (len(slots) x 4): :meth:`col` at ``slots``."""
        return self._at(u, slots, along_row=False)

    def sums_at(self, u: int, slots: IntArray) -> tuple[FloatArray, FloatArray]:
        """(:meth:`row_at`, :meth:`col_at`) of u at ``slots``: with int32 sums in the
        reservation, one gather of the two cells of each pair (a cell's four int32 sums are
        two int64 words at a flat address, :class:`~stream_cf.engine.scatter.Layout`)."""
        if not self.scatter_ready:
            return self.row_at(u, slots), self.col_at(u, slots)
        tile = TILE
        block, local = np.divmod(slots, tile)
        word = np.empty((2, slots.size), dtype=np.int64)
        # row(u) + col(v), then row(v) + col(u) (Layout.row, Layout.col, Layout.cell)
        bu, ul = divmod(u, tile)
        np.multiply(block, 2 * tile * tile, out=word[0])
        word[0] += local * 2 + 2 * (bu * SIDE * tile * tile + ul * tile)
        np.multiply(block, 2 * SIDE * tile * tile, out=word[1])
        word[1] += local * (2 * tile) + 2 * (bu * tile * tile + ul)
        words = self.flat()[word[:, :, None] + _TWO_WORDS]
        both: FloatArray = words.view(np.int32).astype(np.float64) * _INT_UNITS
        return both[0], both[1]

    def _at(self, u: int, slots: IntArray, *, along_row: bool) -> FloatArray:
        bu, ul = divmod(u, TILE)
        stored = np.zeros((slots.size, 4), dtype=self.tiles[0][0].dtype if self.tiles else np.int32)
        if slots.size:
            block = slots // TILE
            first, last = int(block.min()), int(block.max())
            for b in range(first, last + 1):
                line = self.tiles[bu][b][ul] if along_row else self.tiles[b][bu][:, ul]
                if first == last:
                    stored = line[slots - b * TILE]
                    break
                pick = block == b
                if pick.any():
                    stored[pick] = line[slots[pick] - b * TILE]
        out: FloatArray = stored.astype(np.float64) * self.units()
        return out

    def block(self, lo: int, hi: int, n: int) -> npt.NDArray[Any]:
        """sums[lo:hi, :n] as stored (rows within one tile row)."""
        bi, off = divmod(lo, TILE)
        parts = [self.tiles[bi][bj][off : off + hi - lo] for bj in range(-(-n // TILE))]
        return np.concatenate(parts, axis=1)[:, :n]

    def dense(self, n: int) -> npt.NDArray[Any]:
        """sums[:n, :n] as stored, one array (n x n x 4: for checkpoints of float sums and
        tests; users² memory)."""
        if n == 0:
            return np.zeros((0, 0, 4), dtype=self.tiles[0][0].dtype if self.tiles else np.int32)
        return np.concatenate([self.block(lo, min(lo + TILE, n), n) for lo in range(0, n, TILE)])

    # ------------------------------------------------------------------ writes
    def clear(self, slot: int) -> None:
        """Zero a released slot's row and column (no residue may survive a user's erasure)."""
        bu, ul = divmod(slot, TILE)
        for b in range(self.blocks):
            self.tiles[bu][b][ul] = 0
            self.tiles[b][bu][:, ul] = 0

    def set_rows(self, lo: int, block: npt.NDArray[Any]) -> None:
        """Write whole rows sums[lo : lo + len(block), :width] from stored units (a rebuild)."""
        rows, width = int(block.shape[0]), int(block.shape[1])
        for start in range(0, rows, TILE):
            r0 = lo + start
            bi, off = divmod(r0, TILE)
            count = min(rows - start, TILE - off)
            for bj in range(-(-width // TILE)):
                c0 = bj * TILE
                c1 = min(c0 + TILE, width)
                self.tiles[bi][bj][off : off + count, : c1 - c0] = block[
                    start : start + count, c0:c1
                ]

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
        a, b: old/new value of x), the row of x gains [d0, d1, d2, d1·y] and the column of x
        gains [d0, y·d0, y²·d0, y·d1] for each other rater with value y; the diagonal gains
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
                self.flat(), self.layout(), x, others=others, other_twice=twice, change=change
            )
            return
        p = 0.0 if old is None else 1.0
        q = 0.0 if new is None else 1.0
        a = 0.0 if old is None else old
        b = 0.0 if new is None else new
        d0 = q - p
        d1 = b * q - a * p
        d2 = b * b * q - a * a * p
        bx, xl = divmod(x, TILE)
        self.tiles[bx][bx][xl, xl] += self._stored(np.array([[d0, d1, d2, d2]]))[0]
        if others.size == 0:
            return
        y = other_values
        both = np.empty((2, others.size, 4), dtype=np.float64)  # x's row, then x's column
        both[0, :, 0] = d0
        both[0, :, 1] = d1
        both[0, :, 2] = d2
        np.multiply(y, d1, out=both[0, :, 3])
        both[1, :, 0] = d0
        np.multiply(y, d0, out=both[1, :, 1])
        np.multiply(y, y, out=both[1, :, 2])
        both[1, :, 2] *= d0
        both[1, :, 3] = both[0, :, 3]
        stored = self._stored(both)
        block = others // TILE
        first, last = int(block.min()), int(block.max())
        for b_ in range(first, last + 1):
            if first == last:
                local, row_s, col_s = others - b_ * TILE, stored[0], stored[1]
            else:
                pick = block == b_
                if not pick.any():
                    continue
                local, row_s, col_s = others[pick] - b_ * TILE, stored[0, pick], stored[1, pick]
            self.tiles[bx][b_][xl, local] += row_s
            self.tiles[b_][bx][local, xl] += col_s

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
        """:meth:`add` with the deltas already in stored units."""
        block_of = users // TILE
        for bx in np.unique(block_of).tolist():
            pick = np.flatnonzero(block_of == bx)
            local = users[pick] - bx * TILE
            for b in range(-(-n_users // TILE)):
                c0 = b * TILE
                c1 = min(c0 + TILE, n_users)
                self.tiles[bx][b][local, : c1 - c0] += stored_rows[pick, c0:c1]
                self.tiles[b][bx][: c1 - c0, local] += stored_cols[c0:c1][:, pick]

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
        (``where``: position among the touched items, ascending; rater slot; value), the
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
