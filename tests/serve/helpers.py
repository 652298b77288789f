"""Helpers of the serve tests: output records made by the processor's own encoder, an SSE reader
bounded by a deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from stream_cf.processor.codec import encode_recommendations
from tests.kafka_utils import produce

INPUT_TOPIC = "cf.events"


def list_value(
    user: str,
    items: Sequence[tuple[str, float]],
    *,
    ratings: Sequence[float] | None = None,
    fallback: str | None = None,
    input_offset: int = 1,
    event_time_ms: int | None = 881_250_949_000,
) -> bytes:
    """The output record value the processor publishes for this list."""
    return encode_recommendations(
        user,
        items,
        fallback,
        event_time_ms=event_time_ms,
        input_topic=INPUT_TOPIC,
        input_offsets={0: input_offset},
        ratings=ratings,
    )


def publish(bootstrap: str, topic: str, records: Sequence[tuple[str, bytes | None]]) -> None:
    """Produce ``(user, value or None for a tombstone)`` records keyed by user, in order."""
    produce(
        bootstrap,
        topic,
        [value for _, value in records],
        keys=[user for user, _ in records],
    )


def path_of(user: str) -> str:
    """``/users/<percent-encoded id>/recommendations``: every reserved character encoded, and
    dots too (clients remove the dot segments ``.`` and ``..`` of a path before sending it)."""
    return f"/users/{quote(user, safe='').replace('.', '%2E')}/recommendations"


@dataclass
class Event:
    name: str
    id: str | None
    data: Any
    seen: float  # monotonic time it was read


@dataclass
class SSEReader:
    """Reads an SSE stream in a daemon thread; :meth:`wait_for` waits with a deadline."""

    url: str
    events: list[Event] = field(default_factory=list)
    error: BaseException | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> SSEReader:
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def close(self) -> None:
        self._stop.set()

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Event]:
        """The events once there are ``count`` of them; AssertionError at the deadline."""
        deadline = time.monotonic() + timeout
        while len(self.events) < count:
            if self.error is not None:
                raise AssertionError(f"the stream failed: {self.error!r}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.events)} events in {timeout} s: {self.events}")
            time.sleep(0.005)
        return list(self.events)

    def _read(self) -> None:
        try:
            with httpx.stream("GET", self.url, timeout=httpx.Timeout(30.0)) as response:
                response.raise_for_status()
                name, ident, data = "message", None, None
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("id: "):
                        ident = line[4:]
                    elif line.startswith("data: "):
                        data = orjson.loads(line[6:])
                    elif line == "" and data is not None:
                        self.events.append(Event(name, ident, data, time.monotonic()))
                        name, ident, data = "message", None, None
        except (httpx.HTTPError, orjson.JSONDecodeError) as exc:
            if not self._stop.is_set():
                self.error = exc
