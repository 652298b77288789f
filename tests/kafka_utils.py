"""Helpers for tests against a real Kafka broker: topics, producing, consuming until a deadline.

Import them in any test module (``from tests.kafka_utils import produce, consume``); the fixtures
``kafka_bootstrap``, ``kafka_admin``, ``unique_topic``, ``unique_group`` and ``local_broker`` in
``tests/conftest.py`` are built on them. Every loop here is bounded by a deadline.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

Value = bytes | str | Mapping[str, Any]


def unique_name(prefix: str = "test") -> str:
    """``<prefix>-<uuid4 hex>``: a topic or group name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex}"


def wait_until(
    condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1, what: str = ""
) -> Any:
    """Call ``condition`` until it returns something truthy, and return that.

    Raises AssertionError at the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or condition}")
        time.sleep(interval)


def admin_client(bootstrap: str, timeout: float = 30.0) -> KafkaAdminClient:
    """A KafkaAdminClient for ``bootstrap`` (close it when done)."""
    ms = int(timeout * 1000)
    return KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id=unique_name("test-admin"),
        request_timeout_ms=ms,
        bootstrap_timeout_ms=ms,
    )


def create_topic(
    bootstrap_or_admin: str | KafkaAdminClient,
    name: str | None = None,
    partitions: int = 1,
    configs: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> str:
    """Create ``name`` (default: a uuid name) with ``partitions`` partitions; wait for leaders."""
    topic = name or unique_name("topic")
    own = isinstance(bootstrap_or_admin, str)
    admin = (
        admin_client(bootstrap_or_admin)
        if isinstance(bootstrap_or_admin, str)
        else bootstrap_or_admin
    )
    try:
        spec: dict[str, Any] = {"num_partitions": partitions, "replication_factor": 1}
        if configs:
            spec["configs"] = dict(configs)
        admin.create_topics({topic: spec}, timeout_ms=int(timeout * 1000))
        admin.wait_for_topics([topic], timeout_ms=int(timeout * 1000))
    finally:
        if own:
            admin.close()
    return topic


def _encode(value: Value | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value).encode()


def produce(
    bootstrap: str,
    topic: str,
    values: Iterable[Value | None],
    *,
    keys: Iterable[Value | None] | None = None,
    partition: int | None = None,
    timeout: float = 30.0,
) -> int:
    """Send ``values`` (bytes, str, dicts as JSON) to ``topic`` with acks=all; return the count.

    ``keys`` (same length) are encoded the same way; ``None`` values are tombstones.
    """
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        request_timeout_ms=int(timeout * 1000),
        max_block_ms=int(timeout * 1000),
    )
    try:
        futures = []
        key_list = list(keys) if keys is not None else None
        for index, value in enumerate(values):
            key = _encode(key_list[index]) if key_list is not None else None
            futures.append(producer.send(topic, value=_encode(value), key=key, partition=partition))
        producer.flush(timeout=timeout)
        for future in futures:
            future.get(timeout=timeout)
        return len(futures)
    finally:
        producer.close(timeout=5)


def make_consumer(
    bootstrap: str,
    topic: str | None = None,
    *,
    group_id: str | None = None,
    from_beginning: bool = True,
    **configs: Any,
) -> KafkaConsumer:
    """A KafkaConsumer with auto-commit off, reading ``topic`` from the beginning by default."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        **configs,
    )
    if topic is not None:
        consumer.subscribe([topic])
    return consumer


def consume(
    bootstrap: str,
    topic: str,
    *,
    count: int | None = None,
    until: Callable[[list[ConsumerRecord]], bool] | None = None,
    timeout: float = 30.0,
    group_id: str | None = None,
    commit: bool = False,
) -> list[ConsumerRecord]:
    """Read ``topic`` from the start until ``count`` records (or ``until(records)``) or deadline.

    Without ``count`` and ``until`` it reads until the deadline: prefer one of them. With
    ``commit=True`` (needs ``group_id``) the offsets read are committed before returning.
    Raises AssertionError when ``count``/``until`` is not reached by the deadline.
    """
    consumer = make_consumer(bootstrap, topic, group_id=group_id)
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout

    def done() -> bool:
        if count is not None and len(records) >= count:
            return True
        return until is not None and until(records)

    try:
        while not done() and time.monotonic() < deadline:
            remaining_ms = max(int((deadline - time.monotonic()) * 1000), 1)
            batch = consumer.poll(timeout_ms=min(remaining_ms, 500))
            for partition_records in batch.values():
                records.extend(partition_records)
        if commit:
            consumer.commit()
    finally:
        consumer.close()
    if (count is not None or until is not None) and not done():
        raise AssertionError(
            f"read {len(records)} records from {topic} in {timeout:.0f} s; wanted "
            f"{count if count is not None else 'the until() condition'}"
        )
    return records


def read_all(
    bootstrap: str, topic: str, timeout: float = 30.0, *, read_committed: bool = False
) -> list[ConsumerRecord]:
    """Every record now in ``topic`` (all partitions, up to the current end offsets), no group.

    With ``read_committed`` only records of committed transactions (and non-transactional ones),
    up to the last stable offset."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed" if read_committed else "read_uncommitted",
    )
    try:
        partitions = wait_until(
            lambda: consumer.partitions_for_topic(topic), timeout, what=f"metadata of {topic}"
        )
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() >= deadline:
                raise AssertionError(f"could not read {topic} to its end in {timeout:.0f} s")
            for partition_records in consumer.poll(timeout_ms=500).values():
                records.extend(partition_records)
        return records
    finally:
        consumer.close()


def committed_offsets(bootstrap: str, group_id: str, topic: str) -> dict[int, int]:
    """The offsets ``group_id`` committed on ``topic``: {partition: offset}, committed ones only."""
    admin = admin_client(bootstrap)
    try:
        answer = admin.list_group_offsets({group_id: None})
    finally:
        admin.close()
    result: dict[int, int] = {}
    for tp, meta in answer.get(group_id, {}).items():
        if tp.topic == topic and meta.offset >= 0:
            result[tp.partition] = meta.offset
    return result
