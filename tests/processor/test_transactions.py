"""Transactional input: only committed records are applied; records of aborted transactions and
of transactions still open are never applied (the consumers read with read_committed)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kafka import KafkaProducer

from stream_cf.events import Event, RatingEvent
from stream_cf.processor.loop import Processor
from stream_cf.processor.settings import ProcessorSettings
from stream_cf.processor.topics import ensure_topics
from tests.kafka_utils import unique_name
from tests.processor.conftest import assert_same_lists, event_bytes, last_lists, oracle_lists

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


def transactional(bootstrap: str) -> KafkaProducer:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id=unique_name("txn"),
        enable_idempotence=True,
        acks="all",
    )
    producer.init_transactions()
    return producer


def send(producer: KafkaProducer, topic: str, events: list[Event]) -> None:
    for event in events:
        producer.send(topic, key=event.user_id.encode(), value=event_bytes(event), partition=0)
    producer.flush(timeout=30)


def ratings(prefix: str, count: int) -> list[Event]:
    return [
        RatingEvent(user_id=f"{prefix}{k % 4}", item_id=f"i{k % 6}", rating=float(1 + k % 5))
        for k in range(count)
    ]


def test_aborted_and_open_transactions_are_never_applied(
    make_settings: Callable[..., ProcessorSettings], kafka_bootstrap: str
) -> None:
    settings = make_settings(max_batch=10)
    ensure_topics(settings)
    topic = settings.input_topic
    committed, aborted, still_open = ratings("c", 20), ratings("a", 20), ratings("o", 20)
    first, second, third = (transactional(kafka_bootstrap) for _ in range(3))
    try:
        first.begin_transaction()
        send(first, topic, committed)
        first.commit_transaction()
        second.begin_transaction()
        send(second, topic, aborted)
        second.abort_transaction()
        third.begin_transaction()
        send(third, topic, still_open)  # not committed while the processor runs

        summary = Processor(settings).run(until_end=True, install_signal_handlers=False)
        assert summary.events == len(committed)
        assert_same_lists(
            last_lists(kafka_bootstrap, settings.output_topic), oracle_lists(settings, committed)
        )
        third.abort_transaction()
    finally:
        for producer in (first, second, third):
            producer.close(timeout=5)
