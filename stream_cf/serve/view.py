"""The materialised view: the latest list of every user in the output topic, in memory.

The output topic is a changelog keyed by user id (:mod:`stream_cf.processor.codec`): a record
replaces the user's list, a tombstone (null value) removes the user. :meth:`ListView.apply` takes
the records in the order one partition delivers them (a user's records are all in one partition,
whatever processor instance wrote them) and tells its listeners of every change.

Writes come from one thread (the follower's); reads (``get``, ``popular``, ``users``) from any
thread. A read of one user is one dict lookup; the item counts behind ``popular`` and the user
index change under a lock.

``popular(n)``: the items shown in the most held lists, each scored by the share of the held
lists that show it (ties: the item id). It is what ``?fallback=popular`` answers for a user with
no list: the processor's own popularity fallback lives in its engine, which this server does not
run, so "popular" is read from what the server holds.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from stream_cf.serve.held_list import HeldList, UnreadableList, read_list

logger = logging.getLogger(__name__)

POPULAR_REASON = "unknown user: the items in the most held lists"


@dataclass(frozen=True, slots=True)
class Change:
    """A user's list replaced (``held``) or removed (``held`` None: a tombstone)."""

    user_id: str
    held: HeldList | None
    partition: int
    offset: int


Listener = Callable[[Change], None]


class ListView:
    """The latest list of each user; ``popular_size`` items kept in the popularity list."""

    def __init__(self, popular_size: int = 100, *, popular_every: float = 1.0) -> None:
        self._lists: dict[str, HeldList] = {}
        self._lock = threading.Lock()
        self._item_counts: Counter[str] = Counter()
        self._listeners: list[Listener] = []
        self._popular_size = popular_size
        self._popular_every = popular_every
        self._popular: list[tuple[str, float]] = []
        self._popular_at = -float("inf")
        self._version = 0
        self._popular_version = -1
        self._sorted_users: list[str] | None = None
        self.records = 0
        self.tombstones = 0
        self.unreadable = 0

    def __len__(self) -> int:
        return len(self._lists)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._lists

    def get(self, user_id: str) -> HeldList | None:
        """The user's latest list, or None."""
        return self._lists.get(user_id)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(change)`` after every change (in the writing thread)."""
        self._listeners.append(listener)

    def apply(
        self,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int,
        offset: int,
        timestamp_ms: int | None = None,
    ) -> Change | None:
        """Apply one output record; the change, or None for a record that is not a list."""
        self.records += 1
        try:
            user = key.decode("utf-8") if key is not None else None
        except UnicodeDecodeError:
            user = None
        if value is None:
            if user is None:
                self._unreadable(partition, offset, "a tombstone without a UTF-8 key")
                return None
            self.tombstones += 1
            change = Change(user, None, partition, offset)
        else:
            try:
                held = read_list(
                    user if user is not None else _user_of(value),
                    value,
                    partition=partition,
                    offset=offset,
                    timestamp_ms=timestamp_ms,
                )
            except UnreadableList as exc:
                self._unreadable(partition, offset, str(exc))
                return None
            change = Change(held.user_id, held, partition, offset)
        self._store(change)
        for listener in self._listeners:
            listener(change)
        return change

    def popular(self, n: int) -> list[tuple[str, float]]:
        """The ``n`` items in the most held lists (at most ``popular_size``), each with the share
        of the lists that show it; recomputed at most every ``popular_every`` seconds."""
        now = time.monotonic()
        if self._popular_version != self._version and now - self._popular_at >= (
            self._popular_every
        ):
            with self._lock:
                total = len(self._lists)
                top = heapq.nsmallest(
                    self._popular_size,
                    self._item_counts.items(),
                    key=lambda pair: (-pair[1], pair[0]),
                )
                self._popular_version = self._version
            self._popular = [(item, count / total) for item, count in top] if total else []
            self._popular_at = now
        return self._popular[:n]

    def users(self, prefix: str = "", limit: int = 20) -> tuple[list[str], int]:
        """Up to ``limit`` user ids starting with ``prefix`` (in text order) and how many match."""
        with self._lock:
            if self._sorted_users is None:
                self._sorted_users = sorted(self._lists)
            ordered = self._sorted_users
        if not prefix:
            return ordered[:limit], len(ordered)
        start = bisect_left(ordered, prefix)
        found: list[str] = []
        matching = 0
        for user in ordered[start:]:
            if not user.startswith(prefix):
                break
            matching += 1
            if len(found) < limit:
                found.append(user)
        return found, matching

    def _store(self, change: Change) -> None:
        with self._lock:
            old = self._lists.get(change.user_id)
            if old is not None:
                self._item_counts.subtract(old.item_ids)
                for item in old.item_ids:
                    if self._item_counts[item] <= 0:
                        del self._item_counts[item]
            if change.held is None:
                self._lists.pop(change.user_id, None)
            else:
                self._lists[change.user_id] = change.held
                self._item_counts.update(change.held.item_ids)
            if (old is None) != (change.held is None):
                self._sorted_users = None  # a user came or went
            self._version += 1

    def _unreadable(self, partition: int, offset: int, why: str) -> None:
        self.unreadable += 1
        logger.warning(
            "skipping the output record at partition %d offset %d: %s", partition, offset, why
        )


def _user_of(value: bytes) -> str:
    """The ``user_id`` of a value whose record has no key."""
    try:
        document = orjson.loads(value)
        return str(document["user_id"])
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise UnreadableList(f"no key and no user_id: {exc}") from exc
