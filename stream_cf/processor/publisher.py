"""Publishing with acknowledgement: send a batch of records, wait until the broker has them all.

The processor commits and checkpoints only after :meth:`Publisher.publish` returns, so a record is
never counted as published before the broker acknowledged it. A broker that goes away makes the
producer retry (idempotently, so per-key order holds); records whose send failed outright are
sent again with exponential backoff and a log line per attempt, until they are acknowledged or a
stop was requested and ``shutdown_timeout`` has passed. A record the broker can never accept (too
large for ``max_request_size`` or the topic's ``max.message.bytes``, invalid, not authorized) is
not retried: :class:`~stream_cf.exceptions.RecordRejected` stops the processor, loudly.

The producer never lets the broker auto-create a topic (topic_guard.py). A topic deleted while the
processor runs makes the sends to it wait: each time the wait times out (and when a send fails)
the publisher asks ``topic_exists`` whether the batch's topics are still there, and raises
:class:`~stream_cf.exceptions.TopicVanished` for one that is not, instead of waiting forever.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kafka import KafkaProducer
from kafka.errors import (
    InvalidRecordError,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
)

from stream_cf.exceptions import BrokerError, RecordRejected, TopicVanished
from stream_cf.processor.topic_guard import forbid_auto_create
from stream_cf.retry import Attempt, after_stop, exponential, no_wait, retry

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutgoingRecord:
    """One record to publish."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


class Publisher:
    """A kafka-python producer that publishes whole batches and reports their offsets."""

    def __init__(
        self,
        config: dict[str, Any],
        *,
        stop_requested: Callable[[], bool],
        backoff_max: float,
        shutdown_timeout: float,
        max_request_size: int = 1_048_576,
        topic_exists: Callable[[str], bool] | None = None,
    ) -> None:
        self._topic_exists = topic_exists
        self._config = dict(config)
        self._max_request_size = max_request_size
        self._producer = self._make_producer()
        self._stop_requested = stop_requested
        self._backoff_max = backoff_max
        self._shutdown_timeout = shutdown_timeout
        self._lock = threading.Lock()
        # records handed to the producer by dispatch() and not yet waited for: id -> (record,
        # its future); the next publish() of the same record objects waits for these sends
        self._dispatched: dict[int, tuple[OutgoingRecord, Any]] = {}
        self._dispatch_failed = False

    def _make_producer(self, **extra: Any) -> KafkaProducer:
        """A new producer: idempotent, acks=all, never auto-creating a topic (``extra``: more
        KafkaProducer keywords, e.g. a transactional id)."""
        producer = KafkaProducer(
            **self._config,
            client_id="stream-cf-processor",
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            batch_size=256 * 1024,
            max_block_ms=10_000,
            max_request_size=self._max_request_size,
            allow_auto_create_topics=False,
            **extra,
        )
        forbid_auto_create(producer)
        return producer

    def dispatch(self, records: Sequence[OutgoingRecord]) -> None:
        """Hand ``records`` to the producer now, without waiting (it sends them after its
        ``linger_ms``): the latency-critical lists leave while the rest of the batch is computed.
        They count as published only when a later :meth:`publish` of the same record objects has
        waited for their acknowledgements (a send that failed is sent again there). A record
        whose topic the producer has no metadata for (a send would block up to
        ``max_block_ms``: the topic may be gone) is left to that publish, and so is every record
        after a send that failed at once."""
        cluster = getattr(self._producer, "_metadata", None)
        for record in records:
            if self._dispatch_failed:
                return
            if cluster is None or cluster.partitions_for_topic(record.topic) is None:
                continue
            try:
                future = self._producer_send(record)
            except KafkaError:
                self._dispatch_failed = True  # publish() sends it again and reports the error
                return
            self._dispatched[id(record)] = (record, future)

    def publish(
        self, records: Sequence[OutgoingRecord], offsets: dict[int, int] | None = None
    ) -> dict[tuple[str, int], int]:
        """Send ``records`` and wait for every acknowledgement. ``offsets`` (the input positions)
        are not used here: at least once, the input consumer commits them itself (the
        transactional publisher commits them with the records).

        Returns the highest acknowledged offset + 1 per (topic, partition). Raises
        :class:`BrokerError` only when a stop was requested and the broker still has not
        acknowledged after ``shutdown_timeout`` seconds.
        """
        ends: dict[tuple[str, int], int] = {}
        pending = list(records)
        if not pending:
            return ends

        def send_pending() -> dict[tuple[str, int], int]:
            nonlocal pending
            failed, last_error = self._send_all(pending, ends)
            if failed:
                of, pending = len(pending), failed
                raise _Unacknowledged(len(failed), of, last_error)
            return ends

        return retry(
            send_pending,
            retry_on=_Unacknowledged,
            backoff=exponential(first=0.25, cap=self._backoff_max),
            give_up=after_stop(self._stop_requested, self._shutdown_timeout),
            fail=lambda attempt: BrokerError(
                f"{_failed(attempt).count} records still unacknowledged "
                f"{self._shutdown_timeout}s after the stop request (last error: "
                f"{_failed(attempt).error!r})"
            ),
            on_retry=lambda attempt: logger.warning(
                "broker did not acknowledge %d of %d records (%r); resending in %.1fs (attempt %d)",
                _failed(attempt).count,
                _failed(attempt).of,
                _failed(attempt).error,
                attempt.delay,
                attempt.number,
            ),
            on_success=lambda attempts: logger.warning(
                "publish succeeded after %d attempts", attempts
            ),
        )

    def _send_all(
        self, records: list[OutgoingRecord], ends: dict[tuple[str, int], int]
    ) -> tuple[list[OutgoingRecord], BaseException | None]:
        """Send ``records`` and wait; add the acknowledged offsets to ``ends``; return the records
        whose send failed (to send again) and the last error."""
        futures = [(record, self._sent_or_send(record)) for record in records]
        self._dispatched.clear()  # a dispatched record not in this publish is sent by a later one
        self._dispatch_failed = False
        self._flush(len(records), {record.topic for record in records})
        failed: list[OutgoingRecord] = []
        last_error: BaseException | None = None
        for record, future in futures:
            error = future if isinstance(future, KafkaError) else None
            if error is None and future.failed():
                error = future.exception
            if error is not None:
                if _never_accepted(error):
                    raise self._rejected(record, error)
                failed.append(record)
                last_error = error
                continue
            meta = future.value
            key = (meta.topic, meta.partition)
            ends[key] = max(ends.get(key, 0), meta.offset + 1)
        self._check_topics({record.topic for record in failed})
        return failed, last_error

    def _sent_or_send(self, record: OutgoingRecord) -> Any:
        """The future of ``record``'s send by :meth:`dispatch`, else of a send now."""
        early = self._dispatched.pop(id(record), None)
        if early is not None and early[0] is record:
            return early[1]
        return self._send(record)

    def _producer_send(self, record: OutgoingRecord) -> Any:
        """The producer's send of ``record`` (its future; raises what the send raises at once)."""
        return self._producer.send(
            record.topic, key=record.key, value=record.value, headers=list(record.headers) or None
        )

    def _send(self, record: OutgoingRecord) -> Any:
        try:
            return self._producer_send(record)
        except KafkaError as exc:
            if not _never_accepted(exc):
                logger.warning("send to %s failed at once: %r", record.topic, exc)
                self._check_topics({record.topic})
            return exc

    def _check_topics(self, topics: set[str]) -> None:
        """:class:`TopicVanished` if one of ``topics`` does not exist (any error asking: assume
        it does, the retries go on)."""
        if self._topic_exists is None:
            return
        for topic in sorted(topics):
            try:
                exists = self._topic_exists(topic)
            except KafkaError as exc:
                logger.warning("could not check that the topic %s exists: %r", topic, exc)
                continue
            if not exists:
                raise TopicVanished(
                    topic, f"the topic {topic} no longer exists (deleted while publishing to it)"
                )

    def _rejected(self, record: OutgoingRecord, error: BaseException) -> RecordRejected:
        size = len(record.key or b"") + len(record.value or b"")
        hint = ""
        if isinstance(error, MessageSizeTooLargeError | RecordListTooLargeError):
            hint = (
                f" (the producer's max_request_size is {self._max_request_size} bytes; the "
                f"topic's max.message.bytes also bounds it: raise both to publish it)"
            )
        return RecordRejected(
            f"the broker will never accept a record of {size} bytes for topic "
            f"{record.topic}: {error!r}{hint}; stopped instead of retrying it"
        )

    def _flush(self, count: int, topics: set[str]) -> None:
        """Wait for the in-flight records, logging while the broker does not answer, and checking
        that ``topics`` still exist."""

        def waiting(attempt: Attempt) -> None:
            logger.warning(
                "waiting for the broker to acknowledge %d records (%.0fs so far): %r",
                count,
                attempt.elapsed,
                attempt.error,
            )
            self._check_topics(topics)

        retry(
            lambda: self._producer.flush(timeout=5.0),
            retry_on=KafkaError,
            backoff=no_wait,
            give_up=lambda attempt: (
                self._stop_requested() and attempt.elapsed > self._shutdown_timeout
            ),
            fail=lambda _attempt: BrokerError(
                f"broker did not acknowledge {count} records within "
                f"{self._shutdown_timeout}s of the stop request"
            ),
            on_error=waiting,
        )

    def close(self, timeout: float = 5.0) -> None:
        """Close the producer (flushes what is left for at most ``timeout`` seconds, then drops
        it)."""
        try:
            self._producer.close(timeout=timeout)
        except KafkaError as exc:
            logger.warning("closing the producer failed: %r", exc)


def _never_accepted(error: BaseException) -> bool:
    """Whether resending could never succeed: the record is too large, invalid or forbidden."""
    return isinstance(
        error,
        MessageSizeTooLargeError
        | RecordListTooLargeError
        | InvalidRecordError
        | InvalidTopicError
        | TopicAuthorizationFailedError,
    )


class _Unacknowledged(Exception):
    """Some records of a batch were not acknowledged: sent again (see :meth:`Publisher.publish`)."""

    def __init__(self, count: int, of: int, error: BaseException | None) -> None:
        super().__init__(f"{count} of {of} records not acknowledged: {error!r}")
        self.count = count
        self.of = of
        self.error = error


def _failed(attempt: Attempt) -> _Unacknowledged:
    assert isinstance(attempt.error, _Unacknowledged)
    return attempt.error
