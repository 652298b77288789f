"""The thread that keeps the view equal to the output topic: read it to its end, then follow it.

One kafka-python consumer, no consumer group (nothing is committed: every start reads the topic
from its beginning, which compaction keeps to about one record per user), every partition
assigned, ``isolation_level="read_committed"`` (an exactly-once processor's aborted lists are never
shown). The steps:

1. wait for the topic (the server answers 503 on ``/healthz`` until then; it never creates it:
   topic auto-creation is off on the consumer's metadata requests);
2. take the end offsets, seek every partition to its beginning and poll: each record goes to
   :meth:`ListView.apply` in its partition's order; ready once the ends of step 2 are reached;
3. go on polling; about every ``stats_interval`` seconds look for new partitions of the topic
   (read from their beginning). The lags are asked by another thread with a consumer of its own
   (:mod:`stream_cf.serve.offsets`), so that a slow answer never delays a list.

The consumer is used by this thread only (kafka-python clients are not thread-safe); the view
and the progress are what other threads read. Kafka errors are logged and retried with backoff;
anything else stops the thread with an ERROR line, and ``/healthz`` then answers 503.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from stream_cf.processor.topic_guard import forbid_auto_create
from stream_cf.retry import Attempt, exponential, retry
from stream_cf.serve.offsets import OffsetWatcher
from stream_cf.serve.progress import TopicProgress
from stream_cf.serve.settings import ServeSettings
from stream_cf.serve.view import ListView

logger = logging.getLogger(__name__)

ConsumerFactory = Callable[[dict[str, Any]], Any]


class TopicFollower:
    """Follows ``settings.output_topic`` into ``view`` and ``progress`` from a daemon thread."""

    def __init__(
        self,
        settings: ServeSettings,
        view: ListView,
        progress: TopicProgress,
        *,
        consumer_factory: ConsumerFactory | None = None,
    ) -> None:
        self.settings = settings
        self.view = view
        self.progress = progress
        self._factory = consumer_factory or (lambda config: KafkaConsumer(**config))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream-cf-follow", daemon=True)
        self._offsets = OffsetWatcher(
            self._connect,
            settings.output_topic,
            progress,
            lambda: view.records,
            interval=settings.stats_interval,
        )
        self.failed: BaseException | None = None

    @property
    def alive(self) -> bool:
        """Whether the thread runs (it stops only when asked or on an unexpected error)."""
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()
        self._offsets.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to stop and wait for it (the consumer is closed)."""
        self._stop.set()
        self._offsets.stop(timeout)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            consumer = self._retry("connect to Kafka", self._connect)
            if consumer is None:
                return
            try:
                self._follow(consumer)
            finally:
                consumer.close(autocommit=False)
        except Exception as exc:  # the thread's last word; /healthz turns 503
            self.failed = exc
            logger.exception("stopped following %s", self.settings.output_topic)

    def _connect(self) -> Any:
        ms = int(max(10.0, self.settings.retry_backoff_max * 2) * 1000)
        config = self.settings.connection().client_kwargs(
            "stream-cf-serve",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            allow_auto_create_topics=False,
            request_timeout_ms=ms,
            reconnect_backoff_max_ms=int(self.settings.retry_backoff_max * 1000),
            # a fetch waits up to fetch_wait for more lists (or 1 MiB): about 1/fetch_wait fetches
            # a second, idle or not, each costing kafka-python ~1-2 ms of the GIL the event loop
            # needs (fetches answered at each new list: about half the requests/s at 200 lists/s;
            # see BENCHMARKS.md), for at most fetch_wait more delay per list
            fetch_max_wait_ms=max(1, int(self.settings.fetch_wait * 1000)),
            fetch_min_bytes=1 << 20,
        )
        consumer = self._factory(config)
        forbid_auto_create(consumer)
        return consumer

    def _follow(self, consumer: Any) -> None:
        topic = self.settings.output_topic
        partitions = self._retry(f"find the topic {topic}", lambda: self._partitions(consumer))
        if partitions is None:
            return
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        ends = self._retry(
            f"read the end offsets of {topic}", lambda: consumer.end_offsets(assigned)
        )
        if ends is None:
            return
        logger.info(
            "reading %s (%d partitions, %d records up to the end)",
            topic,
            len(assigned),
            sum(ends.values()),
        )
        started = time.monotonic()
        self.progress.start_from({tp.partition: end for tp, end in ends.items()})
        poll_ms = int(self.settings.poll_timeout * 1000)
        next_partitions = time.monotonic() + self.settings.stats_interval
        announced = False
        while not self._stop.is_set():
            batches = consumer.poll(timeout_ms=poll_ms, max_records=10_000)
            reflected: dict[str, dict[int, int]] = {}
            for tp, records in batches.items():
                for record in records:
                    change = self.view.apply(
                        record.key,
                        record.value,
                        partition=tp.partition,
                        offset=record.offset,
                        timestamp_ms=record.timestamp,
                    )
                    held = change.held if change is not None else None
                    if held is not None and held.input_topic is not None:
                        known = reflected.setdefault(held.input_topic, {})
                        for partition, offset in held.input_offsets:
                            if offset > known.get(partition, -1):
                                known[partition] = offset
            for input_topic, offsets in reflected.items():
                self.progress.reflect(input_topic, offsets.items())
            self.progress.read_up_to({tp.partition: consumer.position(tp) for tp in assigned})
            if not announced and self.progress.ready:
                announced = True
                logger.info(
                    "caught up with %s: %d lists held after %.1f s",
                    topic,
                    len(self.view),
                    time.monotonic() - started,
                )
            if time.monotonic() >= next_partitions:
                assigned = self._new_partitions(consumer, assigned)
                next_partitions = time.monotonic() + self.settings.stats_interval

    def _wait(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _partitions(self, consumer: Any) -> set[int]:
        partitions = consumer.partitions_for_topic(self.settings.output_topic)
        if not partitions:
            raise _TopicMissing(f"the topic {self.settings.output_topic!r} does not exist (yet)")
        return set(partitions)

    def _new_partitions(
        self, consumer: Any, assigned: list[TopicPartition]
    ) -> list[TopicPartition]:
        """``assigned`` and the topic's new partitions, read from their beginning (from the
        consumer's cached metadata: no request)."""
        topic = self.settings.output_topic
        partitions = consumer.partitions_for_topic(topic) or set()
        new = [TopicPartition(topic, p) for p in sorted(partitions) if p >= len(assigned)]
        if not new:
            return assigned
        logger.info("%s has %d new partitions: reading them", topic, len(new))
        assigned = assigned + new
        consumer.assign(assigned)
        consumer.seek_to_beginning(*new)
        return assigned

    def _retry(self, what: str, action: Callable[[], Any]) -> Any:
        """``action()``, retried after Kafka errors until it succeeds; None if a stop came."""

        def on_retry(attempt: Attempt) -> None:
            log = logger.warning if attempt.number % 20 == 1 else logger.debug
            log("could not %s (%s); trying again in %.1f s", what, attempt.error, attempt.delay)

        try:
            return retry(
                action,
                retry_on=(KafkaError, _TopicMissing),
                backoff=exponential(first=0.25, cap=self.settings.retry_backoff_max),
                give_up=lambda _attempt: self._stop.is_set(),
                fail=lambda _attempt: _Stopped(),
                on_retry=on_retry,
                sleep=self._wait,
            )
        except _Stopped:
            return None


class _TopicMissing(Exception):
    """The output topic does not exist yet (retried: the processor creates it)."""


class _Stopped(Exception):
    """A stop was asked while retrying."""
