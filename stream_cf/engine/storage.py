"""Growable storage: rows of entries in one pool, and arrays that grow without stalls.

Nothing needs to be sized in advance: arrays grow by half again when a slot beyond the capacity is
needed (amortised O(1) per new id), large ones inside reserved address space without a copy
(:func:`grow_array`). :class:`RowPool` keeps a variable-length row of int32 entries per slot (a
user's cells, an item's cells) in one array with slack per row: memory in proportion to the
entries, appends in amortised O(1), every batch operation vectorized. The id maps (string id <->
dense slot) are in :mod:`~stream_cf.engine.ids`.
"""

from __future__ import annotations

import contextlib
import mmap
import sys
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Int8Array = npt.NDArray[np.int8]
Int32Array = npt.NDArray[np.int32]

MIN_CAPACITY = 64
GROWTH = 1.5
TWICE_LIMIT = 63.5  # the largest |value| whose 2·value an int8 holds (commit.py's int8 block)


def grown(capacity: int, needed: int) -> int:
    """The capacity to use so that ``needed`` slots fit (grow by half again, at least 64)."""
    cap = max(capacity, MIN_CAPACITY)
    while cap < needed:
        cap = int(cap * GROWTH) + 1
    return cap


def ranges(starts: IntArray, lengths: IntArray) -> IntArray:
    """The concatenated ranges [start, start + length) (np.arange per pair, vectorized)."""
    lengths = lengths.astype(np.int64, copy=False)
    total = int(lengths.sum())
    shift = starts.astype(np.int64, copy=False) - (np.cumsum(lengths) - lengths)
    out: IntArray = np.repeat(shift, lengths) + np.arange(total, dtype=np.int64)
    return out


def grow_array(array: npt.NDArray[Any], needed: int, fill: Any = 0) -> npt.NDArray[Any]:
    """``array`` with at least ``needed`` entries along the first axis (grown by half again;
    new entries ``fill``); the same array when it is long enough.

    Arrays of :data:`RESERVE_FROM` bytes and more live in a reserved stretch of address space
    (:class:`Reservation`): growing one is a longer view of the same memory, O(1), with no copy
    (the new pages cost only when first written). The copy happens once, when an array first
    reaches that size (1 MiB: ~1 ms); smaller arrays grow by copying (well under a millisecond)."""
    size = int(array.shape[0])
    if needed <= size:
        return array
    capacity = grown(size, needed)
    inner = array.shape[1:]
    per_row = array.dtype.itemsize * int(np.prod(inner, dtype=np.int64))
    reserve = reservation_of(array)
    if reserve is None and capacity * per_row >= RESERVE_FROM:
        reserve = Reservation.create(max(RESERVE_BYTES, 4 * capacity * per_row))
        if reserve is not None:
            out = reserve.view(array.dtype, capacity, inner)
            out[:size] = array
            if fill != 0:
                out[size:] = fill
            return out
    elif reserve is not None and capacity * per_row <= len(reserve):
        stale = reserve.exposed > size * per_row  # grown from a shorter view than the latest
        out = reserve.view(array.dtype, capacity, inner)
        if fill != 0 or stale:
            out[size:] = fill
        return out
    out = np.full((capacity, *inner), fill, dtype=array.dtype)
    out[:size] = array
    return out


RESERVE_FROM = 1 << 20  # bytes: arrays this large grow inside a reservation (1 MiB)
RESERVE_BYTES = 1 << 36  # address space reserved per such array (64 GiB; no memory until used)
_MAP_NORESERVE = 0x4000  # Linux's MAP_NORESERVE (not exported by Python 3.11's mmap module)


class Reservation(mmap.mmap):
    """A stretch of private anonymous address space that arrays grow into without moving.

    Mapped with MAP_NORESERVE: the kernel commits a page only when it is first written, so the
    reservation costs address space, not memory (RSS grows with the pages written, as with an
    array of that length). Views are prefixes of the mapping; a longer view of the same prefix is
    the grown array, and views handed out earlier stay valid (the mapping never moves). Pages
    never written read as zero, and only prefixes are ever handed out, so a longer view's new
    entries are zero (:attr:`exposed`: the bytes of the longest prefix handed out; growing a
    shorter, stale view clears what lies past it)."""

    exposed: int

    @classmethod
    def create(cls, nbytes: int) -> Reservation | None:
        """A new reservation of ``nbytes``, None where the platform refuses it (the caller then
        grows by copying)."""
        if not sys.platform.startswith("linux"):
            return None
        try:
            out = cls(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE)
        except (OSError, ValueError, OverflowError):
            return None
        with contextlib.suppress(OSError, AttributeError):
            out.madvise(mmap.MADV_HUGEPAGE)  # as numpy does for its large arrays
        out.exposed = 0
        return out

    def view(self, dtype: np.dtype[Any], rows: int, inner: tuple[int, ...]) -> npt.NDArray[Any]:
        """The first ``rows`` rows of shape ``inner`` as an array (new rows zero)."""
        count = rows * int(np.prod(inner, dtype=np.int64))
        flat = np.frombuffer(self, dtype=dtype, count=count)
        self.exposed = max(self.exposed, count * dtype.itemsize)
        return flat.reshape((rows, *inner))


def reservation_of(array: npt.NDArray[Any]) -> Reservation | None:
    """The reservation ``array`` is a view of, if any."""
    base: Any = array
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview) and isinstance(base.obj, Reservation):
        return base.obj
    return None


def stretch_class(sizes: IntArray) -> IntArray:
    """k = ⌈log2(size)⌉ per size (at least 2): the stretch of 2^k entries that holds it."""
    k = np.ceil(np.log2(np.maximum(sizes, 4).astype(np.float64))).astype(np.int64)
    k += (np.left_shift(1, k) < sizes).astype(np.int64)  # float log2 rounding, to be safe
    return k


class RowPool:
    """A variable-length row of int32 entries per slot, all rows in one pool array.

    Row r occupies ``pool[start[r] : start[r] + length[r]]`` inside a reserved stretch of
    ``cap[r]`` = 2^k entries (k ≥ 2); entries keep their insertion order (a removal closes the
    gap). A row that outgrows its stretch moves to one of twice the room (or more, for a large
    append); the stretch it leaves, or a cleared row's, goes on the free list of its size and is
    the next stretch of that size handed out, else a new stretch is cut from the end of the pool.
    No pass over the whole pool is ever needed (:meth:`_compact` only when the stretches left
    free outweigh the rows in use three times over, which growing rows never cause: the stretches
    a row left behind hold less than its current one, and other rows of the sizes it passed
    through take them). Memory: 4 bytes per entry plus the slack (under 2x per row, plus the free
    stretches).

    ``dtype`` float64: a pool of values kept *beside* another pool (the same rows, the same
    order within each row, though not the same places): it gets the same appends, the same
    removals by position (:meth:`keep`, :meth:`remove_at` with what :meth:`remove` and
    :meth:`remove_one` of the other pool returned) and its entries set by position (:meth:`put`,
    with positions the owner keeps: :meth:`append` returns them).
    """

    def __init__(self, dtype: type[np.generic] = np.int32) -> None:
        self.start: IntArray = np.zeros(0, dtype=np.int64)
        self.length: IntArray = np.zeros(0, dtype=np.int64)
        self.cap: IntArray = np.zeros(0, dtype=np.int64)
        self.pool: Int32Array = np.zeros(0, dtype=dtype)
        self.used = 0  # the pool's high-water mark
        self.reserved = 0  # Σ cap: the stretches of live rows
        self.free: dict[int, list[int]] = {}  # k -> starts of free stretches of 2^k entries

    @property
    def nbytes(self) -> int:
        return int(self.pool.nbytes + self.start.nbytes + self.length.nbytes + self.cap.nbytes)

    def ensure(self, n_rows: int) -> None:
        """Room for rows [0, n_rows) (new rows are empty)."""
        if n_rows > self.start.size:
            self.start = grow_array(self.start, n_rows)
            self.length = grow_array(self.length, n_rows)
            self.cap = grow_array(self.cap, n_rows)

    def row(self, r: int) -> Int32Array:
        """Row r's entries (a view: copy before the pool changes)."""
        lo = int(self.start[r])
        return self.pool[lo : lo + int(self.length[r])]

    def rows(self, rows: IntArray) -> tuple[IntArray, Int32Array]:
        """The entries of ``rows`` concatenated in the given order: (position of the row in
        ``rows`` per entry, entries)."""
        lengths = self.length[rows]
        where = np.repeat(np.arange(rows.size, dtype=np.int64), lengths)
        return where, self.pool[ranges(self.start[rows], lengths)]

    def clear(self, r: int) -> None:
        """Empty row r and give its stretch back (to the free list of its size)."""
        cap = int(self.cap[r])
        if cap:
            self._release(np.array([self.start[r]]), np.array([cap]))
        self.reserved -= cap
        self.start[r] = self.length[r] = self.cap[r] = 0

    def append(
        self,
        rows: IntArray,
        entries: npt.NDArray[Any],
        *,
        beside: tuple[tuple[RowPool, npt.NDArray[Any]], ...] = (),
    ) -> IntArray:
        """Append ``entries[j]`` to row ``rows[j]`` (in the given order within each row);
        ``beside``: (pool, entries) of pools kept beside this one, appended the same way (the
        rows sorted once for all). Returns each entry's position within its row."""
        if rows.size == 0:
            return np.zeros(0, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        rows = rows[order]
        first = np.flatnonzero(np.diff(rows, prepend=-1))  # each row's first entry (rows ≥ 0)
        counts = np.diff(first, append=rows.size)
        offset = np.arange(rows.size, dtype=np.int64) - np.repeat(first, counts)
        at = np.empty(rows.size, dtype=np.int64)
        at[order] = self.length[rows] + offset
        for pool, values in ((self, entries), *beside):
            pool._append_sorted(rows, rows[first], counts, offset, values[order])
        return at

    def _append_sorted(
        self,
        rows: IntArray,
        distinct: IntArray,
        counts: IntArray,
        offset: IntArray,
        entries: npt.NDArray[Any],
    ) -> None:
        """:meth:`append` of entries already sorted by row (``distinct`` rows with ``counts``
        entries each; ``offset``: each entry's rank within its row's new ones)."""
        need = self.length[distinct] + counts
        grows = need > self.cap[distinct]
        move = distinct[grows]
        if move.size:
            self._move(move, np.maximum(need[grows], 2 * self.cap[move]))
        at = self.start[rows] + self.length[rows] + offset
        self.pool[at] = entries
        self.length[distinct] = need

    def append_one(self, r: int, entry: float) -> None:
        """:meth:`append` of one entry."""
        length = int(self.length[r])
        if length + 1 > self.cap[r]:
            self._move_one(r, 2 * int(self.cap[r]))
        self.pool[int(self.start[r]) + length] = entry
        self.length[r] = length + 1

    def insert_sorted_one(self, r: int, entry: int) -> None:
        """Insert ``entry`` into row r, whose entries are ascending, at its place (the entries
        after it slide up one)."""
        length = int(self.length[r])
        if length + 1 > self.cap[r]:
            self._move_one(r, 2 * int(self.cap[r]))
        lo = int(self.start[r])
        row = self.pool[lo : lo + length + 1]
        at = int(row[:length].searchsorted(entry))
        row[at + 1 :] = row[at:length].copy()
        row[at] = entry
        self.length[r] = length + 1

    def set_row_one(self, r: int, entries: Int32Array) -> None:
        """Row r holds ``entries`` (in that order) and nothing else."""
        size = int(entries.size)
        self.length[r] = 0  # nothing to carry over if the row moves
        if size > self.cap[r]:
            self._move_one(r, size)
        lo = int(self.start[r])
        self.pool[lo : lo + size] = entries
        self.length[r] = size

    def _release(self, starts: IntArray, caps: IntArray) -> None:
        """Put stretches on the free lists (a stretch of c entries serves sizes ≤ 2^⌊log2 c⌋)."""
        k = np.floor(np.log2(caps.astype(np.float64))).astype(np.int64)
        k -= (np.left_shift(1, k) > caps).astype(np.int64)
        for cls in np.unique(k).tolist():
            self.free.setdefault(cls, []).extend(starts[k == cls].tolist())

    def _move(self, rows: IntArray, caps: IntArray) -> None:
        """Give ``rows`` new stretches of at least ``caps`` entries (rounded up to 2^k): free
        stretches of that size first (the last freed first), else new ones at the end of the
        pool; their old stretches go on the free lists."""
        k = stretch_class(caps)
        caps = np.left_shift(1, k)
        new_start = np.zeros(rows.size, dtype=np.int64)
        fresh = np.ones(rows.size, dtype=np.bool_)
        for cls in np.unique(k).tolist():
            stack = self.free.get(cls)
            if not stack:
                continue
            pick = np.flatnonzero(k == cls)[: len(stack)]
            taken = stack[len(stack) - pick.size :]
            del stack[len(stack) - pick.size :]
            new_start[pick] = taken[::-1]
            fresh[pick] = False
        cut = np.flatnonzero(fresh)
        total = int(caps[cut].sum())
        if self.used + total > self.pool.size and self.used > 4 * self.reserved:
            self._compact()
        if self.used + total > self.pool.size:
            self.pool = grow_array(self.pool, self.used + total)
        new_start[cut] = self.used + np.cumsum(caps[cut]) - caps[cut]
        self.used += total
        lengths = self.length[rows]
        self.pool[ranges(new_start, lengths)] = self.pool[ranges(self.start[rows], lengths)]
        old_caps = self.cap[rows]
        held = old_caps > 0
        self._release(self.start[rows][held], old_caps[held])
        self.reserved += int(caps.sum()) - int(old_caps.sum())
        self.start[rows] = new_start
        self.cap[rows] = caps

    def _move_one(self, r: int, cap: int) -> None:
        """:meth:`_move` of one row, in scalar arithmetic (the same stretch chosen, the same
        free lists after)."""
        k = (max(cap, 4) - 1).bit_length()  # ⌈log2 cap⌉, at least 2 (stretch_class)
        size = 1 << k
        stack = self.free.get(k)
        if stack:
            new_start = stack.pop()
        else:
            if self.used + size > self.pool.size and self.used > 4 * self.reserved:
                self._compact()
            if self.used + size > self.pool.size:
                self.pool = grow_array(self.pool, self.used + size)
            new_start = self.used
            self.used += size
        start, length, old_cap = int(self.start[r]), int(self.length[r]), int(self.cap[r])
        self.pool[new_start : new_start + length] = self.pool[start : start + length]
        if old_cap > 0:  # its stretch serves sizes up to 2^⌊log2 cap⌋ (_release)
            self.free.setdefault(old_cap.bit_length() - 1, []).append(start)
        self.reserved += size - old_cap
        self.start[r] = new_start
        self.cap[r] = size

    def _compact(self) -> None:
        """Drop the free stretches: the live stretches slide to the front of the pool, in pool
        order (one pass over the pool, no per-entry index arrays)."""
        self.free = {}
        live = np.flatnonzero(self.cap)
        live = live[np.argsort(self.start[live], kind="stable")]
        caps = self.cap[live]
        edges = np.zeros(self.used + 1, dtype=np.int8)
        np.add.at(edges, self.start[live], 1)
        np.add.at(edges, self.start[live] + caps, -1)
        inside = np.cumsum(edges[:-1], dtype=np.int8).view(np.bool_)
        kept = self.pool[: self.used][inside]
        self.pool[: kept.size] = kept
        self.start[live] = np.cumsum(caps) - caps
        self.used = self.reserved = int(kept.size)

    def remove(self, rows: IntArray, entries: IntArray) -> tuple[IntArray, BoolArray]:
        """Remove each ``entries[j]`` from row ``rows[j]`` (each present once); the remaining
        entries keep their order. Returns what :meth:`keep` was given (the distinct rows and
        which of their entries stay), for a pool kept beside this one."""
        if rows.size == 0:
            return rows, np.zeros(0, dtype=np.bool_)
        distinct = np.unique(rows)
        where, current = self.rows(distinct)
        key = distinct[where] * 2**32 + current.astype(np.int64)
        keep = ~np.isin(key, rows.astype(np.int64) * 2**32 + entries.astype(np.int64))
        self.keep(distinct, keep)
        return distinct, keep

    def keep(self, distinct: IntArray, keep: BoolArray) -> None:
        """Keep only the entries flagged in ``keep`` of the rows ``distinct`` (ascending, in
        :meth:`rows` order), in their order."""
        where, current = self.rows(distinct)
        kept_where = where[keep]
        lengths = np.bincount(kept_where, minlength=distinct.size).astype(np.int64)
        rank = np.arange(kept_where.size, dtype=np.int64) - np.repeat(
            np.cumsum(lengths) - lengths, lengths
        )
        self.pool[self.start[distinct][kept_where] + rank] = current[keep]
        self.length[distinct] = lengths

    def remove_one(self, r: int, entry: int) -> int:
        """:meth:`remove` of one entry (present once): the entries after it slide down one.
        Returns its position in the row (for :meth:`remove_at` of a pool kept beside)."""
        row = self.row(r)
        at = int(np.flatnonzero(row == entry)[0])
        self.remove_at(r, at)
        return at

    def remove_at(self, r: int, at: int) -> None:
        """Remove the entry at position ``at`` of row r: the entries after it slide down one."""
        length = int(self.length[r])
        row = self.row(r)
        row[at : length - 1] = row[at + 1 :].copy()
        self.length[r] = length - 1

    def put(
        self, rows: IntArray, at: npt.NDArray[np.integer[Any]], entries: npt.NDArray[Any]
    ) -> None:
        """Set the entry at position ``at[j]`` of row ``rows[j]`` to ``entries[j]``."""
        self.pool[self.start[rows] + at] = entries

    def to_arrays(self, n_rows: int) -> tuple[IntArray, Int32Array]:
        """Every row's entries in row order: (lengths, entries) (for checkpoints)."""
        rows = np.arange(n_rows, dtype=np.int64)
        _where, entries = self.rows(rows)
        return self.length[:n_rows].copy(), entries

    @classmethod
    def from_arrays(
        cls, lengths: IntArray, entries: npt.NDArray[Any], dtype: type[np.generic] = np.int32
    ) -> RowPool:
        """Rows with the given lengths filled from ``entries`` in row order, each in the
        smallest stretch of 2^k entries that holds it."""
        out = cls(dtype)
        n = int(lengths.size)
        out.ensure(n)
        caps = np.where(lengths > 0, np.left_shift(1, stretch_class(lengths)), 0).astype(np.int64)
        start = np.cumsum(caps) - caps
        out.pool = np.zeros(max(int(caps.sum()), 64), dtype=dtype)
        out.pool[ranges(start, lengths.astype(np.int64))] = entries
        out.start[:n] = start
        out.length[:n] = lengths
        out.cap[:n] = caps
        out.used = out.reserved = int(caps.sum())
        return out
