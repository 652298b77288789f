"""Events that are well formed but cannot be applied to the state: caught before the batch.

``UserKNN.apply_many`` stops at an ``unrate`` of a (user, item) pair that has no rating
(``UnknownRating``) and at a ``purchase`` when the feedback is explicit (``unsupported_event``).
:class:`BatchChecker` follows the pairs the batch creates, removes and forgets, on top of the
engine's state, so such an event goes to the dead-letter topic (reason ``unknown_rating`` or
``unsupported_event``) and the rest of the batch is applied.
"""

from __future__ import annotations

from typing import Protocol

from stream_cf.events import Event, ForgetUserEvent, PurchaseEvent, RatingEvent, UnrateEvent


class PairIndex(Protocol):
    """The part of the UserKNN API the checker reads."""

    def has_user(self, user: str) -> bool: ...

    def user_items(self, user: str) -> dict[str, float]: ...


class BatchChecker:
    """Tracks one batch's pair changes over an engine's state that the batch has not touched yet."""

    def __init__(self, engine: PairIndex, *, implicit: bool) -> None:
        self._engine = engine
        self._implicit = implicit
        self._present: dict[tuple[str, str], bool] = {}
        self._forgotten: set[str] = set()
        self._items_of: dict[str, set[str]] = {}

    def _exists(self, user: str, item: str) -> bool:
        known = self._present.get((user, item))
        if known is not None:
            return known
        if user in self._forgotten or not self._engine.has_user(user):
            return False
        items = self._items_of.get(user)
        if items is None:
            items = set(self._engine.user_items(user))
            self._items_of[user] = items
        return item in items

    def check(self, event: Event) -> tuple[str, str] | None:
        """None if ``event`` can be applied after the ones checked before; else (reason, message).

        An accepted event is recorded, a rejected one is not.
        """
        if isinstance(event, UnrateEvent):
            if not self._exists(event.user_id, event.item_id):
                return (
                    "unknown_rating",
                    f"user {event.user_id!r} has no rating of item {event.item_id!r} to take back",
                )
            self._present[(event.user_id, event.item_id)] = False
        elif isinstance(event, PurchaseEvent) and not self._implicit:
            return (
                "unsupported_event",
                "a purchase needs feedback='implicit'; this processor runs with explicit ratings",
            )
        elif isinstance(event, RatingEvent | PurchaseEvent):
            self._present[(event.user_id, event.item_id)] = True
        elif isinstance(event, ForgetUserEvent):
            self._forgotten.add(event.user_id)
            for pair in [p for p in self._present if p[0] == event.user_id]:
                del self._present[pair]
        return None
