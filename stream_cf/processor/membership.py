"""Membership in the consumer group, for ownership only (``--scale-out``).

A second consumer subscribes to the input topic with the group id. The group protocol (join,
heartbeats, the assignor) divides the input partitions among the live instances; a silent one's
partitions move to the others after the session timeout. This consumer reads no records: its
partitions are paused as soon as they are assigned (the :class:`InputConsumer` reads every
partition, without a group). :meth:`GroupMembership.poll`, called once per loop iteration, drives
the protocol and reports the rebalances the listener saw, in order.

Kafka's eager assignors revoke every member's partitions before any member gets its new ones, and
the listener runs on the loop's thread between batches (after the previous batch's records were
acknowledged), so a user's lists are never published by two instances at once. The owner of a
partition commits the input position it has applied and published up to on that partition
(:meth:`GroupMembership.commit`): a new owner reads it to know which dead letters of the partition
may not have been published (see scaleout.py).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from stream_cf.processor.consumer import Retrying
from stream_cf.processor.settings import ProcessorSettings
from stream_cf.processor.topic_guard import forbid_auto_create

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rebalance:
    """One step of a rebalance: ``revoked`` (the partitions given up; ``lost`` if the group had
    already evicted this member) or ``assigned`` (the new assignment, whole)."""

    kind: str  # "revoked" | "lost" | "assigned"
    partitions: frozenset[int]


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: Callable[[], KafkaConsumer], steps: list[Rebalance]) -> None:
        self._consumer = consumer
        self._steps = steps

    def on_partitions_revoked(self, revoked: Any) -> None:
        self._steps.append(Rebalance("revoked", frozenset(tp.partition for tp in revoked)))

    def on_partitions_lost(self, lost: Any) -> None:
        self._steps.append(Rebalance("lost", frozenset(tp.partition for tp in lost)))

    def on_partitions_assigned(self, assigned: Any) -> None:
        if assigned:
            self._consumer().pause(*assigned)  # ownership only: the records come from elsewhere
        self._steps.append(Rebalance("assigned", frozenset(tp.partition for tp in assigned)))


class GroupMembership:
    """This instance's membership in the group (see module doc)."""

    def __init__(self, settings: ProcessorSettings, stop_requested: Callable[[], bool]) -> None:
        self.settings = settings
        self._retrying = Retrying(stop_requested, settings.retry_backoff_max)
        self._consumer: KafkaConsumer | None = None
        self._steps: list[Rebalance] = []
        self._committed: dict[int, int] = {}
        self.joined_at = 0.0

    @property
    def consumer(self) -> KafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("the group membership is not open")
        return self._consumer

    def open(self) -> None:
        """Join the group (the first assignment comes through :meth:`poll`)."""
        timeout_ms = int(self.settings.session_timeout * 1000)
        settings = self.settings

        def make() -> KafkaConsumer:
            consumer = KafkaConsumer(
                **settings.kafka_config(),
                client_id="stream-cf-member",
                group_id=settings.group_id,
                enable_auto_commit=False,
                auto_offset_reset="latest",
                session_timeout_ms=timeout_ms,
                heartbeat_interval_ms=max(500, timeout_ms // 5),
                # sticky: a rebalance gives each member back the partitions it had where it can,
                # so a join or a death moves as few users (and their pair rows) as possible
                partition_assignment_strategy=(StickyPartitionAssignor, RangePartitionAssignor),
                max_poll_records=1,
                fetch_max_bytes=1024,
                max_partition_fetch_bytes=1024,
                allow_auto_create_topics=False,
            )
            forbid_auto_create(consumer)
            return consumer

        self._consumer = self._retrying("join the consumer group", make)
        # the topic's partitions known before the first join: a leader without them assigns
        # nothing, and the metadata arriving later forces a second rebalance at once
        self._retrying(
            "read the input topic's partitions",
            lambda: self.consumer.partitions_for_topic(settings.input_topic),
        )
        self.consumer.subscribe([settings.input_topic], listener=_Listener(self._get, self._steps))
        self.joined_at = time.monotonic()

    def _get(self) -> KafkaConsumer:
        return self.consumer

    def poll(self, wait: float = 0.0) -> list[Rebalance]:
        """Drive the group protocol (join, sync, heartbeat), waiting up to ``wait`` seconds;
        return the rebalance steps seen."""
        consumer = self.consumer
        try:
            consumer.poll(timeout_ms=int(wait * 1000), max_records=1)
        except KafkaError as exc:
            logger.warning("group %s: %r (retried at the next poll)", self.settings.group_id, exc)
        steps, self._steps[:] = list(self._steps), []
        return steps

    def commit(self, positions: dict[int, int], owned: frozenset[int]) -> None:
        """Commit the positions of the owned partitions (asynchronously; a failure is logged and
        the next commit covers it)."""
        offsets = {
            TopicPartition(self.settings.input_topic, p): OffsetAndMetadata(o, "", -1)
            for p, o in positions.items()
            if p in owned and self._committed.get(p) != o
        }
        if not offsets:
            return
        try:
            self.consumer.commit_async(offsets)
            self._committed.update({tp.partition: meta.offset for tp, meta in offsets.items()})
        except KafkaError as exc:
            logger.warning("commit of the owned positions failed: %r", exc)

    def committed(self, partitions: frozenset[int]) -> dict[int, int]:
        """The positions the previous owners committed on ``partitions`` (absent: none)."""
        consumer = self.consumer
        found: dict[int, int] = {}
        for p in sorted(partitions):
            tp = TopicPartition(self.settings.input_topic, p)
            try:
                meta = consumer.committed(tp, timeout_ms=10_000)
            except KafkaError as exc:
                logger.warning("could not read the committed offset of partition %d: %r", p, exc)
                continue
            if meta is not None and int(meta) >= 0:
                found[p] = int(meta)
        return found

    def rejoin(self) -> None:
        """Leave and join again (a rebalance that did not end within the session timeout and
        a margin: this member may have been evicted without noticing)."""
        logger.warning(
            "group %s: no assignment for %.0fs after a revocation; leaving and joining again",
            self.settings.group_id,
            time.monotonic() - self.joined_at,
        )
        self.close()
        self.open()

    def close(self) -> None:
        """Leave the group (the others take this instance's partitions at once)."""
        if self._consumer is None:
            return
        with contextlib.suppress(KafkaError):
            self._consumer.close(autocommit=False, timeout_ms=5_000)
        self._consumer = None
