"""Read the processor's output topic to its end: the latest list of each user.

The output topic is a changelog keyed by user (see :mod:`stream_cf.processor.codec`): each record
is the user's whole current list, a later record replaces an earlier one, and a tombstone (a null
value) removes the user. :func:`read_latest` reads every partition from the beginning up to the
end offsets taken when it starts (a consistent snapshot) without joining a consumer group.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from stream_cf.exceptions import BrokerError
from stream_cf.processor.codec import list_entries
from stream_cf.replay.clients import Connection, connect_with

logger = logging.getLogger(__name__)

DEFAULT_OUTPUT_TOPIC = "cf.recommendations"


@dataclass(frozen=True)
class UserList:
    """One user's latest published list."""

    user_id: str
    items: list[tuple[str, float]]
    fallback: str | None = None
    event_time: str | None = None
    ratings: list[float] | None = None  # each item's predicted rating (explicit feedback)

    def to_dict(self, titles: dict[str, str] | None = None) -> dict[str, Any]:
        """JSON-ready; with ``titles`` each item also gets its ``title`` (when known)."""
        entries: list[dict[str, Any]] = []
        for pos, (item, score) in enumerate(self.items):
            entry: dict[str, Any] = {"item_id": item, "score": score}
            if self.ratings is not None:
                entry["rating"] = self.ratings[pos]
            if titles is not None and item in titles:
                entry["title"] = titles[item]
            entries.append(entry)
        return {
            "user_id": self.user_id,
            "items": entries,
            "fallback": self.fallback,
            "event_time": self.event_time,
        }


@dataclass
class Snapshot:
    """The latest list of each user, and counts of what was read."""

    lists: dict[str, UserList]
    records: int = 0
    tombstones: int = 0
    unreadable: int = 0


def decode_list(key: bytes | None, value: bytes) -> UserList:
    """A user's list from an output record; ValueError if it is not one."""
    body = json.loads(value.decode("utf-8"))
    if not isinstance(body, dict):
        raise ValueError("the value is not a JSON object")
    user = body.get("user_id")
    if user is None and key is not None:
        user = key.decode("utf-8")
    if user is None:
        raise ValueError("no user_id and no key")
    items, ratings = list_entries(body.get("items") or [])
    fallback = body.get("fallback")
    event_time = body.get("event_time")
    return UserList(
        user_id=str(user),
        items=items,
        fallback=None if fallback is None else str(fallback),
        event_time=None if event_time is None else str(event_time),
        ratings=ratings,
    )


def read_latest(
    bootstrap: Connection,
    topic: str = DEFAULT_OUTPUT_TOPIC,
    *,
    users: Iterable[str] | None = None,
    timeout: float = 60.0,
    consumer_config: dict[str, Any] | None = None,
) -> Snapshot:
    """The latest list of each user (only ``users`` if given) in ``topic``, read to its end.

    Raises :class:`BrokerError` if the broker cannot be reached, the topic does not exist, or the
    end is not reached within ``timeout`` seconds.
    """
    from kafka import KafkaConsumer, TopicPartition  # noqa: PLC0415
    from kafka.errors import KafkaError  # noqa: PLC0415

    wanted = set(users) if users is not None else None
    connection = connect_with(bootstrap)
    bootstrap = connection.bootstrap_servers
    config = connection.client_kwargs(
        "stream-cf-recommendations",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        allow_auto_create_topics=False,
        request_timeout_ms=30_000,
        bootstrap_timeout_ms=30_000,
    )
    config.update(consumer_config or {})
    try:
        consumer = KafkaConsumer(**config)
    except KafkaError as exc:
        raise BrokerError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    snapshot = Snapshot(lists={})
    try:
        deadline = time.monotonic() + timeout
        partitions = consumer.partitions_for_topic(topic)
        while not partitions:
            if topic not in consumer.topics():  # a fresh metadata request for every topic
                raise BrokerError(f"the topic {topic!r} does not exist at {bootstrap}")
            if time.monotonic() > deadline:
                raise BrokerError(f"no partition metadata for {topic!r} within {timeout:g} s")
            time.sleep(0.2)  # leaders being elected; bounded by the deadline above
            partitions = consumer.partitions_for_topic(topic)
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        ends: dict[Any, int] = consumer.end_offsets(assigned)
        remaining = {tp for tp in assigned if ends[tp] > 0}
        while remaining:
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"reading {topic!r} did not reach its end within {timeout:g} s "
                    f"({len(remaining)} partitions left)"
                )
            batches = consumer.poll(timeout_ms=500, max_records=10_000)
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        continue
                    _apply(snapshot, record.key, record.value, wanted)
            for tp in list(remaining):
                if consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    except KafkaError as exc:
        raise BrokerError(f"cannot read {topic!r} at {bootstrap}: {exc}") from exc
    finally:
        consumer.close()
    return snapshot


def _apply(
    snapshot: Snapshot, key: bytes | None, value: bytes | None, wanted: set[str] | None
) -> None:
    snapshot.records += 1
    if value is None:  # a tombstone: the user was forgotten
        snapshot.tombstones += 1
        if key is not None:
            snapshot.lists.pop(key.decode("utf-8", errors="replace"), None)
        return
    try:
        user_list = decode_list(key, value)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        snapshot.unreadable += 1
        logger.warning("skipping an unreadable output record (key %r): %s", key, exc)
        return
    if wanted is None or user_list.user_id in wanted:
        snapshot.lists[user_list.user_id] = user_list
