"""Small Kafka client helpers shared by the replay, the recommendations reader and the demo."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from stream_cf.exceptions import BrokerError

logger = logging.getLogger(__name__)

#: Environment variables read, in order, when no ``--bootstrap-servers`` is given.
BOOTSTRAP_ENV = ("STREAM_CF_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS")
DEFAULT_BOOTSTRAP = "localhost:9092"


def resolve_bootstrap(value: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """``value``, else ``STREAM_CF_BOOTSTRAP_SERVERS``, else ``KAFKA_BOOTSTRAP_SERVERS``, else
    ``localhost:9092`` (the host listener of this repository's docker compose)."""
    if value:
        return value
    env = os.environ if environ is None else environ
    for name in BOOTSTRAP_ENV:
        if env.get(name):
            return env[name]
    return DEFAULT_BOOTSTRAP


_SECURITY_PREFIXES = ("STREAM_CF_SECURITY_PROTOCOL", "STREAM_CF_SASL_", "STREAM_CF_SSL_")


def security_config(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """kafka-python security keywords from the processor's ``STREAM_CF_SECURITY_PROTOCOL``,
    ``STREAM_CF_SASL_*`` and ``STREAM_CF_SSL_*`` variables; empty when none is set.

    Raises :class:`~stream_cf.exceptions.ConfigError` if they contradict each other.
    """
    env = os.environ if environ is None else environ
    if not any(name.upper().startswith(_SECURITY_PREFIXES) for name in env):
        return {}
    from stream_cf.processor.settings import load_settings  # noqa: PLC0415

    names = ("security_protocol", "sasl_", "ssl_")
    config = load_settings().kafka_config()
    return {key: value for key, value in config.items() if key.startswith(names)}


def client_config(bootstrap: str, client_id: str, **extra: Any) -> dict[str, Any]:
    """Keywords of a kafka-python client: servers, client id, security, then ``extra``."""
    config: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in bootstrap.split(",") if s.strip()],
        "client_id": client_id,
    }
    config.update(security_config())
    config.update(extra)
    return config


def ensure_topic(
    bootstrap: str,
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
    try:
        admin = KafkaAdminClient(
            **client_config(
                bootstrap, "stream-cf-admin", request_timeout_ms=ms, bootstrap_timeout_ms=ms
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
