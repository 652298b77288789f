"""Codec: records to events or dead letters (one per reason), lists to output bytes and back."""

from __future__ import annotations

import json

import pytest

from stream_cf.events import RatingEvent
from stream_cf.processor.codec import (
    TOMBSTONE_DIGEST,
    SourceRecord,
    decode,
    decode_recommendations,
    digest_of_output,
    encode_recommendations,
    list_digest,
)
from stream_cf.processor.dlq import DeadLetter
from tests.processor.poison import POISON

BAD_VALUES: list[tuple[bytes | None, str]] = [
    (None, "empty_value"),
    (b"\xff\xfe\x00", "not_utf8"),
    (b"{not json", "invalid_json"),
    (b"[1, 2]", "not_an_object"),
    (b'{"type": "rating", "user_id": "u", "item_id": "i"}', "missing_field"),
    (b'{"type": "rating", "user_id": "u", "item_id": "i", "rating": "4"}', "invalid_field"),
    (b'{"type": "rating", "user_id": true, "item_id": "i", "rating": 4}', "invalid_field"),
    (b'{"type": "like", "user_id": "u", "item_id": "i"}', "unknown_type"),
    (b'{"type": "rating", "user_id": "u", "item_id": "i", "rating": 9}', "rating_out_of_scale"),
    (b'{"type": "rating", "user_id": "u", "item_id": "i", "rating": NaN}', "not_finite"),
    (b'{"type": "rating", "user_id": "", "item_id": "i", "rating": 4}', "empty_id"),
    (b'{"type": "purchase", "user_id": "u", "item_id": "' + b"x" * 40 + b'"}', "id_too_long"),
]


def _record(value: bytes | None, key: bytes | None = b"u") -> SourceRecord:
    return SourceRecord("cf.events", 2, 41, 1_700_000_000_000, key, value)


@pytest.mark.parametrize(("value", "reason"), BAD_VALUES)
def test_bad_records_become_dead_letters(value: bytes | None, reason: str) -> None:
    result = decode(_record(value), max_id_length=32, rating_scale=(1.0, 5.0))
    assert isinstance(result, DeadLetter)
    assert result.reason == reason
    assert (result.topic, result.partition, result.offset) == ("cf.events", 2, 41)
    assert result.value == value  # the original bytes, untouched
    assert result.key == b"u"


def test_dead_letter_headers_round_trip() -> None:
    letter = decode(_record(b"\xff", key=None), max_id_length=32, rating_scale=None)
    assert isinstance(letter, DeadLetter)
    headers = dict(letter.headers())
    assert headers["stream_cf.reason"] == b"not_utf8"
    assert headers["stream_cf.source.offset"] == b"41"
    assert headers["stream_cf.source.partition"] == b"2"
    assert headers["stream_cf.source.topic"] == b"cf.events"
    back = DeadLetter.from_record(letter.key, letter.value, letter.headers())
    assert back == letter


def test_valid_record_decodes() -> None:
    event = decode(
        _record(b'{"type":"rating","user_id":7,"item_id":"i","rating":4.5,"ts":1}'),
        max_id_length=32,
        rating_scale=(1.0, 5.0),
    )
    assert isinstance(event, RatingEvent)
    assert (event.user_id, event.item_id, event.rating) == ("7", "i", 4.5)


def test_recommendations_round_trip_and_digest() -> None:
    items = [("i1", 4.75), ("i2", 1.0 / 3.0)]
    value = encode_recommendations(
        "u1",
        items,
        None,
        event_time_ms=881_250_949_000,
        input_topic="cf.events",
        input_offsets={0: 12},
    )
    body = json.loads(value)
    assert body["items"] == [{"item_id": "i1", "score": 4.75}, {"item_id": "i2", "score": 1 / 3}]
    assert body["fallback"] is None
    assert body["event_time"] == "1997-12-04T15:55:49.000Z"
    assert body["input_offsets"] == {"0": 12}
    assert decode_recommendations(value) == ("u1", items, None)
    assert digest_of_output(value) == list_digest(items, None)
    assert digest_of_output(None) == TOMBSTONE_DIGEST
    assert list_digest(items, None) != list_digest(items, "popularity")
    assert list_digest(items, None) != list_digest([("i1", 4.75), ("i2", 0.3333)], None)


@pytest.mark.parametrize(("value", "reason"), POISON)
def test_poison_records_become_dead_letters(value: bytes, reason: str) -> None:
    result = decode(_record(value), max_id_length=32, rating_scale=(1.0, 5.0))
    assert isinstance(result, DeadLetter), result
    assert result.reason == reason, result.message
    assert result.value == value
    dict(result.headers())  # every header has a UTF-8 form


def test_ts_within_the_future_skew_is_accepted() -> None:
    day_later = 1_700_000_000 + 86_400
    value = json.dumps({"type": "unrate", "user_id": "u", "item_id": "i", "ts": day_later})
    assert not isinstance(
        decode(_record(value.encode()), max_id_length=8, rating_scale=None), DeadLetter
    )
    late = _record(value.replace(str(day_later), str(day_later + 1)).encode())
    letter = decode(late, max_id_length=8, rating_scale=None)
    assert isinstance(letter, DeadLetter) and letter.reason == "ts_out_of_range"
    assert not isinstance(
        decode(late, max_id_length=8, rating_scale=None, max_future_skew=86_401), DeadLetter
    )
