"""One user's list as the server holds it: read once from its output record, its JSON rendered once.

The processor's output record (:mod:`stream_cf.processor.codec`) is parsed when it arrives; the
answer to ``GET /users/{id}/recommendations`` is then the bytes rendered here with the list's age
put in front (:meth:`HeldList.response`), so a request costs no JSON encoding. The body::

    {"age_seconds": 1.25,                       # now - published_at, put in at each request
     "user_id": "196",
     "items": [{"item_id": "242", "score": 0.31, "rating": 4.61}],   # rating: when published
     "fallback": null,
     "event_time": "1997-12-04T15:55:49.000Z",  # the latest event the list reflects
     "input_topic": "cf.events",
     "input_offsets": {"0": 1234},              # every input record before these is reflected
     "published_at": "2024-05-01T10:00:00.000Z",   # the output record's timestamp
     "partition": 0, "offset": 17}              # the output record's position

Item ids are interned: the same item in many users' lists is one string in memory.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from stream_cf.processor.codec import list_entries

# Kafka record timestamps from 1970 to the end of 9999 are times; others (-1: none) are not.
_TS_END_MS = 253_402_300_800_000


class UnreadableList(ValueError):
    """An output record value that is not a list of the processor's format."""


@dataclass(frozen=True, slots=True)
class HeldList:
    """A user's latest list and where it came from (``partition``/``offset`` of its record)."""

    user_id: str
    item_ids: tuple[str, ...]
    partition: int
    offset: int
    published_ms: int  # the record's timestamp, else the time it was read
    input_topic: str | None
    input_offsets: tuple[tuple[int, int], ...]  # (input partition, next offset)
    body: bytes  # the JSON answer without ``age_seconds``

    def age_seconds(self, now_ms: float | None = None) -> float:
        """Seconds since the list was published (0 when the clocks disagree)."""
        now = time.time() * 1000 if now_ms is None else now_ms
        return max(0.0, round((now - self.published_ms) / 1000, 3))

    def response(self, n: int | None = None, now_ms: float | None = None) -> bytes:
        """The JSON answer: the body with its age, the first ``n`` items only if given."""
        body = self.body
        if n is not None and n < len(self.item_ids):
            document = orjson.loads(body)
            document["items"] = document["items"][:n]
            body = orjson.dumps(document)
        return b'{"age_seconds":%.3f,%s' % (self.age_seconds(now_ms), body[1:])


def iso_ms(epoch_ms: int) -> str:
    """``2024-05-01T10:00:00.000Z``: the format of the processor's ``event_time``."""
    return (
        datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def read_list(
    user_id: str,
    value: bytes,
    *,
    partition: int,
    offset: int,
    timestamp_ms: int | None,
) -> HeldList:
    """The held list of an output record value; :class:`UnreadableList` if it is not one.

    ``user_id`` is the record's key (the compaction key), which the processor sets to the
    value's ``user_id``."""
    try:
        document = orjson.loads(value)
        if not isinstance(document, dict):
            raise TypeError("the value is not a JSON object")
        items, ratings = list_entries(document["items"])
        fallback = document.get("fallback")
        event_time = document.get("event_time")
        input_topic = document.get("input_topic")
        input_offsets = {
            int(p): int(o) for p, o in dict(document.get("input_offsets") or {}).items()
        }
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UnreadableList(f"not a recommendations record: {exc}") from exc
    if timestamp_ms is not None and 0 <= timestamp_ms < _TS_END_MS:
        published_ms = timestamp_ms
    else:
        published_ms = int(time.time() * 1000)
    entries: list[dict[str, Any]] = []
    for position, (item, score) in enumerate(items):
        entry: dict[str, Any] = {"item_id": item, "score": score}
        if ratings is not None:
            entry["rating"] = ratings[position]
        entries.append(entry)
    rendered = orjson.dumps(
        {
            "user_id": user_id,
            "items": entries,
            "fallback": None if fallback is None else str(fallback),
            "event_time": None if event_time is None else str(event_time),
            "input_topic": None if input_topic is None else str(input_topic),
            "input_offsets": {str(p): o for p, o in sorted(input_offsets.items())},
            "published_at": iso_ms(published_ms),
            "partition": partition,
            "offset": offset,
        }
    )
    # orjson's bytes keep the capacity of its output buffer (4 KiB for a list of 10 items): a
    # copy of the exact size takes a sixth of that, for every user held
    body = bytes(memoryview(rendered))
    return HeldList(
        user_id=user_id,
        item_ids=tuple(sys.intern(item) for item, _ in items),
        partition=partition,
        offset=offset,
        published_ms=published_ms,
        input_topic=None if input_topic is None else sys.intern(str(input_topic)),
        input_offsets=tuple(sorted(input_offsets.items())),
        body=body,
    )


def popular_body(user_id: str, items: list[tuple[str, float]], reason: str) -> bytes:
    """The answer of ``?fallback=popular`` for an unknown user (no record: no position)."""
    return orjson.dumps(
        {
            "age_seconds": 0.0,
            "user_id": user_id,
            "items": [{"item_id": item, "score": score} for item, score in items],
            "fallback": reason,
            "event_time": None,
            "input_topic": None,
            "input_offsets": {},
            "published_at": None,
            "partition": None,
            "offset": None,
        }
    )
