"""Id maps: string id <-> dense slot, for users and items.

Users and items get dense integer slots so that every read is a numpy operation. Ids are arbitrary
strings. A user's slot is released when the user disappears (``forget_user``, or the last rating
taken back) and the lowest free slot is reused first, so slot assignment is deterministic. Item
slots are never released: an item's slot number is its first appearance in the stream, which
orders ties.

The string -> slot direction is a hash table, and a hash table that grows is rebuilt whole: a
single CPython dict of 699,051 ids rebuilds itself when the next id comes (~40-100 ms, the slowest
batch of a million-user stream by 2×), of 1.4M ids ~130 ms, and so on, doubling with the ids.
:class:`SlotTable` spreads the ids over :data:`SHARDS` dicts chosen by 8 high bits of the id's
hash, so each rebuild moves 1/256th of them (under a millisecond at a million ids). Its batch read
(:meth:`SlotTable.lookup`) is a chain of C iterators; a batch probes it once per distinct id and
finds each event's slot in a dict of the batch's own ids (:mod:`~stream_cf.engine.fast`).
"""

from __future__ import annotations

import heapq
import itertools
import operator
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any, TypeVar, overload

_T = TypeVar("_T")

SHARDS = 256
# An id's shard is the top 8 bits of hash(id) (a signed 64-bit int, so -128..127: a negative
# index counts from the end of the list of shards). Not the low bits: a dict places a key by the
# low bits of its hash, so the keys of a shard chosen by them would collide in it.
_SHIFT = 56


class SlotTable(MutableMapping[str, int]):
    """A str -> int mapping in :data:`SHARDS` dicts (no single large rebuild as it grows).

    Iteration is in no particular order (by shard, then by insertion within a shard; the shard of
    an id depends on the process's string hash seed): callers that need an order sort."""

    __slots__ = ("_shards",)

    def __init__(self, items: Iterable[tuple[str, int]] = ()) -> None:
        self._shards: list[dict[str, int]] = [{} for _ in range(SHARDS)]
        for key, value in items:
            self[key] = value

    def __getitem__(self, key: str) -> int:
        return self._shards[hash(key) >> _SHIFT][key]

    @overload
    def get(self, key: str, /) -> int | None: ...
    @overload
    def get(self, key: str, /, default: int | _T) -> int | _T: ...
    def get(self, key: str, /, default: object = None) -> object:
        return self._shards[hash(key) >> _SHIFT].get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._shards[hash(key) >> _SHIFT]

    def __setitem__(self, key: str, value: int) -> None:
        self._shards[hash(key) >> _SHIFT][key] = value

    def __delitem__(self, key: str) -> None:
        del self._shards[hash(key) >> _SHIFT][key]

    def __len__(self) -> int:
        return sum(map(len, self._shards))

    def __iter__(self) -> Iterator[str]:
        return itertools.chain.from_iterable(self._shards)

    def _tables(self, keys: Iterable[str]) -> Iterator[dict[str, int]]:
        """The shard of each key, in order (C iterators, no Python-level call per key)."""
        top = map(operator.rshift, map(hash, keys), itertools.repeat(_SHIFT))
        return map(self._shards.__getitem__, top)

    def lookup(self, keys: list[str], missing: int = -1) -> list[int]:
        """The slot of each key, ``missing`` for a key not held (one pass, no Python-level call
        per key)."""
        return list(map(dict.get, self._tables(keys), keys, itertools.repeat(missing)))


class IdMap:
    """A bijection between string ids and dense slots, with a free list of released slots."""

    def __init__(self) -> None:
        self.slot_of = SlotTable()
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
        self.slot_of._shards[hash(key) >> _SHIFT][key] = slot  # (no method call)
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
        out.slot_of = SlotTable(
            (key, slot) for slot, key in enumerate(out.id_of) if key is not None
        )
        out.free = sorted(int(slot) for slot in meta["free"])
        heapq.heapify(out.free)
        return out
