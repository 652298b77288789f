"""Replay events into a Kafka topic: paced, keyed by user, acknowledged by all replicas.

Each event is one record: key = the user id (UTF-8), value = the JSON wire form of the event
(:func:`stream_cf.events.event_to_dict`). The producer uses ``acks=all`` and one request in flight
per connection, so retries cannot reorder a user's events. Every send's future is counted: a
record is *sent* when the broker acknowledged it and *failed* when its future failed, when
``send`` itself raised, or when it was still unacknowledged after the final flush. Failures are
counted and the first few reasons kept in the :class:`ReplaySummary`, never dropped silently.
Malformed input lines are reported with their line numbers through ``on_malformed`` and then
skipped or the replay stopped (``on_error``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from stream_cf.event_files import Malformed
from stream_cf.events import Event, event_to_dict
from stream_cf.exceptions import BrokerError
from stream_cf.replay.clients import Connection, connect_with
from stream_cf.replay.pacing import Pacer, Pacing
from stream_cf.replay.progress import Progress

logger = logging.getLogger(__name__)

OnError = Literal["skip", "stop"]
_KEPT_ERRORS = 10


@dataclass
class ReplaySummary:
    """What a replay did. ``ok`` is true when nothing failed and it was not stopped."""

    topic: str
    attempted: int = 0
    sent: int = 0
    failed: int = 0
    malformed: int = 0
    stopped_at: int | None = None  # the line of the malformed input that stopped the replay
    interrupted: bool = False  # Ctrl-C: what was handed over before it is flushed and counted
    elapsed: float = 0.0
    errors: list[str] = field(default_factory=list)  # the first failure reasons
    malformed_lines: list[Malformed] = field(default_factory=list)
    first_ts: str | None = None
    last_ts: str | None = None

    @property
    def rate(self) -> float:
        """Events handed to the producer per second of wall time."""
        return self.attempted / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.stopped_at is None and not self.interrupted

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (``malformed_lines`` as strings)."""
        return {
            "topic": self.topic,
            "attempted": self.attempted,
            "sent": self.sent,
            "failed": self.failed,
            "malformed": self.malformed,
            "stopped_at_line": self.stopped_at,
            "interrupted": self.interrupted,
            "elapsed_s": round(self.elapsed, 3),
            "events_per_s": round(self.rate, 1),
            "errors": list(self.errors),
            "malformed_lines": [str(m) for m in self.malformed_lines],
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
        }


def encode_event(event: Event) -> tuple[bytes, bytes]:
    """``(key, value)`` of an event's record: the user id and the JSON event, UTF-8."""
    value = json.dumps(event_to_dict(event), separators=(",", ":"), allow_nan=False)
    return event.user_id.encode("utf-8"), value.encode("utf-8")


class _Counter:
    """Success/failure counts updated from the producer's I/O thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent = 0
        self.failed = 0
        self.errors: list[str] = []

    def success(self, _metadata: object) -> None:
        with self.lock:
            self.sent += 1

    def failure(self, exc: BaseException) -> None:
        with self.lock:
            self.failed += 1
            if len(self.errors) < _KEPT_ERRORS:
                self.errors.append(f"{type(exc).__name__}: {exc}")


def make_producer(bootstrap: Connection, **overrides: Any) -> Any:
    """A kafka-python producer for replays (``acks=all``, ordered retries); BrokerError if
    the broker cannot be reached."""
    from kafka import KafkaProducer  # noqa: PLC0415 - import kafka-python only when used
    from kafka.errors import KafkaError  # noqa: PLC0415

    connection = connect_with(bootstrap)
    bootstrap = connection.bootstrap_servers
    config = connection.client_kwargs(
        "stream-cf-replay",
        acks="all",
        retries=5,
        max_in_flight_requests_per_connection=1,
        linger_ms=5,
        batch_size=64 * 1024,
        max_block_ms=30_000,
        request_timeout_ms=30_000,
        delivery_timeout_ms=120_000,
    )
    config.update(overrides)
    try:
        return KafkaProducer(**config)
    except KafkaError as exc:
        raise BrokerError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc


def replay(
    items: Iterable[tuple[int, Event | Malformed]],
    topic: str,
    *,
    producer: Any,
    pacing: Pacing | None = None,
    on_error: OnError = "skip",
    on_malformed: Callable[[Malformed], None] | None = None,
    progress: Progress | None = None,
    flush_timeout: float = 60.0,
) -> ReplaySummary:
    """Send every event of ``items`` to ``topic`` with ``producer`` (kept open; the caller closes).

    Malformed items are passed to ``on_malformed`` (and kept in the summary), then skipped or,
    with ``on_error="stop"``, end the replay (what was sent before is flushed). Returns the
    counts after a flush of at most ``flush_timeout`` seconds; a KeyboardInterrupt also ends the
    replay that way, with ``interrupted`` set in the summary.
    """
    from kafka.errors import KafkaError  # noqa: PLC0415

    warm_up = getattr(producer, "partitions_for", None)
    if warm_up is not None:  # fetch the topic's metadata now, so the first send is not late
        try:
            warm_up(topic)
        except KafkaError as exc:
            raise BrokerError(f"no metadata for the topic {topic!r}: {exc}") from exc
    pacer = Pacer(pacing or Pacing())
    summary = ReplaySummary(topic=topic)
    counter = _Counter()
    started = time.monotonic()
    try:
        for position, item in items:
            if isinstance(item, Malformed):
                summary.malformed += 1
                if len(summary.malformed_lines) < 1000:
                    summary.malformed_lines.append(item)
                if on_malformed is not None:
                    on_malformed(item)
                if on_error == "stop":
                    summary.stopped_at = position
                    break
                continue
            pacer.wait(item)
            key, value = encode_event(item)
            summary.attempted += 1
            if item.ts is not None:
                stamp = item.ts.isoformat()
                summary.first_ts = summary.first_ts or stamp
                summary.last_ts = stamp
            try:
                future = producer.send(topic, key=key, value=value)
            except (KafkaError, BufferError, ValueError) as exc:  # not queued: a failure now
                counter.failure(exc)
            else:
                future.add_callback(counter.success)
                future.add_errback(counter.failure)
            if progress is not None:
                progress.update()
    except KeyboardInterrupt:
        summary.interrupted = True
        logger.warning("interrupted: flushing the %d events handed over so far", summary.attempted)
    finally:
        flush_error = None
        try:
            producer.flush(timeout=flush_timeout)
        except KafkaError as exc:  # the records still pending are counted below
            flush_error = f"flush: {type(exc).__name__}: {exc}"
        summary.elapsed = time.monotonic() - started
        with counter.lock:
            summary.sent = counter.sent
            unacknowledged = summary.attempted - counter.sent - counter.failed
            summary.failed = counter.failed + max(unacknowledged, 0)
            summary.errors = list(counter.errors)
        if flush_error is not None:
            summary.errors.append(flush_error)
        if unacknowledged > 0:
            summary.errors.append(
                f"{unacknowledged} records not acknowledged within the flush timeout "
                f"({flush_timeout:g} s)"
            )
        if progress is not None:
            progress.close()
    if summary.failed:
        logger.error(
            "%d of %d records could not be sent to %s", summary.failed, summary.attempted, topic
        )
    return summary
