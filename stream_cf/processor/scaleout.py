"""Several instances sharing one input topic (``--scale-out``): rebalances and takeovers.

Each instance reads every input partition and applies every event, so every instance's ratings are
everyone's; it owns the users of the partitions the group assigns it (ownership.py) and keeps pair
rows for, computes and publishes the lists of only those. What :class:`ScaleOut` does:

- **Start**: before joining the group the instance applies the input up to the end offsets it
  finds (owning nobody, publishing nothing), so that it never publishes a list from part of the
  ratings when it joins a running group.
- **Rebalance** (:meth:`ScaleOut.poll`, once per loop iteration): on a revocation it owns nobody
  until the new assignment (the lists owed meanwhile wait in ``pending``). On the assignment it
  drops the pair rows, digests and pending refreshes of the users it lost, builds the rows of the
  users it gained from the ratings it holds (in slices between batches: until then their
  similarities are computed from the ratings, the same numbers), and owes each of them a list:
  their digests are forgotten, so every gained user's list is published again even if it equals
  what this instance published before (another owner may have published since). The assignor is
  sticky, so a join or a death moves as few partitions as it can. The results do not depend on who
  owned whom when: every list is computed from the whole state.
- **Dead letters** are the same on every instance (a record's validation depends only on its
  user's own earlier events, which are in order on its partition); the owner of the record's
  partition publishes them. The others hold theirs in memory, per partition, until the owner's
  committed position on that partition passes them; a new owner publishes the held dead letters
  past the committed position of each partition it gained (the previous owner may have died
  before publishing them: at least once, none lost).
- **Erasures**: a forgotten user's tombstone comes from the owner. The others remember the ids
  of users forgotten while someone else owned them (in memory only) and publish the tombstones of
  those whose partition they gain, unless the user came back since.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from stream_cf.engine import UserKNN
from stream_cf.processor.codec import encode_key
from stream_cf.processor.membership import GroupMembership
from stream_cf.processor.ownership import Ownership
from stream_cf.processor.publisher import OutgoingRecord
from stream_cf.processor.settings import ProcessorSettings
from stream_cf.processor.summary import RunSummary
from stream_cf.processor.tracker import ListTracker

logger = logging.getLogger(__name__)


@dataclass
class HeldDeadLetters:
    """Dead letters of partitions this instance does not own: (offset, record) per partition."""

    by_partition: dict[int, list[tuple[int, OutgoingRecord]]] = field(default_factory=dict)

    def hold(self, partition: int, offset: int, record: OutgoingRecord) -> None:
        self.by_partition.setdefault(partition, []).append((offset, record))

    def take(self, partition: int, since: int) -> list[OutgoingRecord]:
        """Remove the partition's held dead letters; return those at or after ``since``."""
        held = self.by_partition.pop(partition, [])
        return [record for offset, record in held if offset >= since]

    def trim(self, committed: dict[int, int]) -> None:
        """Drop the dead letters below each partition's committed position (published)."""
        for partition, since in committed.items():
            held = self.by_partition.get(partition)
            if held:
                self.by_partition[partition] = [(o, r) for o, r in held if o >= since]

    def __len__(self) -> int:
        return sum(len(held) for held in self.by_partition.values())


class ScaleOut:
    """Ownership, group membership and takeovers of one instance (see module doc)."""

    def __init__(self, settings: ProcessorSettings, stop_requested: Callable[[], bool]) -> None:
        self.settings = settings
        self.enabled = settings.scale_out
        self.ownership = Ownership(scale_out=settings.scale_out)
        self.membership = GroupMembership(settings, stop_requested)
        self.held = HeldDeadLetters()
        self.forgotten: set[str] = set()  # forgotten while another instance owned them
        self.revoked_at: float | None = None
        self.session_timeout = settings.session_timeout
        self.to_build: list[str] = []  # owned users whose pair rows are still to be built
        # whether the engine keeps pair rows for its owned users only (it must be told whom)
        self.rows = settings.engine_config().get("pair_rows") == "owned"

    # ------------------------------------------------------------------ set-up
    def start(self, partitions: int) -> None:
        self.ownership.partitions = partitions

    def join(self) -> None:
        """Join the group (after the catch-up)."""
        if self.enabled:
            self.membership.open()

    def close(self) -> None:
        if self.enabled:
            self.membership.close()

    @property
    def settled(self) -> bool:
        return self.ownership.settled

    # ------------------------------------------------------------------ per batch
    def route_dead_letter(
        self, partition: int, offset: int, record: OutgoingRecord
    ) -> OutgoingRecord | None:
        """The dead letter if this instance publishes it now, else None (held)."""
        if self.ownership.owns_partition(partition):
            return record
        self.hold(partition, offset, record)
        return None

    def hold(self, partition: int, offset: int, record: OutgoingRecord) -> None:
        self.held.hold(partition, offset, record)

    def note_forgotten(self, user: str) -> bool:
        """A user was forgotten: True if this instance publishes the tombstone now."""
        owned = self.ownership.owns(user)
        self.ownership.forget(user)  # no cached hash of an erased user (recomputed if needed)
        if not owned:
            self.forgotten.add(user)
        return owned

    def own_new_users(self, engine: UserKNN, users: Iterable[str]) -> None:
        """Pair rows for the owned users among ``users`` that the engine does not own yet."""
        if not self.rows:
            return
        new = [u for u in self.ownership.mine(users) if engine.has_user(u) and not engine.owns(u)]
        if new:
            engine.own(new)

    def build_rows(self, engine: UserKNN, budget: float) -> None:
        """Build the pair rows of gained users for about ``budget`` seconds (between batches).
        Until a user's rows are built the engine computes the user's similarities from the
        ratings (the same numbers, more slowly), so a takeover publishes the gained users' lists
        without waiting for every row, and rows of users lost again soon (the first instance
        to join briefly owns everyone) are never built."""
        if not self.to_build:
            return
        deadline = time.monotonic() + budget
        step = 16
        while self.to_build and time.monotonic() < deadline:
            chunk, self.to_build = self.to_build[:step], self.to_build[step:]
            engine.own([u for u in chunk if self.ownership.owns(u)])
        if not self.to_build:
            logger.info("pair rows of the gained users built")

    def commit(self, positions: dict[int, int]) -> None:
        """Commit the positions applied and published on the owned partitions."""
        if self.enabled and self.ownership.settled and self.ownership.assigned:
            self.membership.commit(positions, self.ownership.assigned)

    def trim(self) -> None:
        """Drop held dead letters the owners have published (checkpoint time)."""
        if self.enabled and len(self.held):
            others = frozenset(self.held.by_partition) - self.ownership.assigned
            self.held.trim(self.membership.committed(others))

    # ------------------------------------------------------------------ rebalances
    def poll(
        self, engine: UserKNN, tracker: ListTracker, summary: RunSummary, *, wait: float = 0.0
    ) -> list[OutgoingRecord]:
        """Drive the group protocol (waiting up to ``wait`` seconds); on an assignment, hand the
        lost users over and take the gained ones; return the records owed at once (held dead
        letters, tombstones)."""
        if not self.enabled:
            return []
        outgoing: list[OutgoingRecord] = []
        stuck = self.session_timeout * 2 + 10.0
        since = self.revoked_at if self.revoked_at is not None else self.membership.joined_at
        if not self.ownership.settled and time.monotonic() - since > stuck:
            self.membership.rejoin()
            self.revoked_at = time.monotonic()
        for step in self.membership.poll(wait):
            if step.kind in ("revoked", "lost"):
                if self.ownership.settled:
                    self.revoked_at = time.monotonic()
                self.ownership.unsettle()
                logger.info(
                    "partitions %s %s: owning nobody until the new assignment",
                    sorted(step.partitions),
                    step.kind,
                )
                continue
            outgoing.extend(self._assigned(engine, tracker, summary, step.partitions))
        return outgoing

    def _assigned(
        self,
        engine: UserKNN,
        tracker: ListTracker,
        summary: RunSummary,
        partitions: frozenset[int],
    ) -> list[OutgoingRecord]:
        started = time.monotonic()
        previous = self.ownership.assigned
        gained, lost = self.ownership.settle(partitions)
        ownership = self.ownership
        users = engine.users()
        lost_users = ownership.of_partitions(users, lost) if lost else []
        if lost_users:
            if self.rows:
                engine.disown(lost_users)
            tracker.hand_over(lost_users)
        mine = ownership.mine(users)
        gained_users = [u for u in mine if ownership.partition(u) in gained]
        if self.rows:  # the gained users' rows, and those of users created during the rebalance
            self.to_build = [u for u in mine if not engine.owns(u)]
        tracker.take_over(gained_users)
        outgoing: list[OutgoingRecord] = []
        committed = self.membership.committed(gained) if gained else {}
        for partition in sorted(gained):
            outgoing.extend(self.held.take(partition, committed.get(partition, 0)))
        for user in sorted(self.forgotten):
            if ownership.owns(user):
                self.forgotten.discard(user)
                ownership.forget(user)
                if not engine.has_user(user):
                    outgoing.append(
                        OutgoingRecord(self.settings.output_topic, encode_key(user), None)
                    )
                    summary.tombstones += 1
        summary.rebalances += 1
        summary.gained_users += len(gained_users)
        summary.owned_partitions = sorted(partitions)
        waited = (
            ""
            if self.revoked_at is None
            else f" {started - self.revoked_at:.1f}s after the revocation,"
        )
        logger.info(
            "assigned partitions %s (was %s):%s gained %d users, lost %d; owning %d users "
            "(%d rows to build, handed over in %.2fs); %d held dead letters and tombstones to "
            "publish",
            sorted(partitions),
            sorted(previous),
            waited,
            len(gained_users),
            len(lost_users),
            len(mine),
            len(self.to_build),
            time.monotonic() - started,
            len(outgoing),
        )
        return outgoing
