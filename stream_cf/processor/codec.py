"""Bytes in, bytes out: input records to events (or dead letters), lists to output records.

Output record (topic ``cf.recommendations``), key = the user id in UTF-8, value = UTF-8 JSON::

    {"user_id": "196",
     "items": [{"item_id": "242", "score": 4.61}, ...],      # best first, at most n
     "fallback": null,                                        # or why this is a fallback list
     "event_time": "1997-12-04T15:55:49.000Z",   # latest event applied (ts, else append time)
     "input_topic": "cf.events",
     "input_offsets": {"0": 1234}}                            # next input offset per partition

A forgotten user's record has a null value (a tombstone). The list itself (``items`` and
``fallback``) is what :func:`list_digest` hashes: the processor publishes a user's list only
when its digest differs from the last one published.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stream_cf.events import (
    DEFAULT_MAX_FUTURE_SKEW,
    TS_END,
    TS_MIN,
    Event,
    check_ts_after,
    parse_event,
)
from stream_cf.exceptions import InvalidEvent, StateFormatError
from stream_cf.processor.dlq import DeadLetter
from stream_cf.reasons import Reason

TOMBSTONE_DIGEST = "tombstone"


@dataclass(frozen=True)
class SourceRecord:
    """The parts of a consumed record that the processor uses (kafka-python agnostic)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


def decode(
    record: SourceRecord,
    *,
    max_id_length: int,
    rating_scale: tuple[float, float] | None,
    max_future_skew: float = DEFAULT_MAX_FUTURE_SKEW,
) -> Event | DeadLetter:
    """The validated event of a record, or the dead letter that says why it was rejected.

    Its ``ts`` may be at most ``max_future_skew`` seconds after the record's append time."""
    try:
        event = parse_event(record.value, max_id_length=max_id_length, rating_scale=rating_scale)
        check_ts_after(event, append_time_ms=record.timestamp_ms, max_future_skew=max_future_skew)
    except InvalidEvent as exc:
        return rejected(record, exc.reason, exc.message)
    return event


def event_time_ms(event: Event, record: SourceRecord) -> int | None:
    """The event's time in epoch ms: its ``ts``, else its record's append time; None when the
    append time is not a time between 1970 and the end of 9999 (e.g. -1: none)."""
    if event.ts is not None:
        return int(event.ts.timestamp() * 1000)
    if TS_MIN * 1000 <= record.timestamp_ms < TS_END * 1000:
        return record.timestamp_ms
    return None


def rejected(record: SourceRecord, reason: Reason, message: str) -> DeadLetter:
    """The dead letter of ``record``: the reason, its source and its original bytes."""
    return DeadLetter(
        reason=reason,
        message=message,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp_ms,
        key=record.key,
        value=record.value,
    )


def _canonical(
    items: Sequence[tuple[str, float]], fallback: str | None, ratings: Sequence[float] | None
) -> bytes:
    body: dict[str, Any] = {
        "items": [[item, float(score)] for item, score in items],
        "fallback": fallback,
    }
    if ratings is not None:
        body["ratings"] = [float(r) for r in ratings]
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")


def list_digest(
    items: Sequence[tuple[str, float]],
    fallback: str | None,
    ratings: Sequence[float] | None = None,
) -> str:
    """A short stable hash of a list (ids, exact scores, predicted ratings if any, fallback)."""
    return hashlib.blake2b(_canonical(items, fallback, ratings), digest_size=16).hexdigest()


def encode_key(user: str) -> bytes:
    """The output (and input) record key of a user."""
    return user.encode("utf-8")


def encode_recommendations(
    user: str,
    items: Sequence[tuple[str, float]],
    fallback: str | None,
    *,
    event_time_ms: int | None,
    input_topic: str,
    input_offsets: Mapping[int, int],
    ratings: Sequence[float] | None = None,
) -> bytes:
    """The output record value of a user's list (``ratings``: each item's predicted rating,
    explicit feedback only)."""
    event_time = None
    if event_time_ms is not None:
        event_time = (
            datetime.fromtimestamp(event_time_ms / 1000, tz=UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
    body: dict[str, Any] = {
        "user_id": user,
        "items": [{"item_id": item, "score": float(score)} for item, score in items],
        "fallback": fallback,
        "event_time": event_time,
        "input_topic": input_topic,
        "input_offsets": {str(p): o for p, o in sorted(input_offsets.items())},
    }
    if ratings is not None:
        for entry, rating in zip(body["items"], ratings, strict=True):
            entry["rating"] = float(rating)
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")


def decode_recommendations(value: bytes) -> tuple[str, list[tuple[str, float]], str | None]:
    """``(user, items, fallback)`` of an output record value; StateFormatError if malformed."""
    user, items, fallback, _ratings = decode_list(value)
    return user, items, fallback


def decode_list(
    value: bytes,
) -> tuple[str, list[tuple[str, float]], str | None, list[float] | None]:
    """``(user, items, fallback, predicted ratings or None)`` of an output record value."""
    try:
        body = json.loads(value.decode("utf-8"))
        items, ratings = list_entries(body["items"])
        fallback = body.get("fallback")
        return str(body["user_id"]), items, None if fallback is None else str(fallback), ratings
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise StateFormatError(f"not a recommendations record: {exc}") from exc


def list_entries(entries: Sequence[Any]) -> tuple[list[tuple[str, float]], list[float] | None]:
    """The ``(item, score)`` pairs of an output record's ``items`` and their predicted ratings
    (None unless every entry has one); KeyError, TypeError or ValueError if malformed."""
    items = [(str(entry["item_id"]), float(entry["score"])) for entry in entries]
    ratings = None
    if entries and all("rating" in entry for entry in entries):
        ratings = [float(entry["rating"]) for entry in entries]
    return items, ratings


def digest_of_output(value: bytes | None) -> str:
    """The digest of a published output value (a tombstone has :data:`TOMBSTONE_DIGEST`)."""
    if value is None:
        return TOMBSTONE_DIGEST
    _, items, fallback, ratings = decode_list(value)
    return list_digest(items, fallback, ratings)
