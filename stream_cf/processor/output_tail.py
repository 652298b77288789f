"""Reading back what was published: the output records written after a checkpoint.

The checkpoint records the output topic's end offsets (as acknowledged to the processor) when it
was written. A crash after publishing but before the next checkpoint leaves records beyond those
offsets; on restart they are the truth about what each user's last published list is, so the
processor reads them (and only them) before processing anything.

End offsets below the checkpointed ones mean the topic was deleted and re-created (its lists are
lost): :class:`OutputBehind` says so, and the processor republishes every list (topic_guard.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from stream_cf.exceptions import OutputBehind, StreamCFError
from stream_cf.processor.codec import TOMBSTONE_DIGEST, digest_of_output
from stream_cf.processor.topic_guard import forbid_auto_create

logger = logging.getLogger(__name__)


def read_output_tail(
    kafka_config: dict[str, Any],
    topic: str,
    start_offsets: dict[int, int],
    on_record: Callable[[str, str | None], None],
) -> dict[int, int]:
    """Call ``on_record(user, digest or None for a tombstone)`` for every record of ``topic`` from
    ``start_offsets`` (the beginning where missing) to the end offsets; return those end offsets.
    :class:`OutputBehind` (before reading anything) if a partition ends before its start offset.
    """
    reader = KafkaConsumer(
        **kafka_config,
        client_id="stream-cf-output-reader",
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        fetch_max_wait_ms=100,
        allow_auto_create_topics=False,
    )
    forbid_auto_create(reader)
    try:
        found = reader.partitions_for_topic(topic) or set()
        partitions = [TopicPartition(topic, p) for p in sorted(found)]
        if not partitions:
            return dict(start_offsets)
        reader.assign(partitions)
        ends = {tp: int(o) for tp, o in reader.end_offsets(partitions).items()}
        begins = {tp: int(o) for tp, o in reader.beginning_offsets(partitions).items()}
        behind = {
            tp.partition: (start_offsets[tp.partition], end)
            for tp, end in ends.items()
            if end < start_offsets.get(tp.partition, 0)
        }
        if behind:
            raise OutputBehind(
                f"the output topic {topic} ends before the offsets the checkpoint recorded "
                f"(partition: (checkpointed, end) {behind})"
            )
        todo: dict[TopicPartition, int] = {}
        for tp in partitions:
            start = max(start_offsets.get(tp.partition, 0), begins[tp])
            if start < ends[tp]:
                reader.seek(tp, start)
                todo[tp] = ends[tp]
            else:
                reader.pause(tp)
        replayed = 0
        while todo:
            for tp, batch in reader.poll(timeout_ms=500).items():
                for record in batch:
                    if record.offset >= todo.get(tp, 0) or record.key is None:
                        continue
                    replayed += 1
                    user = record.key.decode("utf-8", errors="replace")
                    try:
                        digest = digest_of_output(record.value)
                    except StreamCFError:
                        logger.warning("unreadable output record at %s@%d", tp, record.offset)
                        digest = "unreadable"  # differs from every list: republished when computed
                    on_record(user, None if digest == TOMBSTONE_DIGEST else digest)
            for tp in list(todo):
                if reader.position(tp) >= todo[tp]:
                    del todo[tp]
                    reader.pause(tp)
        if replayed:
            logger.info("read %d output records published after the checkpoint", replayed)
        return {
            tp.partition: max(ends[tp], start_offsets.get(tp.partition, 0)) for tp in partitions
        }
    finally:
        reader.close()
