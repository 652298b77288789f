"""Compressed input: every codec Kafka clients use is decoded, and a batch the consumer cannot
decode stops the processor loudly (exit 2, the partition, offset and codec named) instead of
spinning in kafka-python's fetcher."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import kafka.codec
import pytest
from kafka import KafkaProducer

from stream_cf.events import Event, RatingEvent
from stream_cf.exceptions import UndecodableInput
from stream_cf.processor.loop import Processor
from stream_cf.processor.settings import ProcessorSettings
from stream_cf.processor.topics import ensure_topics
from tests.processor.conftest import (
    assert_same_lists,
    cli_command,
    event_bytes,
    last_lists,
    oracle_lists,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

EVENTS: list[Event] = [
    RatingEvent(user_id=f"u{k % 7}", item_id=f"i{k % 11}", rating=float(1 + k % 5))
    for k in range(150)
]


def produce_compressed(bootstrap: str, topic: str, events: list[Event], codec: str) -> None:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", compression_type=codec, linger_ms=20
    )
    try:
        futures = [
            producer.send(topic, key=e.user_id.encode(), value=event_bytes(e), partition=0)
            for e in events
        ]
        producer.flush(timeout=30)
        for future in futures:
            future.get(timeout=30)
    finally:
        producer.close(timeout=5)


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_each_codec_end_to_end(
    codec: str, make_settings: Callable[..., ProcessorSettings], kafka_bootstrap: str
) -> None:
    settings = make_settings(max_batch=60)
    ensure_topics(settings)
    produce_compressed(kafka_bootstrap, settings.input_topic, EVENTS, codec)
    summary = Processor(settings).run(until_end=True, install_signal_handlers=False)
    assert summary.events == len(EVENTS)
    assert summary.dead_letters == 0
    assert_same_lists(
        last_lists(kafka_bootstrap, settings.output_topic), oracle_lists(settings, EVENTS)
    )


# The processor in a subprocess where lz4 cannot be imported: kafka-python then has no lz4 codec.
_WITHOUT_LZ4 = (
    "import sys; sys.modules['lz4'] = None; sys.modules['lz4.frame'] = None; "
    "from stream_cf.cli import run_cli; sys.exit(run_cli(sys.argv[1:]))"
)


def test_an_undecodable_batch_stops_the_processor_loudly(
    make_settings: Callable[..., ProcessorSettings], kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = make_settings(max_batch=60)
    ensure_topics(settings)
    plain, compressed = EVENTS[:20], EVENTS[20:60]
    produce_compressed(kafka_bootstrap, settings.input_topic, plain, "gzip")
    produce_compressed(kafka_bootstrap, settings.input_topic, compressed, "lz4")
    command = cli_command(settings)
    log = tmp_path / "run.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-c", _WITHOUT_LZ4, *command[3:]],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            pytest.fail(f"the processor did not stop: {log.read_text()[-2000:]}")
    text = log.read_text()
    assert code == 2, text[-2000:]
    assert "lz4" in text
    assert f"{settings.input_topic} partition 0 offset 20" in text, text[-2000:]
    assert "Traceback" not in text
    # the records before the undecodable batch were applied and checkpointed
    lists = last_lists(kafka_bootstrap, settings.output_topic)
    assert set(lists) == {e.user_id for e in plain}


def test_an_undecodable_batch_raises_in_process(
    make_settings: Callable[..., ProcessorSettings],
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(metrics_port=0)
    ensure_topics(settings)
    produce_compressed(kafka_bootstrap, settings.input_topic, EVENTS[:30], "zstd")
    monkeypatch.setattr(kafka.codec, "has_zstd", lambda: False)
    processor = Processor(settings)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            processor.run(install_signal_handlers=False)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the processor spins on an undecodable batch"
    assert len(errors) == 1 and isinstance(errors[0], UndecodableInput), errors
    assert "zstd" in str(errors[0]) and "offset 0" in str(errors[0])
    assert not processor.ready.is_set()
