"""The processor's topics are the ones its checkpoint refers to, and none is created by accident.

A topic deleted while the processor runs, or deleted and re-created between two runs, breaks what
the checkpoint says about it: its offsets refer to another log, and the output digests say lists
are published that are gone. Kafka gives every topic a unique id (KIP-516), which changes when the
topic is re-created under the same name; the checkpoint records the ids of the input and output
topics, and :class:`TopicGuard` reads the current ones (at start-up and before every checkpoint).

What the processor does when an id changed (see loop.py):

- the output topic: its lists are lost. It makes sure the topic exists and is compacted (a topic
  auto-created by the broker has ``cleanup.policy=delete``; it is altered to ``compact``), forgets
  every digest and owes every user a refresh: every current list is published again;
- the input topic: its offsets no longer mean anything. The processor stops
  (:class:`~stream_cf.exceptions.InputTopicChanged`, exit status 2) unless
  ``--accept-new-input-topic`` says to keep the state and read the new topic from its beginning.

No client of the processor lets the broker auto-create a topic: a producer or consumer asking for
the metadata of a missing topic would otherwise create it with the broker's defaults (delete
policy, one partition), so the output topic would come back silently uncompacted.
kafka-python 3.0 accepts ``allow_auto_create_topics=False`` but does not pass it to the metadata
client its producer and consumers use (``KafkaConnectionManager`` builds ``ClusterMetadata``
without it), so :func:`forbid_auto_create` sets it there as well.
"""

from __future__ import annotations

import logging
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from stream_cf.exceptions import BrokerError
from stream_cf.processor.settings import ProcessorSettings

logger = logging.getLogger(__name__)

_UNKNOWN_TOPIC = 3  # UNKNOWN_TOPIC_OR_PARTITION


def forbid_auto_create(client: Any) -> None:
    """Make sure a kafka-python producer or consumer never asks the broker to create a topic.

    Sets ``allow_auto_create_topics`` on the client's cluster metadata (where kafka-python 3.0
    reads it; best effort: a client without that attribute is left as it is)."""
    cluster = getattr(client, "_metadata", None)  # KafkaProducer
    if cluster is None:
        cluster = getattr(getattr(client, "_client", None), "cluster", None)  # KafkaConsumer
    config = getattr(cluster, "config", None)
    if isinstance(config, dict):
        config["allow_auto_create_topics"] = False
    else:
        logger.warning("cannot turn off topic auto-creation for %r", client)


class TopicGuard:
    """Reads the ids and cleanup policies of the processor's topics (one admin client)."""

    def __init__(self, settings: ProcessorSettings) -> None:
        self.settings = settings
        self._admin: KafkaAdminClient | None = None

    @property
    def admin(self) -> KafkaAdminClient:
        if self._admin is None:
            config: dict[str, Any] = self.settings.kafka_config()
            config["client_id"] = "stream-cf-topic-guard"
            self._admin = KafkaAdminClient(**config)
        return self._admin

    def topic_ids(self, topics: list[str]) -> dict[str, str | None]:
        """Topic name -> its id now (None: the topic does not exist or the broker gives no ids)."""
        found: dict[str, str | None] = dict.fromkeys(topics)
        for entry in self.admin.describe_topics(topics):
            if entry.get("error_code") == 0 and entry.get("topic_id") is not None:
                found[str(entry["name"])] = str(entry["topic_id"])
        return found

    def exists(self, topic: str) -> bool:
        """Whether ``topic`` exists now (it is not auto-created by asking)."""
        entries = self.admin.describe_topics([topic])
        return any(e.get("error_code") != _UNKNOWN_TOPIC for e in entries)

    def cleanup_policy(self, topic: str) -> str | None:
        """The topic's ``cleanup.policy`` (None if it cannot be read)."""
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, {"cleanup.policy": None})
        described = self.admin.describe_configs([resource], config_filter="all")
        entry = described.get("topic", {}).get(topic, {}).get("cleanup.policy")
        return None if entry is None else str(entry.get("value"))

    def make_compacted(self, topic: str, extra: dict[str, str]) -> None:
        """Set ``cleanup.policy=compact`` (and ``extra``) on an existing topic (BrokerError if the
        broker refuses)."""
        configs: dict[str, Any] = {"cleanup.policy": "compact", **extra}
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs)
        answer = self.admin.alter_configs([resource])
        result = answer.get("topic", {}).get(topic)
        if result != "OK":
            raise BrokerError(f"could not set {configs} on the topic {topic}: {result}")
        logger.warning("set %s on the output topic %s", configs, topic)

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
