"""A rejected record whose dead letter would exceed the producer's limit is truncated (and says
so), instead of being retried forever; a record the broker can never accept is not retried."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable

import pytest

from stream_cf.events import Event, RatingEvent
from stream_cf.exceptions import RecordRejected
from stream_cf.processor.dlq import (
    HEADER_TRUNCATED,
    HEADER_VALUE_SHA256,
    DeadLetter,
    fit_to_size,
)
from stream_cf.processor.loop import Processor
from stream_cf.processor.publisher import OutgoingRecord, Publisher
from stream_cf.processor.settings import ProcessorSettings, load_settings
from stream_cf.processor.topics import ensure_topics
from tests.kafka_utils import read_all
from tests.processor.conftest import produce_events

pytestmark = [pytest.mark.timeout(120)]

BIG = b"x" * 1_048_400  # fits the input topic; with the dead-letter headers it exceeds 1 MiB


@pytest.mark.kafka
def test_an_oversized_dead_letter_is_truncated_and_the_stream_goes_on(
    make_settings: Callable[..., ProcessorSettings], kafka_bootstrap: str
) -> None:
    settings = make_settings(shutdown_timeout=2.0)
    ensure_topics(settings)
    good: list[Event] = [RatingEvent(user_id="u1", item_id="i1", rating=4.0)]
    produce_events(kafka_bootstrap, settings.input_topic, [BIG, *good])
    processor = Processor(settings)
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(processor.run(until_end=True, install_signal_handlers=False))
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=60)
    if thread.is_alive():
        processor.stop()
        thread.join(timeout=30)
        pytest.fail("the processor retried the oversized dead letter forever")
    assert len(outcome) == 1 and not isinstance(outcome[0], BaseException), outcome
    records = read_all(kafka_bootstrap, settings.dead_letter_topic)
    assert len(records) == 1
    record = records[0]
    letter = DeadLetter.from_record(record.key, record.value, record.headers)
    assert letter.reason == "invalid_json" and letter.offset == 0
    headers = dict(record.headers)
    assert headers[HEADER_TRUNCATED] == str(len(BIG)).encode()
    assert headers[HEADER_VALUE_SHA256] == hashlib.sha256(BIG).hexdigest().encode()
    assert record.value is not None and BIG.startswith(record.value)
    assert len(record.value) < len(BIG)
    assert len(read_all(kafka_bootstrap, settings.output_topic)) == 1


def test_fit_to_size_keeps_small_records_and_cuts_large_ones() -> None:
    headers = (("stream_cf.reason", b"invalid_json"),)
    assert fit_to_size(b"k", b"v", headers, 1024) == (b"k", b"v", headers)
    key, value, out = fit_to_size(b"k" * 5000, b"v" * 5000, headers, 2048)
    assert key is not None and value is not None
    assert len(key) + len(value) + sum(len(n) + len(v) for n, v in out) <= 2048
    found = dict(out)
    assert found[HEADER_TRUNCATED] == b"5000"
    assert found[HEADER_VALUE_SHA256] == hashlib.sha256(b"v" * 5000).hexdigest().encode()
    assert found["stream_cf.key.truncated"] == b"5000"


def test_max_request_size_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().max_request_size == 1_048_576
    monkeypatch.setenv("STREAM_CF_MAX_REQUEST_SIZE", "2097152")
    assert load_settings().max_request_size == 2_097_152


@pytest.mark.kafka
def test_a_record_the_broker_never_accepts_is_not_retried(
    kafka_bootstrap: str, unique_topic: Callable[..., str]
) -> None:
    topic = unique_topic(configs={"max.message.bytes": "20000"})
    publisher = Publisher(
        {"bootstrap_servers": kafka_bootstrap},
        stop_requested=lambda: False,
        backoff_max=0.5,
        shutdown_timeout=2.0,
        max_request_size=1_048_576,
    )
    try:
        with pytest.raises(RecordRejected, match=topic):
            publisher.publish([OutgoingRecord(topic, b"k", b"y" * 50_000)])
        with pytest.raises(RecordRejected, match="max_request_size"):
            publisher.publish([OutgoingRecord(topic, b"k", b"y" * 2_000_000)])
    finally:
        publisher.close()
