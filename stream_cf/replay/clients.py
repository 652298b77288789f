"""Small Kafka client helpers shared by the replay, the recommendations reader and the demo.

Their clients connect with one :class:`~stream_cf.kafka_config.ConnectionConfig` (kafka_config.py):
pass it, or pass the brokers and the security options are read from the ``STREAM_CF_*`` variables.
"""

from __future__ import annotations

import logging
from typing import Any

from stream_cf.exceptions import BrokerError
from stream_cf.kafka_config import (
    BOOTSTRAP_ENV,
    DEFAULT_BOOTSTRAP,
    ConnectionConfig,
    resolve_bootstrap,
)

logger = logging.getLogger(__name__)

#: A Kafka connection: a config, or the brokers (security from the ``STREAM_CF_*`` variables).
Connection = str | ConnectionConfig


def connect_with(value: Connection | None = None) -> ConnectionConfig:
    """``value`` if a config, else :meth:`ConnectionConfig.from_env` with ``value`` as the
    brokers (ConfigError if the security variables contradict each other)."""
    if isinstance(value, ConnectionConfig):
        return value
    return ConnectionConfig.from_env(value)


def client_config(bootstrap: Connection, client_id: str, **extra: Any) -> dict[str, Any]:
    """Keywords of a kafka-python client: servers, client id, security, then ``extra``."""
    return connect_with(bootstrap).client_kwargs(client_id, **extra)


def ensure_topic(
    bootstrap: Connection,
    topic: str,
    *,
    partitions: int = 1,
    replication_factor: int = 1,
    timeout: float = 30.0,
) -> bool:
    """Create ``topic`` unless it exists; True if it was created.

    Raises :class:`BrokerError` when the broker cannot be reached or refuses the topic.
    """
    from kafka import KafkaAdminClient  # noqa: PLC0415 - import kafka-python only when used
    from kafka.admin import NewTopic  # noqa: PLC0415
    from kafka.errors import KafkaError, TopicAlreadyExistsError  # noqa: PLC0415

    ms = int(timeout * 1000)
    connection = connect_with(bootstrap)
    bootstrap = connection.bootstrap_servers
    try:
        admin = KafkaAdminClient(
            **connection.client_kwargs(
                "stream-cf-admin", request_timeout_ms=ms, bootstrap_timeout_ms=ms
            )
        )
    except KafkaError as exc:
        raise BrokerError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    try:
        if topic in set(admin.list_topics()):
            return False
        try:
            admin.create_topics(
                [NewTopic(topic, num_partitions=partitions, replication_factor=replication_factor)],
                timeout_ms=ms,
            )
        except TopicAlreadyExistsError:
            return False
        logger.info("created topic %s (%d partitions)", topic, partitions)
        return True
    except KafkaError as exc:
        raise BrokerError(f"cannot create the topic {topic!r} at {bootstrap}: {exc}") from exc
    finally:
        admin.close()


__all__ = [
    "BOOTSTRAP_ENV",
    "DEFAULT_BOOTSTRAP",
    "Connection",
    "client_config",
    "connect_with",
    "ensure_topic",
    "resolve_bootstrap",
]
