"""Pair sums for the owned users only: one full-width row per owned user, the channels the
similarity reads, updated exactly as :class:`~stream_cf.engine.pairs.PairSums` would.

A scaled-out processor owns a subset O of the users (those whose keys hash to its partitions). It
holds every rating, but reads similarity rows only for owned users, so it keeps, for every owned
u and every user slot v, the sums over the items both rated as the full store would give them::

    n = sums[u,v,0]   Σx = sums[u,v,1]   Σx² = sums[u,v,2]   Σxy = sums[u,v,3]
    Σy = sums[v,u,1]  Σy² = sums[v,u,2]

(channels 0..5 in this order, :data:`N` .. :data:`SYY`), keeping only those the similarity reads
(:func:`channels_for`): pearson and adjusted_cosine all six (24 bytes per pair in int32), msd and
explicit cosine n, Σx², Σxy, Σy² (16 bytes), implicit cosine n and Σxy (8 bytes; its norms come
from the ratings). Units as in the full store: int32 sums of 2·value (n, Σ 2r, Σ (2r)², ...),
float64 sums of the values for good once a value is off the half grid or a sum could pass 2³¹
(:meth:`~stream_cf.engine.pairs.PairSums.fits`, decided by the caller as for the full store).

Layout: owned slot u -> row index ``row_of[u]`` (freed rows are reused, and given back once a
:data:`ROW_STEP` of them is free); per column tile of
:data:`~stream_cf.engine.pairs.TILE` user slots one array (rows x TILE x channels), so a new user
adds a column tile and never copies the rows. Memory: rows x tiles x TILE x channels x 4 bytes,
∝ owned users x all users.

Updates: the full store's delta computation is reused as is (:class:`OwnedPairSums` is a
:class:`~stream_cf.engine.pairs.PairSums` whose writes, :meth:`add_stored` and
:meth:`update_cell`, touch only owned rows). A block's deltas are Δrows (changed x, all y) to add
to sums[x, y] and Δcols (all y, changed x) to add to sums[y, x]; for owned u:

* u changed (index i): row u gains Δrows[i, :] (n, Σx, Σx², Σxy) and Δcols[:, i] (Σy, Σy²);
* every changed v (index j): the entry (u, v) gains Δcols[u, j] (n, Σx, Σx², Σxy) and
  Δrows[j, u] (Σy, Σy²);

an entry with both u and v changed gains both terms, as in the full store, and in float mode in
the full store's order (so the float sums are the same bits too). Reads (:meth:`row`,
:meth:`col`) return the full store's (n x 4) arrays, bit for bit, with NaN in a channel not kept;
col(u)'s n and Σxy are row(u)'s (sums[u, v] for sums[v, u]: equal as numbers; in float mode the
full store's two mirrored Σxy may differ in the last bit, and the similarities read the row's).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from stream_cf.engine.pairs import SCALE, TILE, PairSums
from stream_cf.engine.storage import BoolArray, FloatArray, IntArray

N, SX, SXX, SXY, SY, SYY = range(6)
ALL_CHANNELS = (N, SX, SXX, SXY, SY, SYY)
ROW_STEP = 64  # rows are allocated in steps of this many
_UNITS = np.array([1.0, 1.0 / SCALE, 1.0 / SCALE**2, 1.0 / SCALE**2, 1.0 / SCALE, 1.0 / SCALE**2])
_ROW_READ = (N, SX, SXX, SXY)  # row(u) = sums[u, :]
_COL_READ = (N, SY, SYY, SXY)  # col(u) = sums[:, u] (Σy, Σy² are v's sums)


def channels_for(similarity: str, implicit: bool) -> tuple[int, ...]:
    """The channels a similarity reads (see :mod:`stream_cf.engine.similarity` and
    :func:`~stream_cf.engine.neighbours.similarity_row`; n always, for min_support)."""
    if implicit:
        return (N, SXY)
    if similarity in ("cosine", "msd"):
        return (N, SXX, SXY, SYY)
    return ALL_CHANNELS


class OwnedPairSums(PairSums):
    """The owned users' rows of the pair sums (see the module docstring)."""

    def __init__(self, channels: tuple[int, ...] = ALL_CHANNELS) -> None:
        super().__init__()
        self.channels = tuple(sorted(set(channels)))
        self.cols: list[npt.NDArray[Any]] = []  # per column tile: rows x TILE x channels
        self.row_of: IntArray = np.full(0, -1, dtype=np.int64)  # slot -> row (-1: not owned)
        self.slot_at: IntArray = np.full(0, -1, dtype=np.int64)  # row -> slot (-1: free)
        self.width = 0  # user slots covered (a multiple of TILE)

    # ------------------------------------------------------------------ shape
    @property
    def blocks(self) -> int:
        return len(self.cols)

    @property
    def capacity(self) -> int:
        return int(self.slot_at.size)

    @property
    def cell_bytes(self) -> int:
        return len(self.channels) * (4 if self.integer else 8)

    @property
    def nbytes(self) -> int:
        """Bytes allocated for the rows (capacity x width x channels)."""
        return self.capacity * self.width * self.cell_bytes

    def _dtype(self) -> type[np.generic]:
        return np.int32 if self.integer else np.float64

    def ensure(self, n_users: int) -> None:
        """Columns for user slots [0, n_users) (new tiles zero; the rows are not copied)."""
        while self.width < n_users:
            self.cols.append(np.zeros((self.capacity, TILE, len(self.channels)), self._dtype()))
            self.width += TILE
        if self.row_of.size < self.width:
            grown = np.full(self.width, -1, dtype=np.int64)
            grown[: self.row_of.size] = self.row_of
            self.row_of = grown

    def _grow_rows(self, need: int) -> None:
        """Room for ``need`` rows in all (rounded up to :data:`ROW_STEP`)."""
        if need <= self.capacity:
            return
        cap = -(-need // ROW_STEP) * ROW_STEP
        extra = cap - self.capacity
        self.cols = [
            np.concatenate((tile, np.zeros((extra, *tile.shape[1:]), tile.dtype)))
            for tile in self.cols
        ]
        self.slot_at = np.concatenate((self.slot_at, np.full(extra, -1, dtype=np.int64)))

    def to_float(self) -> None:
        """Turn the int32 sums into float64 sums of the values (for good)."""
        if not self.integer:
            return
        units = _UNITS[list(self.channels)]
        self.cols = [tile.astype(np.float64) * units for tile in self.cols]
        self.integer = False

    def _units(self) -> FloatArray:
        return _UNITS[list(self.channels)] if self.integer else np.ones(len(self.channels))

    # ------------------------------------------------------------------ ownership
    def owns(self, slot: int) -> bool:
        return 0 <= slot < self.row_of.size and bool(self.row_of[slot] >= 0)

    def owned(self) -> IntArray:
        """The owned slots, ascending."""
        return np.flatnonzero(self.row_of >= 0)

    def take_rows(self, slots: IntArray) -> IntArray:
        """Rows for slots not owned yet (freed rows first), zeroed; returns each slot's row."""
        slots = np.asarray(slots, dtype=np.int64)
        free = np.flatnonzero(self.slot_at < 0)
        if free.size < slots.size:
            self._grow_rows(self.capacity + slots.size - free.size)
            free = np.flatnonzero(self.slot_at < 0)
        rows = free[: slots.size]
        self.slot_at[rows] = slots
        self.row_of[slots] = rows
        for tile in self.cols:
            tile[rows] = 0
        return rows

    def set_row_block(self, rows: IntArray, block: npt.NDArray[Any]) -> None:
        """Write whole rows (len(rows) x n x channels, stored units) from column 0."""
        n = int(block.shape[1])
        for b, tile in enumerate(self.cols):
            c0 = b * TILE
            if c0 >= n:
                tile[rows] = 0
                continue
            c1 = min(c0 + TILE, n)
            tile[rows, : c1 - c0] = block[:, c0:c1]
            tile[rows, c1 - c0 :] = 0

    def disown(self, slots: IntArray) -> None:
        """Free the rows of these slots (zeroed; slots not owned are ignored)."""
        slots = np.asarray(slots, dtype=np.int64)
        slots = slots[(slots < self.row_of.size)]
        slots = slots[self.row_of[slots] >= 0]
        if slots.size == 0:
            return
        rows = self.row_of[slots]
        for tile in self.cols:
            tile[rows] = 0
        self.slot_at[rows] = -1
        self.row_of[slots] = -1
        self._release()

    def _release(self) -> None:
        """Give the freed rows back once a whole :data:`ROW_STEP` of them is free: the owned rows
        move to the front (in their order) and the tiles shrink to them, rounded up to the step.
        A scaled-out instance that owned everyone until the others joined keeps its share only."""
        used = np.flatnonzero(self.slot_at >= 0)
        cap = -(-used.size // ROW_STEP) * ROW_STEP
        if self.capacity - cap < ROW_STEP:
            return
        slots = self.slot_at[used]
        for b in range(len(self.cols)):  # one tile at a time: the old one is freed at once
            kept = np.zeros((cap, *self.cols[b].shape[1:]), self.cols[b].dtype)
            kept[: used.size] = self.cols[b][used]
            self.cols[b] = kept
        self.slot_at = np.full(cap, -1, dtype=np.int64)
        self.slot_at[: used.size] = slots
        self.row_of[slots] = np.arange(used.size, dtype=np.int64)

    # ------------------------------------------------------------------ reads
    def _read(self, u: int, n: int, order: tuple[int, ...]) -> FloatArray:
        r = int(self.row_of[u])
        if r < 0:
            raise KeyError(f"user slot {u} is not owned")
        parts = [tile[r] for tile in self.cols[: -(-n // TILE)]]
        stored = np.concatenate(parts)[:n] if parts else np.zeros((0, len(self.channels)))
        out = np.full((n, 4), np.nan)
        units = self._units()
        for k, ch in enumerate(order):
            if ch in self.channels:
                p = self.channels.index(ch)
                out[:, k] = stored[:, p].astype(np.float64) * units[p]
        return out

    def row(self, u: int, n: int) -> FloatArray:
        """sums[u, :n] in rating units (n x 4: n, Σx, Σx², Σxy), u owned."""
        return self._read(u, n, _ROW_READ)

    def col(self, u: int, n: int) -> FloatArray:
        """sums[:n, u] in rating units (n x 4: n, Σy, Σy², Σxy), u owned."""
        return self._read(u, n, _COL_READ)

    def sums_row(self, u: int, n: int) -> FloatArray:
        """u's sums with every slot in [0, n) (n x 6: n, Σx, Σy, Σx², Σy², Σxy), u owned."""
        row, col = self.row(u, n), self.col(u, n)
        return np.stack([row[:, 0], row[:, 1], col[:, 1], row[:, 2], col[:, 2], row[:, 3]], axis=1)

    def sums_at(self, u: int, slots: IntArray) -> tuple[FloatArray, FloatArray]:
        """(:meth:`row_at`, :meth:`col_at`), u owned."""
        return self.row_at(u, slots), self.col_at(u, slots)

    def row_at(self, u: int, slots: IntArray) -> FloatArray:
        """sums[u, slots] (:meth:`row` at ``slots``), u owned."""
        return self.row(u, int(slots.max(initial=-1)) + 1)[slots]

    def col_at(self, u: int, slots: IntArray) -> FloatArray:
        """sums[slots, u] (:meth:`col` at ``slots``), u owned."""
        return self.col(u, int(slots.max(initial=-1)) + 1)[slots]

    def block(self, lo: int, hi: int, n: int) -> npt.NDArray[Any]:
        raise NotImplementedError("owned pair sums hold no full rows of other users")

    def dense(self, n: int) -> npt.NDArray[Any]:
        raise NotImplementedError("owned pair sums hold no full square")

    def set_rows(self, lo: int, block: npt.NDArray[Any]) -> None:
        raise NotImplementedError("owned rows are built by own(), not from a full rebuild")

    # ------------------------------------------------------------------ writes
    def clear(self, slot: int) -> None:
        """A released slot: its row freed (no longer owned) and its column zeroed."""
        if slot >= self.width:
            return
        self.disown(np.array([slot]))
        b, local = divmod(slot, TILE)
        self.cols[b][:, local] = 0

    def _pick(
        self,
        row_part: npt.NDArray[Any],
        col_part: npt.NDArray[Any],
        newer: npt.NDArray[np.bool_] | None = None,
    ) -> npt.NDArray[Any]:
        """Stack the kept channels: n, Σx, Σx², Σxy from ``row_part`` (..., 4: the entry's own
        sums) and Σy, Σy² from ``col_part`` (..., 4: the mirrored entry's); where ``newer``
        (the entry's other user has the higher slot) n and Σxy from ``col_part`` too, as the
        full store keeps them once per pair, from the order (higher slot, lower slot)."""
        parts = []
        for ch in self.channels:
            part = row_part[..., ch] if ch < 4 else col_part[..., ch - 3]
            if newer is not None and ch in (N, SXY):
                part = np.where(newer, col_part[..., ch], part)
            parts.append(part)
        return np.stack(parts, axis=-1)

    def update_cell(
        self,
        x: int,
        others: IntArray,
        other_values: FloatArray,
        old: float | None,
        new: float | None,
    ) -> None:
        """:meth:`PairSums.update_cell` on the owned rows: the row of x if owned, and the entry
        (o, x) of every owned other rater o."""
        owned_x = self.owns(x)
        mine = self.row_of[others] >= 0 if others.size else np.zeros(0, dtype=np.bool_)
        if not owned_x and not mine.any():
            return
        p = 0.0 if old is None else 1.0
        q = 0.0 if new is None else 1.0
        a = 0.0 if old is None else old
        b = 0.0 if new is None else new
        d0 = q - p
        d1 = b * q - a * p
        d2 = b * b * q - a * a * p
        y = other_values
        row = np.empty((others.size, 4), dtype=np.float64)
        row[:, 0] = d0
        row[:, 1] = d1
        row[:, 2] = d2
        row[:, 3] = y * d1
        col = np.empty((others.size, 4), dtype=np.float64)
        col[:, 0] = d0
        col[:, 1] = y * d0
        col[:, 2] = y * y * d0
        col[:, 3] = y * d1
        row_s = self._stored(row)  # sums[x, o]
        col_s = self._stored(col)  # sums[o, x]
        bx, xl = divmod(x, TILE)
        if owned_x:
            r = int(self.row_of[x])
            diag = self._stored(np.array([[d0, d1, d2, d2]]))
            self.cols[bx][r, xl] += self._pick(diag, diag)[0]
            blocks = others // TILE
            gain = self._pick(row_s, col_s)
            for b_ in np.unique(blocks).tolist():
                pick = blocks == b_
                self.cols[b_][r, others[pick] - b_ * TILE] += gain[pick]
        if mine.any():
            rows = self.row_of[others[mine]]
            self.cols[bx][rows, xl] += self._pick(col_s[mine], row_s[mine])

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
        """:meth:`PairSums.update_block` (its deltas, written by :meth:`add_stored` to the
        owned rows); nothing to compute without an owned row."""
        if not (self.slot_at >= 0).any():
            return
        super().update_block(
            n_users=n_users,
            cell_users=cell_users,
            cell_cols=cell_cols,
            mask_t=mask_t,
            values_t=values_t,
            new_values=new_values,
            new_present=new_present,
            scale=scale,
            exact32=exact32,
            raters=raters,
            method=method,
        )

    def add_stored(
        self,
        users: IntArray,
        n_users: int,
        stored_rows: npt.NDArray[Any],
        stored_cols: npt.NDArray[Any],
    ) -> None:
        """sums[users, :n_users] += rows and sums[:n_users, users] += cols on the owned rows
        (see the module docstring; float mode: each entry's terms in the full store's order)."""
        owned = self.owned()
        owned = owned[owned < n_users]
        if owned.size == 0 or users.size == 0:
            return
        rows_all = self.row_of[owned]
        changed_owned = np.flatnonzero(self.row_of[users] >= 0) if users.size else users
        # A: owned changed users' whole rows
        a_idx = changed_owned
        a_slots = users[a_idx]
        newer_a = np.arange(n_users)[None, :] > a_slots[:, None]
        gain_a = self._pick(stored_rows[a_idx], stored_cols[:, a_idx].transpose(1, 0, 2), newer_a)
        # B: every changed user's column in every owned row
        newer_b = users[None, :] > owned[:, None]
        gain_b = self._pick(
            stored_cols[owned], _take(stored_rows, owned).transpose(1, 0, 2), newer_b
        )
        later = None
        if not self.integer and a_idx.size:
            # an entry (u, v) with both changed gets two terms: the full store adds first the
            # one of the lower tile row (rows before columns within a tile): Σx, Σx² take Δcols
            # first when block(u) > block(v), Σy, Σy² when block(v) <= block(u), n and Σxy as
            # Σx (v < u) or as Σy (v > u: the full store's order (v, u))
            bu = (a_slots // TILE)[:, None]
            bv = (users // TILE)[None, :]
            newer = users[None, :] > a_slots[:, None]
            first_col = np.stack(
                [
                    np.where(newer, bv <= bu, bu > bv)
                    if ch in (N, SXY)
                    else (bu > bv if ch < 4 else bv <= bu)
                    for ch in self.channels
                ],
                axis=-1,
            )  # (a, changed, channels)
            later = np.where(first_col, gain_a[:, users], 0)
            gain_a[:, users] = np.where(first_col, 0, gain_a[:, users])
        self._add_rows(self.row_of[a_slots], gain_a, n_users)
        # B at the changed columns, all owned rows
        blocks = users // TILE
        b_of = owned.searchsorted(a_slots)  # position of each A user among the owned rows
        for b_ in np.unique(blocks).tolist():
            pick = np.flatnonzero(blocks == b_)
            local = users[pick] - b_ * TILE
            tile = self.cols[b_]
            _add_at(tile, rows_all, local, _take(gain_b, pick))
            if later is not None:
                _add_at(tile, rows_all[b_of], local, _take(later, pick))

    def _add_rows(self, rows: IntArray, gain: npt.NDArray[Any], n: int) -> None:
        """tile rows += gain (len(rows) x n x channels) over columns [0, n)."""
        if rows.size == 0:
            return
        for b in range(-(-n // TILE)):
            c0 = b * TILE
            c1 = min(c0 + TILE, n)
            self.cols[b][rows, : c1 - c0] += gain[:, c0:c1]


def _as_cells(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A (rows x cols x channels) array as rows x cols opaque cells (a view): numpy's fancy
    indexing moves one cell at a time instead of looping over its channels (~2.5x faster)."""
    cell = np.dtype((np.void, a.shape[2] * a.dtype.itemsize))
    return a.view(cell).reshape(a.shape[:2])


def _take(a: npt.NDArray[Any], cols: IntArray) -> npt.NDArray[Any]:
    """a[:, cols] (a: rows x cols x channels)."""
    a = np.ascontiguousarray(a)
    picked = np.ascontiguousarray(_as_cells(a)[:, cols])
    out: npt.NDArray[Any] = picked.view(a.dtype).reshape(a.shape[0], cols.size, -1)
    return out


def _add_at(tile: npt.NDArray[Any], rows: IntArray, cols: IntArray, gain: npt.NDArray[Any]) -> None:
    """tile[rows x cols] += gain (distinct rows, distinct cols; tile C-contiguous)."""
    cells = _as_cells(tile)
    where = np.ix_(rows, cols)
    part = np.ascontiguousarray(cells[where]).view(tile.dtype).reshape(rows.size, cols.size, -1)
    part += gain
    cells[where] = _as_cells(part)
