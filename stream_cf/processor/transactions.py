"""Exactly-once delivery: each batch's outputs and its input offsets commit as one transaction.

With ``--guarantee exactly-once`` the processor publishes through :class:`TransactionalPublisher`,
a kafka-python producer with a ``transactional_id``. One call of :meth:`publish` is one
transaction::

    begin_transaction -> send the lists, tombstones and dead letters -> wait for the acks
        -> send_offsets_to_transaction(input positions, group id) -> commit_transaction

so a reader with ``isolation_level=read_committed`` sees all of a batch's records or none, and the
group's committed offsets move with them: the committed offsets always say how far the committed
output goes. Any error inside a transaction aborts it and the whole transaction is sent again
(with backoff), so no record is committed twice; a record the broker can never accept aborts it and
stops the run (:class:`~stream_cf.exceptions.RecordRejected`).

The transactional id is stable per instance (``ProcessorSettings.transaction_id``): a restarted
processor's ``init_transactions`` aborts whatever its killed predecessor left open (and waits for a
commit it had begun to finish), and fences it: a zombie predecessor's next transactional call fails.
A publisher that finds itself fenced (:class:`~stream_cf.exceptions.ProducerFenced`) stops the run
without committing or checkpointing its batch. A transaction left open by a process that died is
aborted by the restart's ``init_transactions`` (or by the broker after ``transaction.timeout.ms``,
60 s, if nothing restarts); read_committed readers of the output wait for it until then.

The committed offsets carry the input topic's id in their metadata (:func:`offsets_metadata`), so
that a restart never trusts offsets committed on an earlier topic of the same name.

The restart (loop.py) makes the checkpoint and the committed transactions agree: the checkpoint is
written only after the transactions up to its offsets committed, so its offsets are at or before
the group's; the input between the two is applied again *without* publishing (its outputs are
committed already), its users' lists are owed a recomputation, and the committed output records
after the checkpoint (read back with read_committed) say which lists are on the topic, so that only
the lists that differ are published.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from kafka import TopicPartition
from kafka.errors import (
    InvalidProducerEpochError,
    KafkaError,
    KafkaTimeoutError,
    ProducerFencedError,
    TransactionalIdAuthorizationFailedError,
)
from kafka.structs import OffsetAndMetadata

from stream_cf.exceptions import BrokerError, ProducerFenced, RecordRejected, TopicVanished
from stream_cf.processor.publisher import OutgoingRecord, Publisher, _never_accepted
from stream_cf.retry import after_stop, any_of, exponential, retry, within

logger = logging.getLogger(__name__)

_FENCED = (ProducerFencedError, InvalidProducerEpochError, TransactionalIdAuthorizationFailedError)
_METADATA_PREFIX = "stream-cf input topic id "


def offsets_metadata(topic_id: str | None) -> str:
    """The metadata committed with the input offsets: the input topic's Kafka id."""
    return f"{_METADATA_PREFIX}{topic_id or 'unknown'}"


def committed_by_this_topic(metadata: str | None, topic_id: str | None) -> bool:
    """Whether offsets committed with ``metadata`` refer to the input topic of id ``topic_id``
    (offsets committed without a transaction of this processor, or on a topic deleted since, are
    not)."""
    return topic_id is not None and metadata == offsets_metadata(topic_id)


class TransactionalPublisher(Publisher):
    """Publishes whole batches in transactions that also commit the input offsets."""

    def __init__(
        self,
        config: dict[str, Any],
        *,
        transactional_id: str,
        group_id: str,
        input_topic: str,
        input_topic_id: str | None,
        stop_requested: Callable[[], bool],
        backoff_max: float,
        shutdown_timeout: float,
        max_request_size: int = 1_048_576,
        topic_exists: Callable[[str], bool] | None = None,
        give_up_after: float = 120.0,
    ) -> None:
        self._transactional_id = transactional_id
        self._group_id = group_id
        self._input_topic = input_topic
        self._metadata = offsets_metadata(input_topic_id)
        self._give_up_after = give_up_after
        self._committed: dict[int, int] | None = None
        self._open = False
        super().__init__(
            config,
            stop_requested=stop_requested,
            backoff_max=backoff_max,
            shutdown_timeout=shutdown_timeout,
            max_request_size=max_request_size,
            topic_exists=topic_exists,
        )
        self._init_transactions()

    def _make_producer(self, **extra: Any) -> Any:
        return super()._make_producer(transactional_id=self._transactional_id, **extra)

    def _init_transactions(self) -> None:
        """``init_transactions``: fence the predecessor and finish its open transaction. A
        timeout is retried on the same producer (kafka-python keeps waiting for the same
        request) until ``give_up_after``; being fenced or not authorized stops the run."""

        def init() -> None:
            try:
                self._producer.init_transactions()
            except _FENCED as exc:
                raise self._fenced(exc) from exc

        retry(
            init,
            retry_on=KafkaError,
            # a timeout: kafka-python keeps waiting for the same request, call again at once
            backoff=lambda _number, error: (
                0.0 if isinstance(error, KafkaTimeoutError) else min(1.0, self._backoff_max)
            ),
            give_up=any_of(within(self._give_up_after), lambda _attempt: self._stop_requested()),
            fail=lambda attempt: BrokerError(
                f"could not initialise the transactions of {self._transactional_id}: "
                f"{attempt.error!r}"
            ),
            on_retry=lambda attempt: logger.warning(
                "initialising the transactions of %s: %r; still waiting",
                self._transactional_id,
                attempt.error,
            ),
        )
        logger.info("transactional producer %s initialised", self._transactional_id)

    def publish(
        self, records: Sequence[OutgoingRecord], offsets: dict[int, int] | None = None
    ) -> dict[tuple[str, int], int]:
        """Send ``records`` and commit them with the input ``offsets`` (next offset per
        partition) in one transaction; return the highest offset + 1 per (topic, partition).
        Nothing to send and offsets already committed: no transaction."""
        if not records and (offsets is None or offsets == self._committed):
            return {}

        def transaction() -> dict[tuple[str, int], int]:
            try:
                return self._transaction(records, offsets)
            except _FENCED as exc:
                raise self._fenced(exc) from exc
            except (RecordRejected, TopicVanished, KafkaError):
                self._abort()  # then RecordRejected and TopicVanished stop, KafkaError retries
                raise

        ends = retry(
            transaction,
            retry_on=KafkaError,
            backoff=exponential(first=0.25, cap=self._backoff_max),
            give_up=after_stop(self._stop_requested, self._shutdown_timeout),
            fail=lambda attempt: BrokerError(
                f"a transaction of {len(records)} records still not committed "
                f"{self._shutdown_timeout}s after the stop request: {attempt.error!r}"
            ),
            on_retry=lambda attempt: logger.warning(
                "transaction of %d records aborted (%r); sending it again in %.1fs (attempt %d)",
                len(records),
                attempt.error,
                attempt.delay,
                attempt.number,
            ),
            on_success=lambda attempts: logger.warning(
                "transaction committed after %d attempts", attempts
            ),
        )
        if offsets is not None:
            self._committed = dict(offsets)
        return ends

    def _transaction(
        self, records: Sequence[OutgoingRecord], offsets: dict[int, int] | None
    ) -> dict[tuple[str, int], int]:
        producer = self._producer
        producer.begin_transaction()
        self._open = True
        futures = [(record, self._send(record)) for record in records]
        if records:
            self._flush(len(records), {record.topic for record in records})
        ends: dict[tuple[str, int], int] = {}
        for record, future in futures:
            error = future if isinstance(future, KafkaError) else None
            if error is None and future.failed():
                error = future.exception
            if error is not None:
                if _never_accepted(error):
                    raise self._rejected(record, error)
                self._check_topics({record.topic})
                raise error
            meta = future.value
            key = (meta.topic, meta.partition)
            ends[key] = max(ends.get(key, 0), meta.offset + 1)
        if offsets:
            producer.send_offsets_to_transaction(
                {
                    TopicPartition(self._input_topic, partition): OffsetAndMetadata(
                        offset, self._metadata, -1
                    )
                    for partition, offset in sorted(offsets.items())
                },
                self._group_id,
            )
        producer.commit_transaction()
        self._open = False
        return ends

    def _abort(self) -> None:
        """Abort the open transaction; a producer that cannot (a fatal error) is replaced, and
        the new one's ``init_transactions`` aborts it instead."""
        if not self._open:
            return
        try:
            self._producer.abort_transaction()
            self._open = False
            return
        except _FENCED as exc:
            raise self._fenced(exc) from exc
        except KafkaError as exc:
            logger.warning("aborting the transaction failed (%r): replacing the producer", exc)
        try:
            self._producer.close(timeout=0.0)
        except KafkaError as exc:
            logger.warning("closing the producer failed: %r", exc)
        self._producer = self._make_producer()
        self._open = False
        self._init_transactions()

    def _fenced(self, exc: BaseException) -> ProducerFenced:
        return ProducerFenced(
            f"another producer with the transactional id {self._transactional_id} started "
            f"(another instance of the processor took over?): {exc!r}. Stopped without "
            f"committing or checkpointing this batch"
        )
