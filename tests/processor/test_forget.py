"""Re-rating, unrate and forget_user through Kafka."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from stream_cf.events import Event, ForgetUserEvent, RatingEvent, UnrateEvent
from stream_cf.processor.loop import Processor
from stream_cf.processor.settings import ProcessorSettings
from stream_cf.processor.topics import ensure_topics
from tests.processor.conftest import (
    Lists,
    assert_same_lists,
    last_lists,
    oracle_lists,
    produce_events,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

R = RatingEvent


def history() -> list[Event]:
    """Ten users, twelve items; 'b' rates only items others rated first."""
    events: list[Event] = []
    for u in range(10):
        for i in range(12):
            if (u * 5 + i * 3) % 4 != 0:
                events.append(
                    R(user_id=f"u{u}", item_id=f"i{i}", rating=float(1 + (u + 2 * i) % 5))
                )
    return events


B_EVENTS: list[Event] = [
    R(user_id="b", item_id="i1", rating=5.0),
    R(user_id="b", item_id="i2", rating=1.0),
    R(user_id="b", item_id="i5", rating=4.0),
    R(user_id="b", item_id="i7", rating=2.0),
]
CHANGES: list[Event] = [
    R(user_id="u1", item_id="i2", rating=1.0),  # re-rating
    R(user_id="u4", item_id="i6", rating=5.0),  # re-rating
    UnrateEvent(user_id="u2", item_id="i5"),
]


def test_rerate_unrate_and_forget(
    make_settings: Callable[..., ProcessorSettings], kafka_bootstrap: str
) -> None:
    settings = make_settings(max_batch=5)
    ensure_topics(settings)
    before = history() + B_EVENTS + CHANGES
    produce_events(kafka_bootstrap, settings.input_topic, before)
    Processor(settings).run(until_end=True, install_signal_handlers=False)
    published = last_lists(kafka_bootstrap, settings.output_topic)
    assert published["b"] is not None  # b had a list
    assert_same_lists(published, oracle_lists(settings, before))

    produce_events(kafka_bootstrap, settings.input_topic, [ForgetUserEvent(user_id="b")])
    summary = Processor(settings).run(until_end=True, install_signal_handlers=False)
    assert summary.restored and summary.tombstones == 1
    published = last_lists(kafka_bootstrap, settings.output_topic)
    assert published.pop("b") is None  # b's own list: a tombstone

    # nobody's list is influenced by b any more: the same as if b had never existed
    never_b = oracle_lists(settings, history() + CHANGES)
    assert_close_lists(published, never_b)


def assert_close_lists(actual: Lists, expected: Lists) -> None:
    """Like assert_same_lists, but scores to 1e-9 absolute (taking ratings back rounds)."""
    assert sorted(actual) == sorted(expected)
    for user, want in expected.items():
        got = actual[user]
        assert got is not None and want is not None
        assert [i for i, _ in got[0]] == [i for i, _ in want[0]], user
        for (_, a), (_, b) in zip(got[0], want[0], strict=True):
            assert math.isclose(a, b, abs_tol=1e-9), (user, a, b)
