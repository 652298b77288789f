"""The input lag the processor reports: records on the input after the applied positions."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from stream_cf.events import Event, RatingEvent
from stream_cf.processor.codec import SourceRecord
from stream_cf.processor.consumer import InputConsumer
from stream_cf.processor.loop import Processor
from stream_cf.processor.settings import ProcessorSettings
from stream_cf.processor.topics import ensure_topics
from tests.kafka_utils import wait_until
from tests.processor.conftest import produce_events

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


def ratings(n: int) -> list[Event]:
    return [
        RatingEvent(user_id=f"u{k % 7}", item_id=f"i{k % 11}", rating=float(1 + k % 5))
        for k in range(n)
    ]


def test_lag_is_what_the_positions_leave_unread(
    make_settings: Callable[..., ProcessorSettings], kafka_bootstrap: str
) -> None:
    settings = make_settings(max_batch=10)
    ensure_topics(settings)
    produce_events(kafka_bootstrap, settings.input_topic, ratings(100))
    consumer = InputConsumer(settings, lambda: False)
    consumer.open({})
    try:
        assert consumer.lag() is None  # nothing fetched yet: no high watermark
        batch: list[SourceRecord] = []

        def fetched() -> bool:
            batch.extend(consumer.poll(None, 1.0))
            return bool(batch)

        wait_until(fetched, timeout=30.0, what="a first batch")
        assert len(batch) == 10  # max_batch
        assert consumer.lag() == 100  # fetched but not applied: the positions did not move
        consumer.advance(batch)
        assert consumer.lag() == 90
    finally:
        consumer.close()


def test_run_reports_no_lag_once_it_has_read_to_the_end(
    make_settings: Callable[..., ProcessorSettings], kafka_bootstrap: str
) -> None:
    settings = make_settings(max_batch=7)
    ensure_topics(settings)
    produce_events(kafka_bootstrap, settings.input_topic, ratings(50))
    summary = Processor(settings).run(until_end=True, install_signal_handlers=False)
    assert summary.events == 50
    assert summary.input_lag == 0
