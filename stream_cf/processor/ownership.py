"""Which users this instance owns when several instances share the input (``--scale-out``).

Every instance reads every input partition and applies every event (its ratings are everyone's),
but it keeps pair rows for, computes and publishes the lists of only the users it **owns**: those
whose key hashes to an input partition the consumer group assigned to it, by Kafka's default
partitioner (the one a producer keying records by user id uses)::

    partition(u) = (murmur2(utf8(u)) & 0x7fffffff) mod P        (P: the input's partitions)

Each user has one partition, and the group assigns each partition to one member, so each user has
exactly one owner at a time, whatever partition a producer actually wrote the user's records to
(keying by user still matters: it keeps each user's events in order).

Between a revocation and the next assignment (a rebalance) the instance owns nobody and is
*unsettled*: lists owed meanwhile stay pending and are computed once the assignment says whose
they are. One instance per topic (no scale-out) owns everyone, always.
"""

from __future__ import annotations

from collections.abc import Iterable

from kafka.partitioner.default import murmur2

from stream_cf.processor.codec import encode_key


def partition_of(user: str, partitions: int) -> int:
    """The input partition Kafka's default partitioner gives ``user``'s key."""
    return int(murmur2(encode_key(user)) & 0x7FFFFFFF) % partitions


class Ownership:
    """The partitions assigned to this instance and the users they give it."""

    def __init__(self, *, scale_out: bool) -> None:
        self.scale_out = scale_out
        self.partitions = 0  # the input's partition count (set once the topic is known)
        self.assigned: frozenset[int] = frozenset()
        self.settled = not scale_out  # owns what ``assigned`` says (not in a rebalance)
        self._cache: dict[str, int] = {}

    def partition(self, user: str) -> int:
        """``user``'s partition (cached: the hash is pure Python)."""
        found = self._cache.get(user)
        if found is None:
            found = self._cache[user] = partition_of(user, self.partitions)
        return found

    def owns(self, user: str) -> bool:
        """Whether this instance computes and publishes ``user``'s list now."""
        if not self.scale_out:
            return True
        return self.settled and self.partition(user) in self.assigned

    def owns_partition(self, partition: int) -> bool:
        """Whether this instance publishes what records of ``partition`` give (dead letters)."""
        if not self.scale_out:
            return True
        return self.settled and partition in self.assigned

    def mine(self, users: Iterable[str]) -> list[str]:
        """The users of ``users`` this instance owns now, in order."""
        return [user for user in users if self.owns(user)]

    def of_partitions(self, users: Iterable[str], partitions: Iterable[int]) -> list[str]:
        """The users of ``users`` whose partition is one of ``partitions``."""
        wanted = set(partitions)
        return [user for user in users if self.partition(user) in wanted]

    def unsettle(self) -> None:
        """A rebalance began (partitions revoked or lost): nobody is owned until it ends."""
        self.settled = False

    def settle(self, assigned: Iterable[int]) -> tuple[frozenset[int], frozenset[int]]:
        """A rebalance ended with ``assigned``: return the partitions (gained, lost)."""
        new = frozenset(assigned)
        gained, lost = new - self.assigned, self.assigned - new
        self.assigned = new
        self.settled = True
        return gained, lost

    def forget(self, user: str) -> None:
        """Drop a forgotten user's cached partition."""
        self._cache.pop(user, None)
