"""Events that are well formed but cannot be applied to the state: caught before the batch.

``UserKNN.apply_many`` stops at an ``unrate`` of a (user, item) pair that has no rating
(``UnknownRating``), at a ``purchase`` when the feedback is explicit (``unsupported_event``) and,
with implicit feedback, at an event that would take a weight above the engine's limit
(``value_too_large``). :class:`BatchChecker` follows the values of the pairs the batch creates,
changes, removes and forgets, on top of the engine's state, asking the engine itself what a weight
becomes; so such an event goes to the dead-letter topic and the rest of the batch is applied.
"""

from __future__ import annotations

from typing import Protocol

from stream_cf.events import Event, ForgetUserEvent, PurchaseEvent, RatingEvent, UnrateEvent
from stream_cf.exceptions import InvalidEvent
from stream_cf.reasons import Reason

_ABSENT = None  # the value of a pair without a rating


class PairIndex(Protocol):
    """The part of the UserKNN API the checker reads."""

    def has_user(self, user: str) -> bool: ...

    def user_items(self, user: str) -> dict[str, float]: ...

    def implicit_amount(self, event: RatingEvent | PurchaseEvent) -> float: ...

    def accumulate(self, old: float | None, amount: float) -> float: ...


class BatchChecker:
    """Tracks one batch's pair values over an engine's state that the batch has not touched yet."""

    def __init__(self, engine: PairIndex, *, implicit: bool) -> None:
        self._engine = engine
        self._implicit = implicit
        # (user, item) -> its value after the events checked so far (None: no rating)
        self._value: dict[tuple[str, str], float | None] = {}
        self._forgotten: set[str] = set()
        self._items_of: dict[str, dict[str, float]] = {}

    def _current(self, user: str, item: str) -> float | None:
        pair = (user, item)
        if pair in self._value:
            return self._value[pair]
        if user in self._forgotten or not self._engine.has_user(user):
            return _ABSENT
        items = self._items_of.get(user)
        if items is None:
            items = self._engine.user_items(user)
            self._items_of[user] = items
        return items.get(item, _ABSENT)

    def check(self, event: Event) -> tuple[Reason, str] | None:
        """None if ``event`` can be applied after the ones checked before; else (reason, message).

        An accepted event is recorded, a rejected one is not.
        """
        if isinstance(event, UnrateEvent):
            if self._current(event.user_id, event.item_id) is _ABSENT:
                return (
                    "unknown_rating",
                    f"user {event.user_id!r} has no rating of item {event.item_id!r} to take back",
                )
            self._value[(event.user_id, event.item_id)] = _ABSENT
        elif isinstance(event, PurchaseEvent) and not self._implicit:
            return (
                "unsupported_event",
                "a purchase needs feedback='implicit'; this processor runs with explicit ratings",
            )
        elif isinstance(event, RatingEvent) and not self._implicit:
            self._value[(event.user_id, event.item_id)] = event.rating
        elif isinstance(event, RatingEvent | PurchaseEvent):  # implicit: the weight accumulates
            pair = (event.user_id, event.item_id)
            try:
                amount = self._engine.implicit_amount(event)
                self._value[pair] = self._engine.accumulate(self._current(*pair), amount)
            except InvalidEvent as exc:
                return exc.reason, exc.message
        elif isinstance(event, ForgetUserEvent):
            self._forgotten.add(event.user_id)
            for pair in [p for p in self._value if p[0] == event.user_id]:
                del self._value[pair]
        return None
