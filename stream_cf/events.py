"""Validated events: the one shape every input takes before it reaches the engine.

The wire contract (input topic value, a JSON object)::

    {"type": "rating", "user_id": "u1", "item_id": "i9", "rating": 4.5,
     "ts": 881250949, "event_id": "e1"}
    {"type": "purchase",    "user_id": 17,   "item_id": "sku-3", "quantity": 2}
    {"type": "unrate",      "user_id": "u1", "item_id": "i9"}
    {"type": "forget_user", "user_id": "u1"}

``user_id`` and ``item_id`` may be strings or integers and are kept as strings; ``ts`` is epoch
seconds or ISO-8601; ``event_id`` is optional. Unknown extra fields are ignored.

:func:`parse_event` turns raw bytes into one of the models, or raises :class:`InvalidEvent` with a
short reason code, so that the processor can send the record to the dead-letter topic.
"""

from __future__ import annotations

import json
import math
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

from stream_cf.exceptions import InvalidEvent

DEFAULT_MAX_ID_LENGTH = 256


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
        if not math.isfinite(value):
            raise ValueError("ts must be finite")
        return datetime.fromtimestamp(value, tz=UTC)
    return value


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
            raise ValueError("empty_id: the id is empty")
        limit = DEFAULT_MAX_ID_LENGTH
        if isinstance(info.context, dict):
            limit = int(info.context.get("max_id_length", limit))
        if len(value) > limit:
            raise ValueError(
                f"id_too_long: the id has {len(value)} characters, the limit is {limit}"
            )
        return value

    @field_validator("ts")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
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


def _reason_of(exc: ValidationError) -> tuple[str, str]:
    """The reason code and message of the first validation error."""
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(part) for part in err.get("loc", ()))
    kind = err.get("type", "")
    msg = str(err.get("msg", ""))
    if kind == "union_tag_invalid":
        return "unknown_type", f"type must be one of {', '.join(EVENT_TYPES)}"
    if kind == "union_tag_not_found":
        return "missing_field", "the field 'type' is missing"
    if kind == "missing":
        return "missing_field", f"the field '{loc.split('.')[-1]}' is missing"
    if kind == "finite_number":
        return "not_finite", f"{loc} must be a finite number"
    for code in ("empty_id", "id_too_long"):
        if code in msg:
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
    """Decode raw record bytes (UTF-8 JSON) into an event, or raise :class:`InvalidEvent`."""
    if data is None:
        raise InvalidEvent("empty_value", "the record has no value (null)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent(
            "not_utf8", f"the value is not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from exc
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise InvalidEvent(
            "invalid_json", f"the value is not JSON: {exc.msg} at char {exc.pos}"
        ) from exc
    except ValueError as exc:  # NaN / Infinity literals
        raise InvalidEvent("not_finite", str(exc)) from exc
    return validate_event(obj, max_id_length=max_id_length, rating_scale=rating_scale)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a finite number")


def event_to_dict(event: Event) -> dict[str, Any]:
    """The JSON-ready wire form of an event (the inverse of :func:`validate_event`)."""
    data = event.model_dump(mode="json", exclude_none=True)
    return data
