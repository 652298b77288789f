"""Poison records on a real broker: the run finishes, each is a dead letter with its reason, and the
valid events around them are applied and published (issue 13)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime

import pytest

from stream_cf.events import Event, PurchaseEvent, RatingEvent
from stream_cf.processor.dlq import DeadLetter
from stream_cf.processor.loop import Processor
from stream_cf.processor.settings import ProcessorSettings
from stream_cf.processor.topics import ensure_topics
from tests.kafka_utils import read_all
from tests.processor.conftest import (
    assert_same_lists,
    event_bytes,
    last_lists,
    oracle_lists,
    produce_events,
)
from tests.processor.poison import IMPLICIT_POISON, POISON

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


def valid_events(implicit: bool) -> list[Event]:
    events: list[Event] = []
    for u in range(10):
        for i in range(6):
            if (u + 2 * i) % 3:
                events.append(
                    RatingEvent(
                        user_id=f"u{u}", item_id=f"i{i}", rating=float(1 + (u * i) % 5), ts=1e9
                    )
                )
            elif implicit:
                events.append(PurchaseEvent(user_id=f"u{u}", item_id=f"i{i}", quantity=1 + u % 2))
    return events


@pytest.mark.parametrize("feedback", ["explicit", "implicit"])
def test_poison_records_are_dead_letters_and_the_batch_is_applied(
    make_settings: Callable[..., ProcessorSettings], kafka_bootstrap: str, feedback: str
) -> None:
    settings = make_settings(feedback=feedback, max_batch=5)
    ensure_topics(settings)
    implicit = feedback == "implicit"
    good = valid_events(implicit)
    poison = POISON + (IMPLICIT_POISON if implicit else [])
    mixed: list[Event | bytes | None] = []
    expected_reasons: dict[int, str] = {}
    for index, event in enumerate(good):
        mixed.append(event)
        if index % 2 == 1 and len(expected_reasons) < len(poison):
            value, reason = poison[len(expected_reasons)]
            expected_reasons[len(mixed)] = reason
            mixed.append(value)
    assert len(expected_reasons) == len(poison)
    if implicit:
        # a weight that would pass the limit once accumulated: the first is applied, not the second
        big = PurchaseEvent(user_id="u1", item_id="heavy", quantity=6e11)
        good.append(big)
        mixed.append(big)
        expected_reasons[len(mixed)] = "value_too_large"
        mixed.append(big)
    produce_events(kafka_bootstrap, settings.input_topic, mixed)

    summary = Processor(settings).run(until_end=True, install_signal_handlers=False)

    assert summary.end_offsets == {0: len(mixed)}
    assert summary.events == len(good)
    letters = [
        DeadLetter.from_record(r.key, r.value, r.headers)
        for r in read_all(kafka_bootstrap, settings.dead_letter_topic)
    ]
    assert {letter.offset: letter.reason for letter in letters} == expected_reasons
    for letter in letters:
        sent = mixed[letter.offset]
        assert letter.value == (sent if isinstance(sent, bytes) else event_bytes(sent))
    assert_same_lists(
        last_lists(kafka_bootstrap, settings.output_topic), oracle_lists(settings, good)
    )
    # no list carries an event time from the far future
    latest = time.time() + 86_400
    for record in read_all(kafka_bootstrap, settings.output_topic):
        if record.value is not None:
            stamp = json.loads(record.value)["event_time"]
            assert datetime.fromisoformat(stamp).timestamp() <= latest, stamp
