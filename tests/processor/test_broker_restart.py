"""A broker stopped and started again (same data dir, same port) in the middle of a run."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from kafka.errors import KafkaError

from stream_cf.broker import LocalBroker
from stream_cf.processor.loop import Processor
from stream_cf.processor.settings import ProcessorSettings
from stream_cf.processor.summary import RunSummary
from stream_cf.processor.topics import ensure_topics
from tests.kafka_utils import committed_offsets, wait_until
from tests.processor.conftest import assert_same_lists, last_lists, oracle_lists, produce_events
from tests.processor.test_end_to_end import movielens_or_generated

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]


def test_broker_restart_loses_nothing(
    make_settings: Callable[..., ProcessorSettings],
    local_broker: Callable[..., LocalBroker],
) -> None:
    broker = local_broker()
    bootstrap = broker.start()
    settings = make_settings(bootstrap=bootstrap, max_batch=50, checkpoint_interval=0.5)
    ensure_topics(settings)
    events = movielens_or_generated(1500)
    first, second = events[:1000], events[1000:]
    produce_events(bootstrap, settings.input_topic, first)

    processor = Processor(settings)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["summary"] = processor.run(install_signal_handlers=False)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def committed() -> int:
        try:
            return committed_offsets(bootstrap, settings.group_id, settings.input_topic).get(0, 0)
        except KafkaError:  # e.g. the group coordinator of a fresh broker is not ready yet
            return 0

    wait_until(lambda: committed() >= 200, timeout=60, what="some progress")
    broker.stop()
    assert thread.is_alive() and "error" not in outcome
    broker.start()
    produce_events(bootstrap, settings.input_topic, second)
    wait_until(lambda: committed() >= len(events), timeout=120, what="every event committed")
    processor.stop()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    summary: RunSummary = outcome["summary"]
    assert summary.end_offsets == {0: len(events)}
    assert summary.events == len(events)
    assert_same_lists(last_lists(bootstrap, settings.output_topic), oracle_lists(settings, events))
