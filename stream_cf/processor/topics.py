"""Create the processor's topics when they are missing.

The input and dead-letter topics are created with the default (delete) cleanup policy; the output
topic is created compacted (``cleanup.policy=compact``), since only the last list per user matters
and a forgotten user's tombstone lets compaction erase them. With a ``max_request_size`` above the
broker's default message size, the output and dead-letter topics get it as ``max.message.bytes``.
Existing topics are left as they are.
"""

from __future__ import annotations

import logging
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from stream_cf.exceptions import BrokerError
from stream_cf.processor.settings import ProcessorSettings
from stream_cf.retry import exponential, retry, within

logger = logging.getLogger(__name__)

# Kafka's default message.max.bytes: a larger --max-request-size raises the max.message.bytes of
# the output and dead-letter topics the processor creates (existing topics are left as they are)
BROKER_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588


def topic_specs(settings: ProcessorSettings) -> dict[str, dict[str, str]]:
    """Topic name -> the configs it is created with."""
    sized: dict[str, str] = {}
    if settings.max_request_size > BROKER_DEFAULT_MAX_MESSAGE_BYTES:
        sized = {"max.message.bytes": str(settings.max_request_size)}
    return {
        settings.input_topic: {},
        settings.output_topic: {"cleanup.policy": "compact", **sized},
        settings.dead_letter_topic: dict(sized),
    }


def ensure_topics(settings: ProcessorSettings, *, timeout: float = 60.0) -> list[str]:
    """Create whichever of the input, output and dead-letter topics are missing.

    Returns the names created. Retries with backoff until ``timeout`` while the broker cannot be
    reached, then raises :class:`BrokerError`.
    """
    hint = settings.connection_hint()
    return retry(
        lambda: _create_missing(settings),
        retry_on=KafkaError,
        backoff=exponential(first=0.2, cap=settings.retry_backoff_max),
        give_up=within(timeout, counting_the_wait=True),
        fail=lambda attempt: BrokerError(
            f"could not create topics on {settings.bootstrap_servers}: {attempt.error!r}{hint}"
        ),
        on_retry=lambda attempt: logger.warning(
            "topic creation failed (%r%s); retrying in %.1fs", attempt.error, hint, attempt.delay
        ),
    )


def _create_missing(settings: ProcessorSettings) -> list[str]:
    config: dict[str, Any] = settings.kafka_config()
    config["client_id"] = "stream-cf-admin"
    admin = KafkaAdminClient(**config)
    try:
        existing = set(admin.list_topics())
        specs = topic_specs(settings)
        missing = [name for name in specs if name not in existing]
        if not missing:
            return []
        new = [
            NewTopic(
                name=name,
                num_partitions=settings.partitions,
                replication_factor=settings.replication_factor,
                topic_configs=specs[name],
            )
            for name in missing
        ]
        try:
            admin.create_topics(new, timeout_ms=30_000)
        except TopicAlreadyExistsError:
            logger.debug("a topic was created concurrently")
        for name in missing:
            logger.info("created topic %s %s", name, specs[name] or "")
        return missing
    finally:
        admin.close()
