"""The session broker and the helpers of tests/kafka_utils.py, as other areas use them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.kafka_utils import committed_offsets, consume, produce, read_all

pytestmark = pytest.mark.kafka


def test_bootstrap_is_host_port(kafka_bootstrap: str) -> None:
    host, _, port = kafka_bootstrap.rpartition(":")
    assert host
    assert int(port) > 0


def test_round_trip_on_unique_topic(
    kafka_bootstrap: str, unique_topic: Callable[..., str], unique_group: Callable[..., str]
) -> None:
    topic = unique_topic(partitions=3)
    values = [{"n": i} for i in range(30)]
    assert produce(kafka_bootstrap, topic, values, keys=[str(i) for i in range(30)]) == 30
    group = unique_group()
    records = consume(kafka_bootstrap, topic, count=30, group_id=group, commit=True, timeout=30)
    assert sorted(int(r.key) for r in records) == list(range(30))
    assert {r.partition for r in records} <= {0, 1, 2}
    offsets = committed_offsets(kafka_bootstrap, group, topic)
    assert sum(offsets.values()) == 30
    assert len(read_all(kafka_bootstrap, topic)) == 30


def test_unique_names_differ(
    unique_topic: Callable[..., str], unique_group: Callable[..., str]
) -> None:
    assert unique_topic() != unique_topic()
    assert unique_group() != unique_group()
