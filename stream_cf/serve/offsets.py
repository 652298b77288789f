"""The thread that asks the broker how far the topics go: the lags beside the view.

Every ``stats_interval`` seconds, with a consumer of its own (no group, never polled), it asks the
end offsets (last stable offsets: ``read_committed``) of the output topic's partitions, and those
of the input topics the lists name (the processor's lag, see :mod:`stream_cf.serve.progress`),
then samples the counts for the rates. A slow or missing broker, or an input topic that does not
exist here, delays only these figures: the follower's polling never waits for them. Errors are
logged (the first of a run of them at WARNING) and the next tick tries again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kafka import TopicPartition
from kafka.errors import KafkaError

from stream_cf.serve.progress import TopicProgress

logger = logging.getLogger(__name__)

TOPICS_EVERY = 30.0  # seconds between two listings of the topics (which input topics exist)


class OffsetWatcher:
    """Updates ``progress`` with the end offsets from a daemon thread."""

    def __init__(
        self,
        connect: Callable[[], Any],
        output_topic: str,
        progress: TopicProgress,
        records: Callable[[], int],
        *,
        interval: float,
    ) -> None:
        self._connect = connect
        self._topic = output_topic
        self._progress = progress
        self._records = records
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream-cf-offsets", daemon=True)
        self._topics: set[str] = set()
        self._topics_at = -TOPICS_EVERY
        self._failing = False

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        consumer: Any = None
        try:
            while not self._stop.is_set():
                try:
                    if consumer is None:
                        consumer = self._connect()
                    self._tick(consumer)
                    self._failing = False
                except KafkaError as exc:
                    log = logger.debug if self._failing else logger.warning
                    log("could not read the end offsets (%r); trying again", exc)
                    self._failing = True
                self._progress.sample(self._records())
                self._stop.wait(self._interval)
        except Exception:
            logger.exception("stopped reading the end offsets")
        finally:
            if consumer is not None:
                consumer.close(autocommit=False)

    def _tick(self, consumer: Any) -> None:
        timeout_ms = int(max(self._interval, 1.0) * 2000)
        partitions = consumer.partitions_for_topic(self._topic)
        if partitions:
            wanted = [TopicPartition(self._topic, p) for p in sorted(partitions)]
            ends = consumer.end_offsets(wanted, timeout_ms=timeout_ms)
            self._progress.set_ends({tp.partition: end for tp, end in ends.items()})
        inputs = self._progress.input_partitions()
        if not inputs:
            return
        if set(inputs) - self._topics and time.monotonic() - self._topics_at > 1.0:
            self._topics_at = -TOPICS_EVERY  # a topic not seen yet: list them again soon
        if time.monotonic() - self._topics_at >= TOPICS_EVERY:
            self._topics = set(consumer.topics())
            self._topics_at = time.monotonic()
        for topic, parts in inputs.items():
            if topic not in self._topics:
                continue  # not on this cluster (or not visible): no lag to show
            wanted = [TopicPartition(topic, p) for p in parts]
            ends = consumer.end_offsets(wanted, timeout_ms=timeout_ms)
            self._progress.set_input_ends(topic, {tp.partition: end for tp, end in ends.items()})
