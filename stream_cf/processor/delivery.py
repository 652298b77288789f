"""The publisher's lifecycle: connecting, publishing a batch until acknowledged, the last commit.

:class:`Delivery` owns the producer the processor publishes with: a :class:`Publisher` at least
once, a :class:`TransactionalPublisher` exactly once (each publish one transaction holding the
records and the input positions; connecting fences the predecessor, see transactions.py). It
re-creates a topic that vanished and sends the batch again (a lost output topic is handed to
:class:`TopicWatch`, which owes every list again), hands the acknowledged offsets to it, and
commits the final offsets: a synchronous commit at least once, an offsets-only transaction
exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from stream_cf.engine import UserKNN
from stream_cf.exceptions import TopicVanished
from stream_cf.processor.consumer import InputConsumer, Retrying
from stream_cf.processor.publisher import OutgoingRecord, Publisher
from stream_cf.processor.settings import ProcessorSettings
from stream_cf.processor.topic_guard import TopicGuard
from stream_cf.processor.topic_watch import TopicWatch
from stream_cf.processor.topics import ensure_topics
from stream_cf.processor.transactions import TransactionalPublisher
from stream_cf.retry import Attempt, after_attempts, no_wait, retry

logger = logging.getLogger(__name__)
_T = TypeVar("_T")


class Delivery:
    """Publishes the processor's records, at least once or exactly once, until acknowledged."""

    def __init__(
        self,
        settings: ProcessorSettings,
        input: InputConsumer,
        guard: TopicGuard,
        topics: TopicWatch,
        stop_requested: Callable[[], bool],
    ) -> None:
        self.settings = settings
        self._retrying = Retrying(stop_requested, settings.retry_backoff_max)
        self.input = input
        self.guard = guard
        self.topics = topics
        self._stop_requested = stop_requested
        self._publisher: Publisher | None = None

    def connect(self) -> None:
        """Connect the producer (exactly once: fences the predecessor and ends its transaction)."""
        self._publisher = self._retrying("connect the producer", self._new_publisher)

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.close()
            self._publisher = None

    def dispatch(self, records: list[OutgoingRecord]) -> None:
        """At least once: hand ``records`` to the producer now, without waiting; the next
        :meth:`publish` holding them waits for their acknowledgements (and sends again any that
        failed). Exactly once: nothing (the records go in the iteration's transaction)."""
        if self.settings.exactly_once or self._publisher is None or not records:
            return
        self._publisher.dispatch(records)

    def publish(self, engine: UserKNN, records: list[OutgoingRecord]) -> None:
        """Publish and wait for the acknowledgements. A topic that vanished is re-created and the
        batch sent again (a lost output topic also gets every list again); acknowledged output
        offsets below the known ones mean the output topic was re-created meanwhile."""
        exactly_once = self.settings.exactly_once
        if not records and not exactly_once:
            return
        output = self.settings.output_topic

        def send() -> dict[tuple[str, int], int]:
            if self._publisher is None:
                self._publisher = self._retrying("connect the producer", self._new_publisher)
            positions = dict(self.input.positions) if exactly_once else None
            return self._publisher.publish(records, positions)

        def recover(attempt: Attempt) -> None:
            exc = attempt.error
            assert isinstance(exc, TopicVanished)
            logger.error("%s", exc)
            if self._publisher is not None:
                self._publisher.close(timeout=0.0)  # drop what waits for the old topic
                self._publisher = None
            if exc.topic == output:
                self.topics.output_lost(engine, "was deleted while the processor ran")
            else:
                self._retrying("re-create the topics", lambda: ensure_topics(self.settings))

        ends = retry(
            send,
            retry_on=TopicVanished,
            backoff=no_wait,
            give_up=after_attempts(3),
            on_retry=recover,
        )
        self.topics.acknowledged(engine, ends)

    def commit_final(self, engine: UserKNN) -> None:
        """The last offsets (moved over gaps, e.g. transaction markers, without records): at
        least once a synchronous commit, exactly once an offsets-only transaction."""
        if self.settings.exactly_once:
            self.publish(engine, [])
        else:
            self.input.commit(final=True)

    def _new_publisher(self) -> Publisher:
        settings = self.settings
        if settings.exactly_once:
            return TransactionalPublisher(
                settings.kafka_config(),
                transactional_id=settings.transaction_id,
                group_id=settings.group_id,
                input_topic=settings.input_topic,
                input_topic_id=self.topics.ids.get(settings.input_topic),
                stop_requested=self._stop_requested,
                backoff_max=settings.retry_backoff_max,
                shutdown_timeout=settings.shutdown_timeout,
                max_request_size=settings.max_request_size,
                topic_exists=self.guard.exists,
            )
        return Publisher(
            self.settings.kafka_config(),
            stop_requested=self._stop_requested,
            backoff_max=self.settings.retry_backoff_max,
            shutdown_timeout=self.settings.shutdown_timeout,
            max_request_size=self.settings.max_request_size,
            topic_exists=self.guard.exists,
        )
