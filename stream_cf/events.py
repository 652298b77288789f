"""Validated events: the one shape every input takes before it reaches the engine.

The wire contract (input topic value, a JSON object)::

    {"type": "rating", "user_id": "u1", "item_id": "i9", "rating": 4.5,
     "ts": 881250949, "event_id": "e1"}
    {"type": "purchase",    "user_id": 17,   "item_id": "sku-3", "quantity": 2}
    {"type": "unrate",      "user_id": "u1", "item_id": "i9"}
    {"type": "forget_user", "user_id": "u1"}

``user_id`` and ``item_id`` may be strings or integers and are kept as strings (Unicode text: a
lone surrogate is refused, ``not_unicode``); ``ts`` is epoch seconds or ISO-8601, between
1970-01-01 and the end of 9999 in UTC (``ts_out_of_range``: so that every event time has an epoch
and an ISO form); ``event_id`` is optional. Unknown extra fields are ignored.

:func:`parse_event` turns raw bytes into one of the models, or raises :class:`InvalidEvent` with a
short reason code (:mod:`stream_cf.reasons`), so that the processor can send the record to the
dead-letter topic. :func:`check_ts_after` bounds ``ts`` by the record's append time.
"""

from __future__ import annotations

import math
import sys
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from stream_cf.event_json import load_json
from stream_cf.exceptions import InvalidEvent
from stream_cf.reasons import Reason

DEFAULT_MAX_ID_LENGTH = 256
TS_MIN = 0.0
"""The earliest ``ts`` accepted: 1970-01-01T00:00:00Z (epoch seconds)."""
TS_END = 253_402_300_800.0
"""The first epoch second not accepted: 10000-01-01T00:00:00Z (a datetime ends with 9999)."""
DEFAULT_MAX_FUTURE_SKEW = 86_400.0
"""How far (seconds) an event's ``ts`` may be after its record's append time: one day."""

# the reasons a field validator can give (its ValueError message starts with the code)
_CODED: tuple[Reason, ...] = ("empty_id", "id_too_long", "not_unicode", "ts_out_of_range")


def _coded(reason: Reason, message: str) -> ValueError:
    """A field validator's error that :func:`_reason_of` maps back to ``reason``."""
    return ValueError(f"{reason}: {message}")


def _check_text(name: str, value: str) -> None:
    """ValueError ``not_unicode`` if ``value`` holds a lone surrogate (it has no UTF-8 form)."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _coded(
                "not_unicode",
                f"{name} holds a lone surrogate U+{ord(value[exc.start]):04X} at {exc.start}",
            ) from exc


def _coerce_id(value: Any) -> Any:
    """Accept a string or an integer (not a bool, not a float) and keep it as a string."""
    if isinstance(value, bool):
        raise ValueError("an id must be a string or an integer, not a boolean")
    if isinstance(value, int):
        return str(value)
    return value


Id = Annotated[str, BeforeValidator(_coerce_id)]


def _coerce_ts(value: Any) -> Any:
    """Epoch seconds (int or float) or an ISO-8601 string; naive times are taken as UTC."""
    if isinstance(value, bool):
        raise ValueError("ts must be epoch seconds or an ISO-8601 string")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("ts must be finite")
        if not TS_MIN <= value < TS_END:  # compared as given: a 400-digit int is never converted
            raise _coded(
                "ts_out_of_range",
                f"ts {_short(value)} is not epoch seconds between 1970 and the end of 9999",
            )
        return datetime.fromtimestamp(value, tz=UTC)
    return value


def _short(value: object) -> str:
    """``value`` for a message, cut to 40 characters (a 400-digit int stays readable)."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


Timestamp = Annotated[datetime, BeforeValidator(_coerce_ts)]


class _EventBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False, strict=False)

    user_id: Id
    ts: Timestamp | None = None
    event_id: Id | None = None

    @field_validator("user_id", "item_id", check_fields=False)
    @classmethod
    def _check_id(cls, value: str, info: ValidationInfo) -> str:
        if value == "":
            raise _coded("empty_id", "the id is empty")
        limit = DEFAULT_MAX_ID_LENGTH
        if isinstance(info.context, dict):
            limit = int(info.context.get("max_id_length", limit))
        if len(value) > limit:
            raise _coded("id_too_long", f"the id has {len(value)} characters, the limit is {limit}")
        _check_text("the id", value)
        return value

    @field_validator("event_id")
    @classmethod
    def _check_event_id(cls, value: str | None) -> str | None:
        if value is not None:
            _check_text("the event id", value)
        return value

    @field_validator("ts")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        """Naive times are UTC; the time must lie between 1970 and the end of 9999 in UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if not TS_MIN <= value.timestamp() < TS_END:
            raise _coded(
                "ts_out_of_range",
                f"ts {value.isoformat()} is not between 1970 and the end of 9999 in UTC",
            )
        return value


class RatingEvent(_EventBase):
    """An explicit rating (new or changed) of ``item_id`` by ``user_id``."""

    type: Literal["rating"] = "rating"
    item_id: Id
    rating: float = Field(strict=True)


class PurchaseEvent(_EventBase):
    """Implicit feedback: ``quantity`` units of ``item_id`` bought by ``user_id``."""

    type: Literal["purchase"] = "purchase"
    item_id: Id
    quantity: float = Field(default=1.0, gt=0, strict=True)


class UnrateEvent(_EventBase):
    """Take back the rating (or purchases) of ``item_id`` by ``user_id``."""

    type: Literal["unrate"] = "unrate"
    item_id: Id


class ForgetUserEvent(_EventBase):
    """Erase every contribution of ``user_id`` (privacy erasure)."""

    type: Literal["forget_user"] = "forget_user"


Event = Annotated[
    RatingEvent | PurchaseEvent | UnrateEvent | ForgetUserEvent, Field(discriminator="type")
]
EVENT_TYPES = ("rating", "purchase", "unrate", "forget_user")
_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def _reason_of(exc: ValidationError) -> tuple[Reason, str]:
    """The reason code and message of the first validation error."""
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(part) for part in err.get("loc", ()))
    kind = err.get("type", "")
    msg = str(err.get("msg", ""))
    given = err.get("input")
    if kind == "union_tag_invalid":
        return "unknown_type", f"type must be one of {', '.join(EVENT_TYPES)}"
    if kind == "union_tag_not_found":
        return "missing_field", "the field 'type' is missing"
    if kind == "missing":
        return "missing_field", f"the field '{loc.split('.')[-1]}' is missing"
    if kind == "finite_number":
        return "not_finite", f"{loc} must be a finite number"
    if (
        kind == "float_type"
        and isinstance(given, int)
        and not isinstance(given, bool)
        and abs(given) > sys.float_info.max
    ):
        return "number_too_large", f"{loc}: the integer {_short(given)} is too large for a double"
    for code in _CODED:
        if f"{code}: " in msg:
            return code, f"{loc}: {msg.split(code + ': ', 1)[-1]}"
    return "invalid_field", f"{loc}: {msg}"


def validate_event(
    obj: Any,
    *,
    max_id_length: int = DEFAULT_MAX_ID_LENGTH,
    rating_scale: tuple[float, float] | None = None,
) -> Event:
    """Validate a decoded JSON value into an event model, or raise :class:`InvalidEvent`."""
    if not isinstance(obj, dict):
        raise InvalidEvent(
            "not_an_object", f"the value is a JSON {type(obj).__name__}, not an object"
        )
    try:
        event = _ADAPTER.validate_python(obj, context={"max_id_length": max_id_length})
    except ValidationError as exc:
        reason, message = _reason_of(exc)
        raise InvalidEvent(reason, message) from exc
    if rating_scale is not None and isinstance(event, RatingEvent):
        low, high = rating_scale
        if not low <= event.rating <= high:
            raise InvalidEvent(
                "rating_out_of_scale",
                f"rating {event.rating} is outside the scale [{low}, {high}]",
            )
    return event


def parse_event(
    data: bytes | None,
    *,
    max_id_length: int = DEFAULT_MAX_ID_LENGTH,
    rating_scale: tuple[float, float] | None = None,
) -> Event:
    """Decode raw record bytes (UTF-8 JSON, :mod:`stream_cf.event_json`) into an event, or raise
    :class:`InvalidEvent`."""
    obj = load_json(data)
    return validate_event(obj, max_id_length=max_id_length, rating_scale=rating_scale)


def check_ts_after(event: Event, *, append_time_ms: int, max_future_skew: float) -> None:
    """InvalidEvent ``ts_out_of_range`` if the event's ``ts`` is more than ``max_future_skew``
    seconds after its record's append time (a negative append time is unknown: no bound)."""
    if event.ts is None or append_time_ms < 0:
        return
    latest = append_time_ms / 1000 + max_future_skew
    if event.ts.timestamp() > latest:
        raise InvalidEvent(
            "ts_out_of_range",
            f"ts {event.ts.isoformat()} is more than {max_future_skew:g} s after the record's "
            f"append time ({append_time_ms} ms since the epoch)",
        )


def event_to_dict(event: Event) -> dict[str, Any]:
    """The JSON-ready wire form of an event (the inverse of :func:`validate_event`)."""
    data = event.model_dump(mode="json", exclude_none=True)
    return data
