"""What was last published per user, and whose list is owed a refresh.

:class:`ListTracker` keeps, across batches and (through the checkpoint) across restarts:

- ``digests``: the digest of the last list published per user (a tombstone removes the entry);
- ``fallback_users``: users whose last computed list was a fallback (it may depend on any event);
- ``pending``: users whose list may have changed but has not been recomputed yet.

Per batch, the users who acted are recomputed at once (their lists are the latency-critical ones;
when the batch was full, i.e. the processor is catching up, they are deferred like the others);
under the ``neighbours`` policy everyone else whose list may have changed (below) joins
``pending``, which the loop drains in slices of bounded time between batches. A user pending
over several batches is computed once, against the latest state. Invariant: every existing user
not in ``pending`` has a last computed list equal to the list of the current state, and its digest
is the one last published (once the batch's records are acknowledged).

The refresh policies. The processor knows no similarity formula; it only relies on this property of
the engine's API: a user's list depends on their own data and on the data of the users who share at
least one item with them (their co-raters: only they can have a non-zero similarity, and a
neighbour's mean, a neighbour's rating and the set of candidate items all come from co-raters),
except a fallback list (``Recommendations.fallback`` set, e.g. popularity for a user with no usable
neighbour), which may depend on every event.

``neighbours`` (exact): refresh the actors, every co-rater of an actor before the batch and after
it (so a taken-back rating or a forgotten user still reaches the users it influenced), and every
user whose last list was a fallback. After each batch every user's last computed list is the one a
batch computation over the same events gives, whatever the batch boundaries. The co-raters before
the batch are looked up only for the actors who lose an item in it (``unrate``, ``forget_user``):
a rating or a purchase only adds items or changes values, so the other actors' co-raters before
the batch are still their co-raters after it (unless the co-rater took the shared item back: then
the co-rater is a losing actor, looked up); and not at all when every list is owed a refresh
anyway (``UserKNN.predictions_follow_every_event``, below). The look-up runs before the actors'
lists, so sparing it sends them sooner.

``actors`` (cheap): refresh only the users who acted in the batch. A user's published list then
reflects the state at the end of the last batch that contained one of their own events; changes
made later by their co-raters (new ratings, take-backs, forgotten users) are not reflected until
they act again, and the lists depend on where batches were cut.

Under the ``vote`` and ``item`` rankings a list also depends on the rater count of each candidate
item (``UserKNN.lists_follow_item_counts``): an event that adds a rater to an item lowers that
item's score for every user who is not a co-rater of the actor, so only the lists that show the
item change (``shown``: the items of each user's last computed list); a take-back (``unrate``,
``forget_user``) raises it, which may bring the item into the list of any co-rater of its remaining
raters, who are owed a refresh too. Under ``vote`` with a negative damping
(``UserKNN.lists_rise_with_item_counts``: scores grow with an item's raters) every item the batch
touched is treated as a take-back: the co-raters of its raters are owed a refresh.

Explicit lists carry each item's predicted rating. Under ``knn_baseline``
(``UserKNN.predictions_follow_every_event``) a prediction holds the global mean and the items'
biases, which any rating moves: every user is owed a refresh after every batch that changed
anything (drained in slices like the others; the actors first, as always).

The co-raters come from the engine (``UserKNN.co_raters``: one vectorized pass over its mask).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from stream_cf.engine import BatchEffect, UserKNN
from stream_cf.events import Event, ForgetUserEvent, UnrateEvent
from stream_cf.processor.codec import list_digest


@dataclass(frozen=True)
class ChangedList:
    """A list to publish."""

    user: str
    items: list[tuple[str, float]]
    fallback: str | None
    ratings: list[float] | None = None  # each item's predicted rating (explicit feedback)


@dataclass(frozen=True)
class BeforeBatch:
    """Read before a batch applies: the co-raters of its actors, and the items that may lose a
    rater in it (only looked up when lists follow item counts)."""

    co_raters: set[str]
    shrinking: set[str]


@dataclass
class ListTracker:
    """Digests of published lists, fallback users and pending refreshes (see module doc)."""

    policy: str
    n: int
    digests: dict[str, str] = field(default_factory=dict)
    fallback_users: set[str] = field(default_factory=set)
    pending: set[str] = field(default_factory=set)
    shown: dict[str, frozenset[str]] = field(default_factory=dict)  # user -> items of the list
    showing: dict[str, set[str]] = field(default_factory=dict)  # item -> users whose list has it
    recomputed: int = 0
    recompute_seconds: float = 0.0
    # running estimate of one list's cost in recompute(): pessimistic at first, so that the first
    # drain after a start (a restored backlog of pending users) stays within its budget
    seconds_per_list: float = 0.02
    # scale-out: whether this instance computes a user's list (else every user's, see scaleout.py)
    owns: Callable[[str], bool] | None = None

    def before_batch(self, engine: UserKNN, events: Sequence[Event]) -> BeforeBatch:
        """What the batch's refresh needs from the state before it applies: the co-raters of the
        actors and the items that may lose a rater (taken back, or a forgotten user's)."""
        actors = {event.user_id for event in events}
        if self.policy != "neighbours":
            return BeforeBatch(set(), set())
        shrinking: set[str] = set()
        if engine.lists_follow_item_counts:
            for event in events:
                if isinstance(event, UnrateEvent):
                    shrinking.add(event.item_id)
                elif isinstance(event, ForgetUserEvent):
                    shrinking.update(engine.user_items(event.user_id))
        if engine.predictions_follow_every_event:
            # a batch that changes anything owes every list a refresh (after_batch), one that
            # changes nothing owes none: the co-raters before it would add nobody
            return BeforeBatch(set(), shrinking)
        # Only an actor who loses an item in the batch (a take-back, or forgotten) can lose a
        # co-rater: every other actor keeps its items, so its co-raters before the batch are
        # among its co-raters after it, which after_batch looks up (a co-rater who took the
        # shared item back is itself a losing actor, whose co-raters before are looked up here)
        losing = {
            event.user_id for event in events if isinstance(event, UnrateEvent | ForgetUserEvent)
        }
        if not losing or self._everyone_owed(engine, actors):
            return BeforeBatch(set(), shrinking)
        return BeforeBatch(engine.co_raters(losing), shrinking)

    def _everyone_owed(self, engine: UserKNN, actors: Iterable[str]) -> bool:
        """Whether pending and the actors already cover every user, so no co-rater needs
        looking up. Only users that exist count: while a batch's debts are recorded, ``pending``
        holds the co-raters found before the batch, among them users the batch forgot (removed
        at the end of :meth:`after_batch`); counting them let a batch that forgot users skip the
        look-up of its actors' co-raters and leave their lists stale."""
        covered = self.pending.union(actors)
        if len(covered) < engine.n_users:  # fewer even counting the gone ones: no need to count
            return False
        return sum(1 for user in covered if engine.has_user(user)) >= engine.n_users

    def after_batch(
        self, engine: UserKNN, effect: BatchEffect, before: BeforeBatch, *, defer: bool = False
    ) -> list[str]:
        """Record what the batch owes; return the users to recompute now (the actors).

        With ``defer`` (the consumer is behind: the batch was full) the actors join ``pending``
        too, so that under lag each list is computed once, after the backlog, not per batch.
        """
        now = sorted(user for user in effect.users if engine.has_user(user))
        if self.policy == "neighbours":
            # The raters of the touched items need no look-up of their own: an actor who still
            # has the item finds them among their co-raters now, one who took it back (or was
            # forgotten) found them among their co-raters before the batch.
            self.pending |= before.co_raters | self.fallback_users
            if engine.predictions_follow_every_event and (
                effect.users or effect.items or effect.forgotten
            ):  # the lists' predicted ratings hold μ and b_i: every list is owed a refresh
                self.pending.update(engine.users())
            if not self._everyone_owed(engine, now):
                self.pending |= engine.co_raters(effect.users)
            if engine.lists_follow_item_counts:
                for item in effect.items:
                    self.pending |= self.showing.get(item, set())
                rising = before.shrinking  # items whose scores may have risen
                if engine.lists_rise_with_item_counts:
                    rising = rising | effect.items
                raters = {rater for item in rising for rater in engine.raters(item)}
                if raters and not self._everyone_owed(engine, now):
                    self.pending |= engine.co_raters(raters)
        if defer:
            self.pending.update(now)
            now = []
        else:
            self.pending.difference_update(now)
            if self.owns is not None:
                now = [user for user in now if self.owns(user)]
        for user in effect.forgotten:
            self.pending.discard(user)
            self.fallback_users.discard(user)
            self.digests.pop(user, None)
            self._show(user, frozenset())
        return now

    def _show(self, user: str, items: frozenset[str]) -> None:
        """Record the items of ``user``'s last computed list (the inverted index follows)."""
        old = self.shown.get(user, frozenset())
        if old == items:
            return
        for item in old - items:
            users = self.showing.get(item)
            if users is not None:
                users.discard(user)
                if not users:
                    del self.showing[item]
        for item in items - old:
            self.showing.setdefault(item, set()).add(user)
        if items:
            self.shown[user] = items
        else:
            self.shown.pop(user, None)

    def recompute(self, engine: UserKNN, users: list[str]) -> list[ChangedList]:
        """Compute the lists of ``users``; return those that differ from the last published."""
        changed: list[ChangedList] = []
        if not users:
            return changed
        started = time.perf_counter()
        lists = engine.recommend_many(users, n=self.n)
        self.recompute_seconds += time.perf_counter() - started
        self.recomputed += len(users)
        for user in users:
            recs = lists[user]
            if recs.fallback is None:
                self.fallback_users.discard(user)
                self._show(user, frozenset(item for item, _ in recs.items))
            else:
                self.fallback_users.add(user)
                self._show(user, frozenset())
            ratings = None
            if not engine.implicit and recs.items:
                ratings = engine.predict_many(user, [item for item, _ in recs.items])
            digest = list_digest(recs.items, recs.fallback, ratings)
            if self.digests.get(user) != digest:
                self.digests[user] = digest
                changed.append(ChangedList(user, list(recs.items), recs.fallback, ratings))
        # the estimate a refresh slice sizes its chunks by: the whole list (ranking, predicted
        # ratings, digest), not the ranking alone (recompute_seconds), which under-counted it
        # 2-5x once the predicted ratings were the larger part (BENCHMARKS.md, Pipeline)
        elapsed = time.perf_counter() - started
        self.seconds_per_list = 0.7 * self.seconds_per_list + 0.3 * elapsed / len(users)
        return changed

    def drain(
        self, engine: UserKNN, budget: float, *, chunk: int | None = None
    ) -> list[ChangedList]:
        """Recompute pending users (in id order) for about ``budget`` seconds.

        Users are computed ``chunk`` at a time in one ``recommend_many`` call (batched: much
        cheaper per user than one by one); by default as many as the running estimate of a
        list's cost fits in the budget (1 to 256).
        """
        deadline = time.monotonic() + budget
        if chunk is None:
            chunk = min(256, max(1, int(budget / max(self.seconds_per_list, 1e-6))))
        changed: list[ChangedList] = []
        queue = sorted(self.pending)
        owns = self.owns
        if owns is not None:  # another instance's users are none of this one's business
            self.pending = {user for user in self.pending if owns(user)}
            queue = sorted(self.pending)
        for start in range(0, len(queue), chunk):
            users = [user for user in queue[start : start + chunk] if engine.has_user(user)]
            changed.extend(self.recompute(engine, users))
            self.pending.difference_update(queue[start : start + chunk])
            if time.monotonic() >= deadline:
                break
        return changed

    def hand_over(self, users: Iterable[str]) -> None:
        """Scale-out: ``users`` now belong to another instance; forget what was kept of them."""
        for user in users:
            self.digests.pop(user, None)
            self.pending.discard(user)
            self.fallback_users.discard(user)
            self._show(user, frozenset())

    def take_over(self, users: Iterable[str]) -> None:
        """Scale-out: ``users`` now belong to this instance; each is owed a list, published
        whatever this instance published of it before (another owner may have since)."""
        for user in users:
            self.digests.pop(user, None)
            self.pending.add(user)

    def record_published(self, user: str, digest: str | None) -> None:
        """A record found on the output topic (digest None for a tombstone)."""
        if digest is None:
            self.digests.pop(user, None)
        else:
            self.digests[user] = digest

    def restore_shown(self, shown: dict[str, list[str]]) -> None:
        """The items of each user's last computed list, as checkpointed."""
        self.shown.clear()
        self.showing.clear()
        for user, items in shown.items():
            self._show(user, frozenset(items))
