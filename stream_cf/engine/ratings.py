"""The ratings themselves, in memory proportional to their number: a cell table and two indexes.

Every rating (or accumulated implicit weight) is one *cell* with a stable id: its user slot, item
slot, value, the sequence number of its latest change (the global event counter) and its position
within its item's rows (so that a changed value is written into the item's copy of the values
without a search), in five columns (4 + 4 + 8 + 8 + 4 = 28 bytes). Two
:class:`~stream_cf.engine.storage.RowPool` indexes hold the cell ids per user and per item (4 bytes
each), so a user's items and an item's raters are one gather; a third holds each item's rater slots
themselves, entry for entry beside its cell ids (4 bytes more per rating), so that a list's largest
read, the raters of the user's items (~10^6 entries on a million users), is a copy of contiguous
rows rather than a gather scattered over the cell table; a fourth holds their values the same way
(8 bytes more per rating), so that a batch's read of the touched items' raters and values
(:meth:`Ratings.items_rows`, ~3·10^5 entries a batch at 16,000 users) is two copies of contiguous
rows. Nothing here, or anywhere in the engine, is of size users × items.

Running per-user and per-item statistics are kept beside them, updated exactly with each write:
n_u, Σ_u r, Σ_u r² per user and n_i, Σ_i r per item (float64: exact while the values are
multiples of 0.5, as every rating on a half-step scale is).

Reads that depend on an order sort by a key of the data (sequence numbers, slots), never by the
pools' internal order, so the same ratings give the same answers whatever the batching or a
checkpoint's round trip.

A derived read is kept between events: each user's item slots in ascending order
(:meth:`Ratings.sorted_segments`, the order ``knn_baseline`` sums b_u in), in a fourth pool, from
the user's first read on: a single new or removed rating is put in its place or taken out, a
batch that changes the user's set of items leaves the row to be sorted again at its next read (a
changed value keeps it). It is never saved (a loaded state starts without it) and costs 4 bytes
per rating of each user read so far.
"""

from __future__ import annotations

import numpy as np

from stream_cf.engine.storage import (
    BoolArray,
    FloatArray,
    Int32Array,
    IntArray,
    RowPool,
    grow_array,
    ranges,
)

_NO_CELL = -1


class Ratings:
    """The cells, the per-user and per-item indexes and the running statistics."""

    def __init__(self) -> None:
        self.cell_user: Int32Array = np.zeros(0, dtype=np.int32)
        self.cell_item: Int32Array = np.zeros(0, dtype=np.int32)
        self.cell_value: FloatArray = np.zeros(0, dtype=np.float64)
        self.cell_seq: IntArray = np.zeros(0, dtype=np.int64)
        # each cell's position within its item's row of by_item (and of its copies beside it)
        self.cell_pos: Int32Array = np.zeros(0, dtype=np.int32)
        self.cell_high = 0  # one past the highest cell id ever used
        self.free_cells: list[int] = []  # ids of removed cells, reused first (last freed first)
        self.by_user = RowPool()
        self.by_item = RowPool()
        self.item_users = RowPool()  # per item, cell_user of by_item's entries, in their order
        self.item_values = RowPool(np.float64)  # per item, cell_value of by_item's entries
        self.user_count: IntArray = np.zeros(0, dtype=np.int64)
        self.user_sum: FloatArray = np.zeros(0, dtype=np.float64)
        self.user_sumsq: FloatArray = np.zeros(0, dtype=np.float64)
        self.item_count: IntArray = np.zeros(0, dtype=np.int64)
        self.item_sum: FloatArray = np.zeros(0, dtype=np.float64)
        self.max_value = 0.0  # the largest |value| ever stored (never decreases)
        self.version = 0  # +1 with every change of a cell or a statistic (keys derived reads)
        # per user slot, its item slots ascending, where sorted_ok (from the user's first read;
        # kept by single writes, left to the next read by batches): a derived read, never saved
        self.items_sorted = RowPool()
        self.sorted_ok: BoolArray = np.zeros(0, dtype=np.bool_)

    # ------------------------------------------------------------------ capacity
    def ensure(self, n_users: int, n_items: int) -> None:
        """Room for ``n_users`` user slots and ``n_items`` item slots."""
        self.by_user.ensure(n_users)
        self.items_sorted.ensure(n_users)
        self.sorted_ok = grow_array(self.sorted_ok, n_users)
        self.by_item.ensure(n_items)
        self.item_users.ensure(n_items)
        self.item_values.ensure(n_items)
        self.user_count = grow_array(self.user_count, n_users)
        self.user_sum = grow_array(self.user_sum, n_users)
        self.user_sumsq = grow_array(self.user_sumsq, n_users)
        self.item_count = grow_array(self.item_count, n_items)
        self.item_sum = grow_array(self.item_sum, n_items)

    @property
    def n_cells(self) -> int:
        return self.cell_high - len(self.free_cells)

    @property
    def nbytes(self) -> int:
        """Bytes held for the ratings (cells, indexes, statistics; capacity included)."""
        arrays = (
            self.cell_user,
            self.cell_item,
            self.cell_value,
            self.cell_seq,
            self.cell_pos,
            self.user_count,
            self.user_sum,
            self.user_sumsq,
            self.item_count,
            self.item_sum,
        )
        pools = sum(
            pool.nbytes
            for pool in (
                self.by_user,
                self.by_item,
                self.item_users,
                self.item_values,
                self.items_sorted,
            )
        )
        pools += self.sorted_ok.nbytes
        return int(sum(a.nbytes for a in arrays)) + pools

    # ------------------------------------------------------------------ reads
    def user_cells(self, u: int) -> IntArray:
        return self.by_user.row(u).astype(np.int64)

    def item_cells(self, i: int) -> IntArray:
        return self.by_item.row(i).astype(np.int64)

    def user_row(self, u: int) -> tuple[IntArray, FloatArray, IntArray]:
        """u's (item slots, values, sequence numbers), item slots ascending."""
        cells = self.user_cells(u)
        items = self.cell_item[cells].astype(np.int64)
        order = np.argsort(items, kind="stable")
        cells = cells[order]
        return items[order], self.cell_value[cells], self.cell_seq[cells]

    def item_row(self, i: int) -> tuple[IntArray, FloatArray, IntArray]:
        """i's (rater slots, values, sequence numbers), rater slots ascending."""
        cells = self.item_cells(i)
        users = self.cell_user[cells].astype(np.int64)
        order = np.argsort(users, kind="stable")
        cells = cells[order]
        return users[order], self.cell_value[cells], self.cell_seq[cells]

    def users_rows(self, slots: IntArray) -> tuple[IntArray, IntArray, FloatArray]:
        """The cells of many users, concatenated in the order of ``slots``: (position in
        ``slots``, item slot, value) per cell (within a user in no particular order)."""
        where, cells = self.by_user.rows(slots)
        return where, self.cell_item[cells].astype(np.int64), self.cell_value[cells]

    def items_rows(self, slots: IntArray) -> tuple[IntArray, IntArray, FloatArray]:
        """The cells of many items, concatenated in the order of ``slots``: (position in
        ``slots``, rater slot, value) per cell (within an item in no particular order): copies
        of the per-item rows of rater slots and values."""
        where, raters = self.item_users.rows(slots)
        _where, values = self.item_values.rows(slots)  # float64 already: astype copies nothing
        return where, raters.astype(np.int64), values.astype(np.float64, copy=False)

    def sorted_segments(self, slots: IntArray) -> tuple[IntArray, IntArray, Int32Array]:
        """The item slots of many users, each user's ascending: (starts, lengths, pool), user
        k's items at pool[starts[k] : starts[k] + lengths[k]] (a view of the kept rows: read
        before the next write). A row not kept yet is sorted now and kept."""
        kept = self.items_sorted
        stale = slots[~self.sorted_ok[slots]]
        for slot in stale.tolist():
            if not self.sorted_ok[slot]:  # (a slot asked for twice: sorted once)
                row = self.cell_item[self.by_user.row(slot)]  # a copy, sorted in place
                row.sort()
                kept.set_row_one(slot, row)
                self.sorted_ok[slot] = True
        return kept.start[slots], kept.length[slots], kept.pool

    def sorted_rows(self, slots: IntArray) -> tuple[IntArray, Int32Array]:
        """:meth:`sorted_segments` concatenated in the order of ``slots``: (offsets, item
        slots), user k's items at [offsets[k], offsets[k + 1]) (the CSR layout)."""
        starts, lengths, pool = self.sorted_segments(slots)
        offsets = np.zeros(slots.size + 1, dtype=np.int64)
        lengths.cumsum(out=offsets[1:])
        items: Int32Array = pool[ranges(starts, lengths)]
        return offsets, items

    def sorted_items(self, slots: IntArray) -> tuple[IntArray, Int32Array]:
        """:meth:`sorted_rows` as (position in ``slots``, item slot) per cell."""
        offsets, items = self.sorted_rows(slots)
        where = np.repeat(np.arange(slots.size, dtype=np.int64), np.diff(offsets))
        return where, items

    def has(self, u: int, items: IntArray) -> BoolArray:
        """Whether u rated each of ``items``."""
        mine = self.cell_item[self.by_user.row(u)]
        return np.isin(items, mine)

    def find(self, users: IntArray, items: IntArray) -> IntArray:
        """The cell id of each (user, item), -1 where there is none (users within range)."""
        if users.size == 0:
            return np.zeros(0, dtype=np.int64)
        distinct = np.unique(users)
        where, cells = self.by_user.rows(distinct)
        cells = cells.astype(np.int64)
        if cells.size == 0:
            return np.full(users.size, _NO_CELL, dtype=np.int64)
        keys = distinct[where] * 2**32 + self.cell_item[cells].astype(np.int64)
        order = np.argsort(keys)
        keys = keys[order]
        wanted = users.astype(np.int64) * 2**32 + items.astype(np.int64)
        pos = np.minimum(np.searchsorted(keys, wanted), keys.size - 1)
        found = keys[pos] == wanted
        return np.where(found, cells[order][pos], _NO_CELL)

    def get(self, u: int, i: int) -> float | None:
        """The value of (u, i), None if there is none."""
        cell = self.find(np.array([u], dtype=np.int64), np.array([i], dtype=np.int64))[0]
        return None if cell < 0 else float(self.cell_value[cell])

    # ------------------------------------------------------------------ writes
    def write(
        self,
        users: IntArray,
        items: IntArray,
        raw: FloatArray,
        seqs: IntArray,
        *,
        cells: IntArray | None = None,
    ) -> FloatArray:
        """Set the cells (users[j], items[j]) (each once) to ``raw`` (NaN: remove the rating,
        which must exist) with their sequence numbers (``cells``: their :meth:`find`, if known).
        Returns the old values (NaN where there was no rating)."""
        self.version += 1
        if cells is None:
            cells = self.find(users, items)
        if np.any(present := ~np.isnan(raw)):
            self.max_value = max(self.max_value, float(np.max(np.abs(raw[present]))))
        had = cells >= 0
        old = np.full(cells.size, np.nan)
        old[had] = self.cell_value[cells[had]]
        # the running statistics: removals and changes subtract the old value, writes add
        a = np.where(had, old, 0.0)
        b = np.where(present, raw, 0.0)
        dn = present.astype(np.int64) - had.astype(np.int64)
        np.add.at(self.user_count, users, dn)
        np.add.at(self.user_sum, users, b - a)
        np.add.at(self.user_sumsq, users, b * b - a * a)
        np.add.at(self.item_count, items, dn)
        np.add.at(self.item_sum, items, b - a)
        for counts, sums, slots in (
            (self.user_count, self.user_sum, users),
            (self.item_count, self.item_sum, items),
        ):
            gone = slots[counts[slots] == 0]
            sums[gone] = 0.0  # exactly 0 without ratings (no rounding residue)
        self.user_sumsq[users[self.user_count[users] == 0]] = 0.0
        # changed values keep their cell
        keep = had & present
        self.cell_value[cells[keep]] = raw[keep]
        self.cell_seq[cells[keep]] = seqs[keep]
        if np.any(keep):
            self.item_values.put(items[keep], self.cell_pos[cells[keep]], raw[keep])
        # removals free their cell and leave both indexes
        gone_cells = cells[had & ~present]
        self.sorted_ok[users[had != present]] = False  # sorted again at the next read
        if gone_cells.size:
            self.by_user.remove(self.cell_user[gone_cells].astype(np.int64), gone_cells)
            gone_items = self.cell_item[gone_cells].astype(np.int64)
            gone = self.by_item.remove(gone_items, gone_cells)
            self.item_users.keep(*gone)  # the same entries, in the same order within each row
            self.item_values.keep(*gone)
            self._renumber(gone[0])
            self.free_cells.extend(gone_cells.tolist())
        # new ratings take free cells (the last freed first), then fresh ones
        new = np.flatnonzero(~had & present)
        if new.size:
            ids = self._allocate(int(new.size))
            self.cell_user[ids] = users[new]
            self.cell_item[ids] = items[new]
            self.cell_value[ids] = raw[new]
            self.cell_seq[ids] = seqs[new]
            self.by_user.append(users[new], ids)
            self.cell_pos[ids] = self.by_item.append(
                items[new],
                ids,
                beside=((self.item_users, users[new]), (self.item_values, raw[new])),
            )
        return old

    def cell_of(self, u: int, i: int) -> int:
        """The cell id of (u, i), -1 if there is none (a scan of u's row; none is told by a
        binary search where u's sorted row is kept)."""
        if self.sorted_ok[u]:
            kept = self.items_sorted.row(u)
            at = int(kept.searchsorted(i))
            if at == kept.size or int(kept[at]) != i:
                return _NO_CELL
        cells = self.by_user.row(u)
        hit = (self.cell_item[cells] == i).nonzero()[0]
        return int(cells[hit[0]]) if hit.size else _NO_CELL

    def write_one(
        self, u: int, i: int, value: float | None, seq: int, *, cell: int | None = None
    ) -> float | None:
        """:meth:`write` of one cell (``None``: remove it; ``cell``: its :meth:`cell_of`, if
        known); returns the old value. Scalar arithmetic on the same float64 values as
        :meth:`write`'s (one addition per statistic: the same results)."""
        self.version += 1
        if cell is None:
            cell = self.cell_of(u, i)
        old = None if cell < 0 else float(self.cell_value[cell])
        if value is not None:
            self.max_value = max(self.max_value, abs(value))
        a = 0.0 if old is None else old
        b = 0.0 if value is None else value
        dn = (value is not None) - (old is not None)
        if dn or a != b:
            for counts, sums, slot in (
                (self.user_count, self.user_sum, u),
                (self.item_count, self.item_sum, i),
            ):
                n = int(counts[slot]) + dn
                counts[slot] = n
                sums[slot] = float(sums[slot]) + (b - a) if n else 0.0
            n_u = int(self.user_count[u])
            self.user_sumsq[u] = float(self.user_sumsq[u]) + (b * b - a * a) if n_u else 0.0
        if old is not None and value is not None:
            self.cell_value[cell] = value
            self.cell_seq[cell] = seq
            at = int(self.cell_pos[cell])
            self.item_values.pool[int(self.item_values.start[i]) + at] = value
        elif old is not None:
            if self.sorted_ok[u]:
                self.items_sorted.remove_one(u, i)
            self.by_user.remove_one(u, cell)
            at = int(self.cell_pos[cell])
            for pool in (self.by_item, self.item_users, self.item_values):
                pool.remove_at(i, at)
            later = self.by_item.row(i)[at:]  # the cells that slid down one
            self.cell_pos[later] -= 1
            self.free_cells.append(cell)
        elif value is not None:
            if self.sorted_ok[u]:
                self.items_sorted.insert_sorted_one(u, i)
            new = self.free_cells.pop() if self.free_cells else self._fresh_one()
            self.cell_user[new] = u
            self.cell_item[new] = i
            self.cell_value[new] = value
            self.cell_seq[new] = seq
            self.by_user.append_one(u, new)
            self.cell_pos[new] = int(self.by_item.length[i])
            self.by_item.append_one(i, new)
            self.item_users.append_one(i, u)
            self.item_values.append_one(i, value)
        return old

    def _fresh_one(self) -> int:
        """A new cell id past the highest (the columns grown if needed)."""
        new = self.cell_high
        if new + 1 > self.cell_seq.size:
            self._allocate(1)
        else:
            self.cell_high += 1
        return new

    def _allocate(self, count: int) -> IntArray:
        reused = [self.free_cells.pop() for _ in range(min(count, len(self.free_cells)))]
        fresh = count - len(reused)
        start = self.cell_high
        self.cell_high += fresh
        if self.cell_high > self.cell_seq.size:
            self.cell_user = grow_array(self.cell_user, self.cell_high)
            self.cell_item = grow_array(self.cell_item, self.cell_high)
            self.cell_value = grow_array(self.cell_value, self.cell_high)
            self.cell_seq = grow_array(self.cell_seq, self.cell_high)
            self.cell_pos = grow_array(self.cell_pos, self.cell_high)
        ids = np.concatenate(
            (np.array(reused, dtype=np.int64), np.arange(start, start + fresh, dtype=np.int64))
        )
        return ids

    def _renumber(self, items: IntArray) -> None:
        """Set :attr:`cell_pos` of every cell of ``items`` (rows that lost entries) afresh."""
        _where, cells = self.by_item.rows(items)
        lengths = self.by_item.length[items]
        rank = np.arange(cells.size, dtype=np.int64) - np.repeat(
            np.cumsum(lengths) - lengths, lengths
        )
        self.cell_pos[cells] = rank

    def renumber_all(self, n_items: int) -> None:
        """:meth:`_renumber` of every item (after a load)."""
        self.cell_pos = np.zeros(self.cell_seq.size, dtype=np.int32)
        self._renumber(np.arange(n_items, dtype=np.int64))

    def clear_user(self, u: int) -> None:
        """Forget a user slot that holds no rating any more (its row is already empty)."""
        self.version += 1
        self.items_sorted.clear(u)
        self.sorted_ok[u] = False
        self.by_user.clear(u)
        self.user_count[u] = 0
        self.user_sum[u] = self.user_sumsq[u] = 0.0

    # ------------------------------------------------------------------ checkpoints
    def live_cells(self, n_users: int) -> IntArray:
        """Every cell id, by user slot and, within a user, by item slot (a canonical order)."""
        where, held = self.by_user.rows(np.arange(n_users, dtype=np.int64))
        cells = held.astype(np.int64)
        order = np.lexsort((self.cell_item[cells], where))
        out: IntArray = cells[order]
        return out
