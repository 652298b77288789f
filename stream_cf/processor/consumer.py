"""The input side of the processor: one consumer that owns every partition of the input topic.

It seeks to the positions the checkpoint holds (the source of truth on restart), polls batches of
at most ``max_batch`` records (never past the ``--until-end`` targets), keeps the next offset per
partition, and commits those offsets to the group for monitoring only: asynchronously while
running, synchronously and retried at the end. Auto-commit is off.

It reads with ``isolation_level="read_committed"``: records of aborted transactions are never
returned, and nothing after a transaction still open is returned until it ends (the partition's
last stable offset, which is also what :meth:`InputConsumer.end_offsets` reports).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import RecordTooLargeError
from kafka.errors import AuthorizationError, CorruptRecordError, KafkaError, UnsupportedCodecError
from kafka.structs import OffsetAndMetadata

from stream_cf.exceptions import BrokerError, InputTopicChanged, UndecodableInput
from stream_cf.processor.codec import SourceRecord
from stream_cf.processor.settings import ProcessorSettings
from stream_cf.processor.topic_guard import forbid_auto_create
from stream_cf.retry import after_attempts, any_of, exponential, retry, within

logger = logging.getLogger(__name__)
_T = TypeVar("_T")


def retrying(
    what: str,
    action: Callable[[], _T],
    *,
    stop_requested: Callable[[], bool],
    backoff_max: float,
    give_up_after: float = 120.0,
) -> _T:
    """Run ``action``, retrying Kafka errors with exponential backoff and a log line per retry;
    :class:`BrokerError` naming ``what`` once ``give_up_after`` seconds pass or a stop is asked."""
    return retry(
        action,
        retry_on=KafkaError,
        backoff=exponential(first=0.25, cap=backoff_max),
        give_up=any_of(
            within(give_up_after, counting_the_wait=True), lambda _attempt: stop_requested()
        ),
        fail=lambda attempt: BrokerError(f"could not {what}: {attempt.error!r}"),
        on_retry=lambda attempt: logger.warning(
            "could not %s (%r); retrying in %.1fs", what, attempt.error, attempt.delay
        ),
    )


class Retrying:
    """:func:`retrying` with one processor's stop flag and backoff cap: ``retry(what, action)``."""

    def __init__(self, stop_requested: Callable[[], bool], backoff_max: float) -> None:
        self._stop_requested = stop_requested
        self._backoff_max = backoff_max

    def __call__(self, what: str, action: Callable[[], _T]) -> _T:
        return retrying(
            what, action, stop_requested=self._stop_requested, backoff_max=self._backoff_max
        )


class InputConsumer:
    """The consumer of the input topic and the next offset of each of its partitions."""

    def __init__(self, settings: ProcessorSettings, stop_requested: Callable[[], bool]) -> None:
        self.settings = settings
        self._retrying = Retrying(stop_requested, settings.retry_backoff_max)
        self._stop_requested = stop_requested
        self.positions: dict[int, int] = {}
        self.partitions: list[TopicPartition] = []
        self._consumer: KafkaConsumer | None = None
        self._committed: dict[int, int] = {}
        self._fatal: UndecodableInput | None = None

    @property
    def consumer(self) -> KafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("the input consumer is not open")
        return self._consumer

    def open(self, positions: dict[int, int]) -> None:
        """Connect, assign every partition and seek to ``positions`` (else the beginning).

        A position beyond a partition's end means the topic is not the one the positions came
        from (re-created, or truncated): :class:`InputTopicChanged`, unless
        ``accept_new_input_topic`` is set (then that partition is read from its beginning)."""
        self.positions = dict(positions)
        self._consumer = self._retrying("connect the consumer", self._make_consumer)
        topic = self.settings.input_topic
        deadline = time.monotonic() + 60.0
        found = self._retrying("read the input topic's partitions", self._partition_ids)
        while not found:
            if time.monotonic() > deadline:
                raise BrokerError(f"no partitions found for the input topic {topic!r}")
            time.sleep(0.2)
            found = self._retrying("read the input topic's partitions", self._partition_ids)
        self.partitions = [TopicPartition(topic, p) for p in sorted(found)]
        consumer = self.consumer
        consumer.assign(self.partitions)
        beginning = self._retrying(
            "read the beginning offsets", lambda: consumer.beginning_offsets(self.partitions)
        )
        ends = self.end_offsets()
        beyond = {p: (o, ends[p]) for p, o in self.positions.items() if o > ends.get(p, o)}
        if beyond:
            self._beyond_end(beyond)
        for tp in self.partitions:
            start = max(self.positions.get(tp.partition, 0), int(beginning[tp]))
            consumer.seek(tp, start)
            self.positions[tp.partition] = start
        logger.info("input %s: starting at offsets %s", topic, self.positions)

    def _beyond_end(self, beyond: dict[int, tuple[int, int]]) -> None:
        topic = self.settings.input_topic
        where = ", ".join(f"partition {p}: {o} > {end}" for p, (o, end) in sorted(beyond.items()))
        if not self.settings.accept_new_input_topic:
            raise InputTopicChanged(
                f"the checkpoint's offsets are beyond the end of the input topic {topic} "
                f"({where}): the topic was deleted and re-created (or truncated) since the "
                f"checkpoint. Stopped without reading it. Remove the state dir "
                f"{self.settings.state_dir} to start over from the new topic, or pass "
                f"--accept-new-input-topic to keep the state and read the new topic from its "
                f"beginning"
            )
        logger.warning(
            "the input topic %s is not the one checkpointed (%s); --accept-new-input-topic: "
            "reading it from its beginning",
            topic,
            where,
        )
        for partition in beyond:
            self.positions[partition] = 0

    def _make_consumer(self) -> KafkaConsumer:
        consumer = KafkaConsumer(
            **self.settings.kafka_config(),
            client_id="stream-cf-processor",
            # scale-out: the group is for ownership (membership.py); this reader is outside it
            group_id=None if self.settings.scale_out else self.settings.group_id,
            enable_auto_commit=False,
            isolation_level="read_committed",  # never apply aborted or still-open transactions
            auto_offset_reset="earliest",
            max_poll_records=self.settings.max_batch,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_wait_ms=100,
            allow_auto_create_topics=False,
        )
        forbid_auto_create(consumer)
        return consumer

    def _partition_ids(self) -> set[int]:
        return set(self.consumer.partitions_for_topic(self.settings.input_topic) or ())

    def end_offsets(self) -> dict[int, int]:
        """The end offset of every partition now (what ``--until-end`` runs to)."""
        ends = self._retrying(
            "read the end offsets", lambda: self.consumer.end_offsets(self.partitions)
        )
        return {tp.partition: int(offset) for tp, offset in ends.items()}

    def lag(self) -> int | None:
        """Input records not yet applied: the last fetch's high watermark minus the position,
        summed over the partitions (no broker round trip). None until every partition has been
        fetched from once."""
        if self._consumer is None:
            return None
        total = 0
        for tp in self.partitions:
            high = self._consumer.highwater(tp)
            if high is None:
                return None
            total += max(0, int(high) - self.positions.get(tp.partition, 0))
        return total

    def reached(self, targets: dict[int, int]) -> bool:
        """Whether every partition's position is at or past its target."""
        return all(self.positions.get(p, 0) >= end for p, end in targets.items())

    def poll(
        self, targets: dict[int, int] | None, timeout: float, limit: int | None = None
    ) -> list[SourceRecord]:
        """Up to ``limit`` (at most max_batch) records: whatever is there now (waiting at most
        ``timeout``), never at or past a partition's target. Positions are not advanced: see
        :meth:`advance`."""
        if self._fatal is not None:
            raise self._fatal
        consumer = self.consumer
        records: list[SourceRecord] = []
        wait_ms = int(timeout * 1000)
        most = self.settings.max_batch if limit is None else min(limit, self.settings.max_batch)
        while len(records) < most:
            asked = most - len(records)
            try:
                polled = consumer.poll(timeout_ms=wait_ms, max_records=asked)
            except KafkaError as exc:
                if not _unreadable_input(exc):
                    logger.warning("poll failed (%r); retrying", exc)
                    time.sleep(min(1.0, self.settings.retry_backoff_max))
                    break
                # Not transient (a codec that is not installed, a corrupt batch, a record too
                # large): polling again would spin in kafka-python's fetcher, which keeps the
                # broken batch in line. The records before it are returned first.
                self._fatal = self._unreadable(exc)
                if records:
                    return records
                raise self._fatal from exc
            got = 0
            for tp in self.partitions:
                limit = None if targets is None else targets.get(tp.partition, 0)
                for r in polled.get(tp, ()):
                    if limit is not None and r.offset >= limit:
                        break
                    got += 1
                    records.append(
                        SourceRecord(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value)
                    )
            if got < asked:
                # fewer than asked: kafka-python's buffer is drained (the next fetch is already
                # in flight and fills the next batch); another call would only cost a round trip
                # to its I/O thread (tens of ms on a loaded machine) to return nothing
                break
            wait_ms = 0  # then take what is already there, without waiting
        if not records:
            self._skip_gaps(targets)
        return records

    def _unreadable(self, exc: KafkaError) -> UndecodableInput:
        """The error that stops the processor, naming where the input cannot be read."""
        where = self._stuck_at()
        if isinstance(exc, UnsupportedCodecError):
            return UndecodableInput(
                f"cannot decode the input at {where}: {exc} (kafka-python found no module for "
                f"this compression codec; stream-cf depends on lz4, zstandard and python-snappy: "
                f"reinstall it, or have the producers use another compression). Stopped without "
                f"skipping anything: the records from this offset on are not applied"
            )
        return UndecodableInput(
            f"cannot read the input at {where}: {exc!r}. Stopped without skipping anything: the "
            f"records from this offset on are not applied"
        )

    def _stuck_at(self) -> str:
        """``<topic> partition <p> offset <o>`` of the batch kafka-python failed on: read from
        its fetcher (private, so best effort), else every partition's position."""
        fetcher = getattr(self._consumer, "_fetcher", None)
        parsed = getattr(fetcher, "_next_partition_records", None)
        tp = getattr(parsed, "topic_partition", None)
        offset = getattr(parsed, "next_fetch_offset", None)
        if isinstance(tp, TopicPartition) and isinstance(offset, int):
            return f"{tp.topic} partition {tp.partition} offset {offset}"
        topic = self.settings.input_topic
        return f"{topic} (one of the partitions at positions {self.positions})"

    def _skip_gaps(self, targets: dict[int, int] | None) -> None:
        """Gaps (compacted records, transaction markers) advance the position alone."""
        for tp in self.partitions:
            limit = None if targets is None else targets.get(tp.partition, 0)
            try:
                position = self.consumer.position(tp, timeout_ms=1000)
            except KafkaError:
                continue
            if position is not None and (limit is None or position <= limit):
                self.positions[tp.partition] = max(self.positions[tp.partition], position)

    def advance(self, records: list[SourceRecord]) -> None:
        """Record that ``records`` are applied: the next offsets follow them."""
        for record in records:
            self.positions[record.partition] = max(
                self.positions.get(record.partition, 0), record.offset + 1
            )

    def committed_offsets(self) -> dict[int, tuple[int, str | None]]:
        """The group's committed offset and its metadata per partition (partitions without a
        committed offset are left out). Read with read_committed, so offsets of a transaction
        still completing are waited for (the broker's ``require_stable``)."""
        consumer = self.consumer
        found: dict[int, tuple[int, str | None]] = {}
        for tp in self.partitions:
            committed = consumer.committed(tp, metadata=True, timeout_ms=10_000)
            if committed is not None and committed.offset >= 0:
                found[tp.partition] = (int(committed.offset), committed.metadata)
        return found

    def commit(self, *, final: bool = False) -> None:
        """Commit the group offsets: for monitoring only, the checkpoint holds the positions.

        During the run the commit is asynchronous (a failure is logged and the next commit covers
        it); the final one is synchronous and retried. Exactly-once: nothing to do, the offsets
        are committed in the transactions with the outputs (transactions.py).
        """
        if self.settings.exactly_once or self.settings.scale_out:  # scale-out: see membership.py
            return
        if self.positions == self._committed and not final:
            return
        offsets = {
            TopicPartition(self.settings.input_topic, p): OffsetAndMetadata(o, "", -1)
            for p, o in self.positions.items()
        }
        if not final:
            try:
                self.consumer.commit_async(offsets, callback=_log_commit_failure)
                self._committed = dict(self.positions)
            except KafkaError as exc:
                logger.warning("offset commit failed: %r", exc)
            return

        def commit() -> None:
            self.consumer.commit(offsets)
            self._committed = dict(self.positions)

        backoff_max = self.settings.retry_backoff_max
        with contextlib.suppress(KafkaError):  # after 5 attempts: the next run commits
            retry(
                commit,
                retry_on=KafkaError,
                backoff=lambda number, _error: min(0.5 * number, backoff_max),
                give_up=after_attempts(5),
                on_error=lambda attempt: logger.warning(
                    "final offset commit failed (attempt %d): %r", attempt.number, attempt.error
                ),
            )

    def close(self) -> None:
        """Close the consumer without committing (idempotent)."""
        if self._consumer is None:
            return
        try:
            self._consumer.close(autocommit=False)
        except KafkaError as exc:
            logger.warning("closing the consumer failed: %r", exc)
        self._consumer = None


def _unreadable_input(exc: KafkaError) -> bool:
    """Whether a poll error means the input cannot be read from here on: polling again could only
    fail again (or spin in kafka-python, which keeps an undecodable batch next in line)."""
    if isinstance(
        exc, UnsupportedCodecError | CorruptRecordError | RecordTooLargeError | AuthorizationError
    ):
        return True
    return type(exc) is KafkaError and "Failed to make progress" in str(exc)


def _log_commit_failure(offsets: Any, response: Any) -> None:
    if isinstance(response, BaseException):
        logger.warning("asynchronous offset commit failed: %r", response)
