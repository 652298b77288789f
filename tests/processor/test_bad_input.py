"""Bad input never stops the processor: every bad record lands in the DLQ with its reason."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from stream_cf.events import Event, ForgetUserEvent, RatingEvent, UnrateEvent
from stream_cf.processor.dlq import DeadLetter
from stream_cf.processor.loop import Processor
from stream_cf.processor.settings import ProcessorSettings
from stream_cf.processor.topics import ensure_topics
from tests.kafka_utils import read_all
from tests.processor.conftest import assert_same_lists, last_lists, oracle_lists, produce_events

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

BAD: list[tuple[bytes | None, str]] = [
    (None, "empty_value"),
    (b"\xc3\x28 not utf-8", "not_utf8"),
    (b'{"type": "rating", "user_id": "u1"', "invalid_json"),
    (b'"just a string"', "not_an_object"),
    (b'{"type": "rating", "user_id": "u1", "item_id": "a"}', "missing_field"),
    (b'{"type": "rating", "user_id": "u1", "item_id": "a", "rating": "five"}', "invalid_field"),
    (b'{"type": "poke", "user_id": "u1", "item_id": "a"}', "unknown_type"),
    (b'{"type": "rating", "user_id": "u1", "item_id": "a", "rating": 7}', "rating_out_of_scale"),
    (b'{"type": "rating", "user_id": "u1", "item_id": "a", "rating": Infinity}', "not_finite"),
    (b'{"type": "rating", "user_id": "", "item_id": "a", "rating": 3}', "empty_id"),
    (
        b'{"type": "rating", "user_id": "u1", "item_id": "' + b"z" * 65 + b'", "rating": 3}',
        "id_too_long",
    ),
    (b'{"type": "unrate", "user_id": "u1", "item_id": "never-rated"}', "unknown_rating"),
    (b'{"type": "purchase", "user_id": "u1", "item_id": "i1"}', "unsupported_event"),
]


def valid_events() -> list[Event]:
    events: list[Event] = []
    for u in range(12):
        for i in range(8):
            if (u + i) % 3:
                events.append(
                    RatingEvent(user_id=f"u{u}", item_id=f"i{i}", rating=float(1 + (u * i) % 5))
                )
    events.append(UnrateEvent(user_id="u1", item_id="i1"))
    events.append(ForgetUserEvent(user_id="nobody"))  # a documented no-op
    return events


def test_bad_records_go_to_the_dlq_and_the_stream_goes_on(
    make_settings: Callable[..., ProcessorSettings], kafka_bootstrap: str
) -> None:
    settings = make_settings(max_id_length=64, max_batch=7)
    ensure_topics(settings)
    good = valid_events()
    mixed: list[Event | bytes | None] = []
    bad_offsets: dict[int, str] = {}
    for index, event in enumerate(good):
        mixed.append(event)
        if index % 8 == 3 and len(bad_offsets) < len(BAD):
            value, reason = BAD[len(bad_offsets)]
            bad_offsets[len(mixed)] = reason
            mixed.append(value)
    for value, reason in BAD[len(bad_offsets) :]:
        bad_offsets[len(mixed)] = reason
        mixed.append(value)
    produce_events(kafka_bootstrap, settings.input_topic, mixed)

    summary = Processor(settings).run(until_end=True, install_signal_handlers=False)

    assert summary.events == len(good)
    assert summary.dead_letters == len(BAD)
    assert summary.end_offsets == {0: len(mixed)}
    letters = [
        DeadLetter.from_record(r.key, r.value, r.headers)
        for r in read_all(kafka_bootstrap, settings.dead_letter_topic)
    ]
    assert {letter.offset: letter.reason for letter in letters} == bad_offsets
    for letter in letters:
        assert letter.topic == settings.input_topic and letter.partition == 0
        assert letter.value == mixed[letter.offset]  # original bytes kept
        assert letter.key == b"raw"
    assert_same_lists(
        last_lists(kafka_bootstrap, settings.output_topic), oracle_lists(settings, good)
    )
