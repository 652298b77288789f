"""Shared fixtures: one real Kafka broker per test session, and uuid topics and groups per test.

``kafka_bootstrap`` picks the broker in this order:

1. ``KAFKA_BOOTSTRAP_SERVERS`` is set: that broker, as is.
2. A Docker engine answers: testcontainers' ``KafkaContainer`` in KRaft mode
   (image ``STREAM_CF_KAFKA_IMAGE``, default confluentinc/cp-kafka:7.6.0). Set
   ``STREAM_CF_KAFKA_DOCKER=0`` to skip Docker.
3. Otherwise Apache Kafka's own broker from Maven Central jars with the machine's Java 17
   (:class:`stream_cf.broker.LocalBroker`).

Helpers for producing and consuming live in ``tests/kafka_utils.py``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient

from stream_cf.broker import LocalBroker, env_bootstrap
from tests.kafka_utils import admin_client, create_topic, unique_name

logger = logging.getLogger(__name__)

DEFAULT_KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"


def docker_answers(timeout: float = 2.0) -> bool:
    """Whether a Docker engine answers a ping within ``timeout`` seconds."""
    if os.environ.get("STREAM_CF_KAFKA_DOCKER", "1") == "0":
        return False
    try:
        import docker  # type: ignore[import-untyped]  # noqa: PLC0415 - testcontainers brings it

        client = docker.from_env(timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - no engine, no socket, no SDK: all mean "no Docker"
        return False


@contextlib.contextmanager
def _docker_kafka() -> Iterator[str]:
    from testcontainers.community.kafka import KafkaContainer  # noqa: PLC0415

    image = os.environ.get("STREAM_CF_KAFKA_IMAGE", DEFAULT_KAFKA_IMAGE)
    with KafkaContainer(image).with_kraft() as container:
        yield container.get_bootstrap_server()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``"host:port"`` of a real single-node Kafka broker shared by the whole session."""
    external = env_bootstrap()
    if external is not None:
        yield external
        return
    if docker_answers():
        with _docker_kafka() as bootstrap:
            yield bootstrap
        return
    with LocalBroker() as broker:
        yield broker.bootstrap


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str) -> Iterator[KafkaAdminClient]:
    """A KafkaAdminClient on the session broker (do not close it)."""
    admin = admin_client(kafka_bootstrap)
    try:
        yield admin
    finally:
        admin.close()


@pytest.fixture
def unique_topic(kafka_admin: KafkaAdminClient) -> Iterator[Callable[..., str]]:
    """Factory ``make(partitions=1, prefix="test", configs=None) -> name``: a new uuid topic.

    The topic is created (leaders elected) before the name is returned and deleted after the test.
    """
    created: list[str] = []

    def make(
        partitions: int = 1, prefix: str = "test", configs: dict[str, str] | None = None
    ) -> str:
        name = create_topic(kafka_admin, unique_name(prefix), partitions, configs)
        created.append(name)
        return name

    yield make
    if created:
        with contextlib.suppress(Exception):
            kafka_admin.delete_topics(created, timeout_ms=10_000, raise_errors=False)


@pytest.fixture
def unique_group() -> Callable[..., str]:
    """Factory ``make(prefix="group") -> name``: a new uuid consumer-group id."""

    def make(prefix: str = "group") -> str:
        return unique_name(prefix)

    return make


@pytest.fixture
def local_broker(tmp_path: Path) -> Iterator[Callable[..., LocalBroker]]:
    """Factory ``make(**kwargs) -> LocalBroker`` (not started) on a data dir under ``tmp_path``.

    For tests that stop and restart a broker (same data dir, same port: ``broker.restart()`` or
    ``stop()`` then ``start()``); it always runs the local Java broker, whatever the session one
    is. Every broker made is stopped after the test.
    """
    brokers: list[LocalBroker] = []

    def make(**kwargs: Any) -> LocalBroker:
        kwargs.setdefault("data_dir", tmp_path / f"broker-{len(brokers)}")
        broker = LocalBroker(**kwargs)
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.stop()
