"""Small Kafka client helpers shared by the replay, the recommendations reader and the demo."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

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
            bootstrap_servers=bootstrap,
            client_id="stream-cf-admin",
            request_timeout_ms=ms,
            bootstrap_timeout_ms=ms,
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
