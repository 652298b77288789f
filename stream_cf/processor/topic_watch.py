"""What the processor knows of its topics' identity, and what it does when one changed.

:class:`TopicWatch` owns the Kafka ids of the input and output topics and the output offsets (the
end of what this processor had acknowledged on each output partition), both recorded in the
checkpoint. It compares the ids at start-up (against the checkpoint) and before every checkpoint
(against those read at start-up), reads the output records written after the checkpoint, and
checks each publish's acknowledged offsets. When the output topic is lost (re-created, deleted,
or behind the checkpointed offsets) it re-creates it compacted and owes every user's list again;
when the input topic is another one it raises :class:`~stream_cf.exceptions.InputTopicChanged`
unless ``--accept-new-input-topic`` (see topic_guard.py for the why, loop.py for the order).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from kafka.errors import KafkaError

from stream_cf.engine import UserKNN
from stream_cf.exceptions import InputTopicChanged, OutputBehind
from stream_cf.processor.checkpoint import Checkpoint
from stream_cf.processor.consumer import Retrying
from stream_cf.processor.output_tail import read_output_tail
from stream_cf.processor.settings import ProcessorSettings
from stream_cf.processor.topic_guard import TopicGuard
from stream_cf.processor.topics import ensure_topics, topic_specs
from stream_cf.processor.tracker import ListTracker

logger = logging.getLogger(__name__)
_T = TypeVar("_T")


class TopicWatch:
    """The topics' ids and the output offsets, and the handling of a changed or lost topic."""

    def __init__(
        self,
        settings: ProcessorSettings,
        guard: TopicGuard,
        tracker: ListTracker,
        stop_requested: Callable[[], bool],
    ) -> None:
        self.settings = settings
        self._retrying = Retrying(stop_requested, settings.retry_backoff_max)
        self.guard = guard
        self.tracker = tracker
        self._stop_requested = stop_requested
        self.output_offsets: dict[int, int] = {}
        self.ids: dict[str, str | None] = {}

    def read_ids(self) -> None:
        """Read the current topic ids (at start-up, before the checkpoint is compared)."""
        self.ids = self._retrying("read the topic ids", self._current_ids)

    def _current_ids(self) -> dict[str, str | None]:
        return self.guard.topic_ids([self.settings.input_topic, self.settings.output_topic])

    def check_restored(self, engine: UserKNN, checkpoint: Checkpoint) -> dict[int, int]:
        """Take the checkpoint's output offsets and compare its topic ids with the current ones;
        return the input positions to start from (InputTopicChanged if the input topic is
        another one, unless accepted)."""
        settings = self.settings
        self.output_offsets = dict(checkpoint.output_offsets)
        now = self.ids
        then = checkpoint.topic_ids
        positions = dict(checkpoint.input_offsets)
        old, new = then.get(settings.input_topic), now.get(settings.input_topic)
        if old is not None and new is not None and old != new:
            if not settings.accept_new_input_topic:
                raise InputTopicChanged(
                    f"the input topic {settings.input_topic} was deleted and re-created since "
                    f"the checkpoint {settings.checkpoint_path} (topic id {old} -> {new}): its "
                    f"offsets {checkpoint.input_offsets} refer to the old topic. Stopped without "
                    f"reading it. Remove the state dir {settings.state_dir} to start over from "
                    f"the new topic, or pass --accept-new-input-topic to keep the state and read "
                    f"the new topic from its beginning"
                )
            logger.warning(
                "the input topic %s was re-created since the checkpoint (id %s -> %s); "
                "--accept-new-input-topic: keeping the state, reading it from its beginning",
                settings.input_topic,
                old,
                new,
            )
            positions = {}
        old, new = then.get(settings.output_topic), now.get(settings.output_topic)
        if old is not None and new is not None and old != new:
            self.output_lost(engine, f"was re-created since the checkpoint (id {old} -> {new})")
        return positions

    def read_output_tail(self, engine: UserKNN) -> None:
        """Read what was published after the checkpoint (all of it after a recovery)."""
        settings = self.settings

        def read() -> dict[int, int]:
            return read_output_tail(
                settings.kafka_config(),
                settings.output_topic,
                self.output_offsets,
                self.tracker.record_published,
            )

        try:
            self.output_offsets = self._retrying("read the output after the checkpoint", read)
        except OutputBehind as exc:
            self.output_lost(engine, f"is not the checkpointed one: {exc}")
            self.output_offsets = self._retrying("read the output topic", read)

    def acknowledged(self, engine: UserKNN, ends: dict[tuple[str, int], int]) -> None:
        """A publish's acknowledged end offsets: below the known ones means the output topic was
        re-created meanwhile; otherwise they move the output offsets forward."""
        output = self.settings.output_topic
        behind = {
            partition: (self.output_offsets[partition], end)
            for (topic, partition), end in ends.items()
            if topic == output and end < self.output_offsets.get(partition, 0)
        }
        if behind:
            self.output_lost(engine, f"acknowledged offsets below those already published {behind}")
        for (topic, partition), end in ends.items():
            if topic == output:
                self.output_offsets[partition] = max(self.output_offsets.get(partition, 0), end)

    def check(self, engine: UserKNN) -> None:
        """Before a checkpoint: the topics are still the ones it will name."""
        try:
            now = self._current_ids()
        except KafkaError as exc:
            logger.warning("could not read the topic ids (%r); checked next time", exc)
            return
        settings = self.settings
        known = self.ids
        if known.get(settings.input_topic) not in (None, now[settings.input_topic]):
            raise InputTopicChanged(
                f"the input topic {settings.input_topic} was deleted or re-created while the "
                f"processor ran (id {known[settings.input_topic]} -> "
                f"{now[settings.input_topic]}); stopped. Remove the state dir "
                f"{settings.state_dir} to start over, or restart with --accept-new-input-topic "
                f"to keep the state and read the new topic from its beginning"
            )
        if known.get(settings.output_topic) not in (None, now[settings.output_topic]):
            self.output_lost(
                engine,
                f"was re-created (id {known[settings.output_topic]} -> "
                f"{now[settings.output_topic]})",
            )
        self.ids = {**known, **{t: i for t, i in now.items() if i is not None}}

    def output_lost(self, engine: UserKNN, why: str) -> None:
        """The output topic's lists are gone: make it exist, compacted, and owe every user's list
        again (the digests are forgotten, so every list is published)."""
        settings = self.settings
        topic = settings.output_topic
        logger.error(
            "the output topic %s %s: the lists published there are lost; re-creating it "
            "compacted and publishing the lists of all %d users again",
            topic,
            why,
            engine.n_users,
        )
        self._retrying("re-create the output topic", lambda: ensure_topics(settings))
        policy = self._retrying("read its cleanup policy", lambda: self.guard.cleanup_policy(topic))
        if policy != "compact":
            logger.error(
                "the output topic %s has cleanup.policy=%s (auto-created by the broker?)",
                topic,
                policy,
            )
            extra = {k: v for k, v in topic_specs(settings)[topic].items() if k != "cleanup.policy"}
            self._retrying("make it compacted", lambda: self.guard.make_compacted(topic, extra))
        self.tracker.digests.clear()
        self.tracker.pending = set(engine.users())
        self.output_offsets = {}
        ids = self._retrying("read the topic ids", self._current_ids)
        self.ids[topic] = ids[topic]
