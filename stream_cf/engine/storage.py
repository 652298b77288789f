"""Growable storage: id maps (string id <-> dense slot) and the dense rating grid.

Users and items get dense integer slots so that every read is a numpy operation. Ids are arbitrary
strings and nothing needs to be sized in advance: arrays grow by half again when a slot beyond the
capacity is needed (amortised O(1) per new id).

A user's slot is released when the user disappears (``forget_user``, or the last rating taken
back) and the lowest free slot is reused first, so slot assignment is deterministic. Item slots are
never released: an item's slot number is its first appearance in the stream, which orders ties.
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Int8Array = npt.NDArray[np.int8]

MIN_CAPACITY = 64
GROWTH = 1.5
TWICE_LIMIT = 63.5  # the largest |value| whose 2·value an int8 holds (RatingGrid.twice_t)


def grown(capacity: int, needed: int) -> int:
    """The capacity to use so that ``needed`` slots fit (grow by half again, at least 64)."""
    cap = max(capacity, MIN_CAPACITY)
    while cap < needed:
        cap = int(cap * GROWTH) + 1
    return cap


class IdMap:
    """A bijection between string ids and dense slots, with a free list of released slots."""

    def __init__(self) -> None:
        self.slot_of: dict[str, int] = {}
        self.id_of: list[str | None] = []
        self.free: list[int] = []  # a heap: the lowest free slot is reused first

    def __len__(self) -> int:
        return len(self.slot_of)

    @property
    def high(self) -> int:
        """One past the highest slot ever used (the extent of the arrays in use)."""
        return len(self.id_of)

    def next_slot(self) -> int:
        """The slot :meth:`add` would give to a new id."""
        return self.free[0] if self.free else len(self.id_of)

    def add(self, key: str) -> int:
        """Give ``key`` a slot (the lowest free one, else a new one) and return it."""
        if self.free:
            slot = heapq.heappop(self.free)
            self.id_of[slot] = key
        else:
            slot = len(self.id_of)
            self.id_of.append(key)
        self.slot_of[key] = slot
        return slot

    def remove(self, key: str) -> int:
        """Release ``key``'s slot; the id vanishes from the map."""
        slot = self.slot_of.pop(key)
        self.id_of[slot] = None
        heapq.heappush(self.free, slot)
        return slot

    def to_meta(self) -> dict[str, Any]:
        return {"ids": list(self.id_of), "free": sorted(self.free)}

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> IdMap:
        out = cls()
        out.id_of = [None if key is None else str(key) for key in meta["ids"]]
        out.slot_of = {key: slot for slot, key in enumerate(out.id_of) if key is not None}
        out.free = sorted(int(slot) for slot in meta["free"])
        heapq.heapify(out.free)
        return out


class RatingGrid:
    """The dense users x items grid: value, presence mask and arrival sequence per cell.

    ``values[u, i]`` is the rating (or accumulated implicit weight), 0 where absent;
    ``mask[u, i]`` says whether the cell holds a rating; ``seq[u, i]`` is the global event counter
    of the cell's latest change, which orders raters of an item (earlier first); where the cell is
    absent it is unspecified (0 or -1) and never read: readers go through the mask.
    ``mask_t`` is the item-major copy of ``mask`` (items x users), so that an item's raters are one
    contiguous row (the batched update gathers the touched items' columns as rows). ``twice_t`` is
    the item-major 2·value as int8 (0 where absent), an exact copy of the values 8x smaller than
    the grid read by the batched update, kept while every value stored so far is a multiple of 0.5
    with |value| <= :data:`TWICE_LIMIT` (the writer says so: ``EngineState.twice_ok``) and None
    for good once one is not. Every write goes through :meth:`write` or :meth:`write_one`, which
    keep the copies in step.
    """

    def __init__(self) -> None:
        self.values: FloatArray = np.zeros((0, 0), dtype=np.float64)
        self.mask: BoolArray = np.zeros((0, 0), dtype=np.bool_)
        self.mask_t: BoolArray = np.zeros((0, 0), dtype=np.bool_)
        self.twice_t: Int8Array | None = np.zeros((0, 0), dtype=np.int8)
        self.seq: IntArray = np.zeros((0, 0), dtype=np.int64)

    @property
    def shape(self) -> tuple[int, int]:
        rows, cols = self.values.shape
        return int(rows), int(cols)

    def ensure(self, n_users: int, n_items: int) -> None:
        """Grow (never shrink) so that ``n_users`` x ``n_items`` slots fit."""
        rows, cols = self.shape
        if n_users <= rows and n_items <= cols:
            return
        new_rows = rows if n_users <= rows else grown(rows, n_users)
        new_cols = cols if n_items <= cols else grown(cols, n_items)
        values = np.zeros((new_rows, new_cols), dtype=np.float64)
        mask = np.zeros((new_rows, new_cols), dtype=np.bool_)
        mask_t = np.zeros((new_cols, new_rows), dtype=np.bool_)
        # new cells are zero pages, touched only when written (no fill: the 8-byte sequence
        # numbers of absent cells are never read)
        seq = np.zeros((new_rows, new_cols), dtype=np.int64)
        seq[:rows, :cols] = self.seq
        values[:rows, :cols] = self.values
        mask[:rows, :cols] = self.mask
        mask_t[:cols, :rows] = self.mask_t
        if self.twice_t is not None:
            twice_t = np.zeros((new_cols, new_rows), dtype=np.int8)
            twice_t[:cols, :rows] = self.twice_t
            self.twice_t = twice_t
        self.values, self.mask, self.mask_t, self.seq = values, mask, mask_t, seq

    def clear_row(self, slot: int) -> None:
        """Erase every cell of a user's row (a released slot must hold nothing)."""
        self.values[slot, :] = 0.0
        self.mask[slot, :] = False
        self.mask_t[:, slot] = False
        if self.twice_t is not None:
            self.twice_t[:, slot] = 0
        self.seq[slot, :] = -1

    def write(
        self, users: IntArray, items: IntArray, values: FloatArray, seqs: IntArray, *, twice: bool
    ) -> None:
        """Set the cells (users[j], items[j]) (each once) to ``values`` (NaN: remove the rating)
        with their sequence numbers. ``twice``: every value stored so far, these included, has an
        exact int8 2·value (else ``twice_t`` is dropped)."""
        present = ~np.isnan(values)
        vals = np.where(present, values, 0.0)
        self.values[users, items] = vals
        self.mask[users, items] = present
        self.mask_t[items, users] = present
        self.seq[users, items] = np.where(present, seqs, -1)
        if self.twice_t is not None:
            if twice:
                self.twice_t[items, users] = (2.0 * vals).astype(np.int8)
            else:
                self.twice_t = None

    def write_one(
        self, user: int, item: int, value: float | None, seq: int, *, twice: bool
    ) -> None:
        """Set one cell (``None``: remove the rating); ``twice`` as in :meth:`write`."""
        present = value is not None
        vals = 0.0 if value is None else value
        self.values[user, item] = vals
        self.mask[user, item] = present
        self.mask_t[item, user] = present
        self.seq[user, item] = seq if present else -1
        if self.twice_t is not None:
            if twice:
                self.twice_t[item, user] = int(2.0 * vals)
            else:
                self.twice_t = None
