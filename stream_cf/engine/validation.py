"""Validation of the engine's settings and of event fields, with machine-readable reasons.

Bad input raises :class:`~stream_cf.exceptions.InvalidEvent` (reason codes ``empty_id``,
``invalid_field``, ``not_finite``, ``rating_out_of_scale``, ``value_too_large``,
``unknown_type``) before anything is changed (the settings' own checks:
:mod:`stream_cf.engine.config`).

Every stored value (a rating, an implicit weight) is at most :data:`VALUE_LIMIT` in absolute
value, so that no sum the engine keeps can overflow.
"""

from __future__ import annotations

import math

from stream_cf.events import Event, ForgetUserEvent, PurchaseEvent, RatingEvent, UnrateEvent
from stream_cf.exceptions import InvalidEvent

VALUE_LIMIT = 1e12
"""The largest absolute value stored: a rating scale's ends, a purchase quantity, an accumulated
implicit weight. Squares (at most 1e24) summed over a billion items stay below float32's largest
value (3.4e38) and far below float64's (1.8e308): no pair sum, norm or score can overflow."""


def check_ids(user: object, item: object | None = None) -> None:
    """InvalidEvent unless ``user`` (and ``item`` when given) are non-empty strings."""
    for name, value in (("user_id", user), ("item_id", item)):
        if name == "item_id" and item is None:
            continue
        if not isinstance(value, str):
            raise InvalidEvent("invalid_field", f"{name} must be a string, not {value!r}")
        if value == "":
            raise InvalidEvent("empty_id", f"{name} is empty")


def rating_value(value: float, scale: tuple[float, float]) -> float:
    """A rating as float: finite and within ``scale`` (both feedback modes)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEvent("invalid_field", f"rating must be a number, not {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise InvalidEvent("not_finite", f"rating {value} is not a finite number")
    low, high = scale
    if not low <= value <= high:
        raise InvalidEvent(
            "rating_out_of_scale", f"rating {value} is outside the scale [{low}, {high}]"
        )
    return value


def quantity_value(quantity: float) -> float:
    """A purchase quantity as float: finite and > 0."""
    if isinstance(quantity, bool) or not isinstance(quantity, int | float):
        raise InvalidEvent("invalid_field", f"quantity must be a number, not {quantity!r}")
    quantity = float(quantity)
    if not math.isfinite(quantity):
        raise InvalidEvent("not_finite", f"quantity {quantity} is not a finite number")
    if quantity <= 0:
        raise InvalidEvent("invalid_field", f"quantity must be > 0, got {quantity}")
    if quantity > VALUE_LIMIT:
        raise InvalidEvent(
            "value_too_large", f"quantity {quantity:g} is above the limit {VALUE_LIMIT:g}"
        )
    return quantity


def accumulated(old: float | None, amount: float, cap: float | None) -> float:
    """An implicit weight after adding ``amount``: ``min(old + amount, cap)``, or InvalidEvent
    ``value_too_large`` if that is above :data:`VALUE_LIMIT` (or not a finite number)."""
    value = (0.0 if old is None else old) + amount
    if cap is not None:
        value = min(value, cap)
    if not value <= VALUE_LIMIT:  # also catches inf and NaN
        raise InvalidEvent(
            "value_too_large",
            f"the accumulated weight {value:g} would be above the limit {VALUE_LIMIT:g}",
        )
    return value


def event_kind(event: Event) -> str:
    """The event's type, or InvalidEvent for an object that is not one of the event models."""
    if isinstance(event, RatingEvent | PurchaseEvent | UnrateEvent | ForgetUserEvent):
        return event.type
    raise InvalidEvent("unknown_type", f"not an event: {type(event).__name__}")
