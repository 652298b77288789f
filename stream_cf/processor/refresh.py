"""Which users' lists may have changed after a batch: the refresh policies.

The processor knows no similarity formula; it only relies on this property of the engine's API: a
user's list depends on their own data and on the data of the users who share at least one item
with them (their co-raters: only they can have a non-zero similarity, and a neighbour's mean, a
neighbour's rating and the set of candidate items all come from co-raters), except a fallback list
(``Recommendations.fallback`` set, e.g. popularity for a user with no usable neighbour), which may
depend on every event.

``neighbours`` (exact): refresh the actors, every co-rater of an actor before the batch and after
it (so a taken-back rating or a forgotten user still reaches the users it influenced), and every
user whose last list was a fallback. After each batch every user's last computed list is the one a
batch computation over the same events gives, whatever the batch boundaries.

``actors`` (cheap): refresh only the users who acted in the batch. A user's published list then
reflects the state at the end of the last batch that contained one of their own events; changes
made later by their co-raters (new ratings, take-backs, forgotten users) are not reflected until
they act again, and the lists depend on where batches were cut.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class RaterIndex(Protocol):
    """The part of the UserKNN API the refresh policies read."""

    @property
    def n_users(self) -> int: ...

    def has_user(self, user: str) -> bool: ...

    def user_items(self, user: str) -> dict[str, float]: ...

    def raters(self, item: str) -> list[str]: ...


def co_raters(engine: RaterIndex, users: Iterable[str]) -> set[str]:
    """The existing ``users`` and every user who shares an item with one of them.

    An engine with its own ``co_raters`` (UserKNN: one vectorized pass over the rating mask)
    answers directly; otherwise the items' raters are looked up one by one."""
    direct = getattr(engine, "co_raters", None)
    if direct is not None:
        found: set[str] = direct(users)
        return found
    found = set()
    expanded: set[str] = set()
    total = engine.n_users
    for user in sorted(set(users)):
        if not engine.has_user(user):
            continue
        found.add(user)
        for item in engine.user_items(user):
            if item in expanded:
                continue
            expanded.add(item)
            found.update(engine.raters(item))
            if len(found) >= total:  # everybody already: nothing more to find
                return found
    return found
