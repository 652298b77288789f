"""Operators' actions under a checkpoint: a deleted output topic, a re-created input topic, a
changed ``--n``, and a crash loop with a backlog. None may lose a list or re-apply records
silently, and a process killed every few seconds must still move its checkpoint forward."""

from __future__ import annotations

import functools
import itertools
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka.admin import ConfigResource, ConfigResourceType

from stream_cf.events import Event
from stream_cf.exceptions import InputTopicChanged
from stream_cf.processor.checkpoint import read_checkpoint
from stream_cf.processor.loop import Processor
from stream_cf.processor.settings import ProcessorSettings
from stream_cf.processor.topics import ensure_topics
from tests.kafka_utils import admin_client, committed_offsets, create_topic, wait_until
from tests.processor.conftest import (
    assert_same_lists,
    last_lists,
    oracle_lists,
    produce_events,
    start_cli,
)
from tests.processor.test_implicit import instacart_or_generated

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


def delete_topic(bootstrap: str, topic: str) -> None:
    """Delete ``topic`` and wait until the broker no longer knows it (asking does not create it:
    the admin client's metadata requests never auto-create)."""
    admin = admin_client(bootstrap)
    try:
        admin.delete_topics([topic])
        wait_until(
            lambda: admin.describe_topics([topic])[0]["error_code"] != 0,
            timeout=60,
            what=f"{topic} deleted",
        )
    finally:
        admin.close()


def cleanup_policy(bootstrap: str, topic: str) -> str:
    admin = admin_client(bootstrap)
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, {"cleanup.policy": None})
        described = admin.describe_configs([resource], config_filter="all")
        return str(described["topic"][topic]["cleanup.policy"]["value"])
    finally:
        admin.close()


RUNNING = "running until the input end offsets"


def loop_started(proc: subprocess.Popen[bytes], log: Path, before: int) -> bool:
    """The process ended or logged the start of its loop once more than ``before`` times."""
    return proc.poll() is not None or log.read_text().count(RUNNING) > before


def checkpointed_offset(settings: ProcessorSettings) -> int:
    checkpoint = read_checkpoint(settings.checkpoint_path)
    return 0 if checkpoint is None else checkpoint.input_offsets.get(0, 0)


def test_output_topic_deleted_while_running_is_recreated_compacted_with_every_list(
    make_settings: Callable[..., ProcessorSettings], kafka_bootstrap: str
) -> None:
    settings = make_settings(feedback="implicit", checkpoint_interval=0.5)
    ensure_topics(settings)
    events = instacart_or_generated(3000)
    first, second = events[:2000], events[2000:]
    produce_events(kafka_bootstrap, settings.input_topic, first)
    processor = Processor(settings)
    thread = threading.Thread(
        target=processor.run, kwargs={"install_signal_handlers": False}, daemon=True
    )
    thread.start()
    try:
        wait_until(
            lambda: (
                committed_offsets(kafka_bootstrap, settings.group_id, settings.input_topic)
                == {0: len(first)}
            ),
            timeout=120,
            what="the first events applied",
        )
        wait_until(
            lambda: not processor.tracker.pending and checkpointed_offset(settings) == len(first),
            timeout=120,
            what="every list published and checkpointed",
        )
        delete_topic(kafka_bootstrap, settings.output_topic)
        produce_events(kafka_bootstrap, settings.input_topic, second)
        wait_until(
            lambda: (
                committed_offsets(kafka_bootstrap, settings.group_id, settings.input_topic)
                == {0: len(events)}
            ),
            timeout=120,
            what="every event applied",
        )
    finally:
        processor.stop()
        thread.join(timeout=120)
    assert not thread.is_alive()
    # a restart (the case: nothing was republished after it either)
    Processor(settings).run(until_end=True, install_signal_handlers=False)
    expected = oracle_lists(settings, events)
    assert len(expected) > 100
    assert_same_lists(last_lists(kafka_bootstrap, settings.output_topic), expected)
    assert cleanup_policy(kafka_bootstrap, settings.output_topic) == "compact"


def test_output_topic_recreated_between_runs_gets_every_list_again(
    make_settings: Callable[..., ProcessorSettings], kafka_bootstrap: str
) -> None:
    """Deleted and re-created with the broker's default (delete) policy while the processor was
    down: made compacted, and every list published again."""
    settings = make_settings(feedback="implicit")
    ensure_topics(settings)
    events = instacart_or_generated(1500)
    produce_events(kafka_bootstrap, settings.input_topic, events)
    Processor(settings).run(until_end=True, install_signal_handlers=False)
    delete_topic(kafka_bootstrap, settings.output_topic)
    create_topic(kafka_bootstrap, settings.output_topic)  # as the broker auto-creates it
    assert cleanup_policy(kafka_bootstrap, settings.output_topic) == "delete"
    Processor(settings).run(until_end=True, install_signal_handlers=False)
    assert cleanup_policy(kafka_bootstrap, settings.output_topic) == "compact"
    assert_same_lists(
        last_lists(kafka_bootstrap, settings.output_topic), oracle_lists(settings, events)
    )


def test_input_topic_recreated_under_a_checkpoint_stops_until_accepted(
    make_settings: Callable[..., ProcessorSettings], kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = make_settings(feedback="implicit")
    ensure_topics(settings)
    events = instacart_or_generated(1200)
    old, new = events[:1000], events[1000:]
    produce_events(kafka_bootstrap, settings.input_topic, old)
    Processor(settings).run(until_end=True, install_signal_handlers=False)
    delete_topic(kafka_bootstrap, settings.input_topic)
    create_topic(kafka_bootstrap, settings.input_topic)
    produce_events(kafka_bootstrap, settings.input_topic, new)

    with pytest.raises(InputTopicChanged, match="--accept-new-input-topic"):
        Processor(settings).run(until_end=True, install_signal_handlers=False)
    log = tmp_path / "refused.log"
    proc = start_cli(settings, log, "--until-end", "--feedback", "implicit")
    assert proc.wait(timeout=120) == 2, log.read_text()[-3000:]
    assert "re-created" in log.read_text()
    assert checkpointed_offset(settings) == len(old)  # the checkpoint is left as it was

    log = tmp_path / "accepted.log"
    proc = start_cli(
        settings, log, "--until-end", "--feedback", "implicit", "--accept-new-input-topic"
    )
    assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    assert checkpointed_offset(settings) == len(new)
    again = Processor(settings).run(until_end=True, install_signal_handlers=False)
    assert again.events == 0  # nothing applied twice on later restarts
    assert_same_lists(
        last_lists(kafka_bootstrap, settings.output_topic), oracle_lists(settings, events)
    )


def test_a_changed_n_republishes_every_list(
    make_settings: Callable[..., ProcessorSettings], kafka_bootstrap: str
) -> None:
    settings = make_settings(feedback="implicit", n=5)
    ensure_topics(settings)
    events = instacart_or_generated(1500)
    produce_events(kafka_bootstrap, settings.input_topic, events)
    Processor(settings).run(until_end=True, install_signal_handlers=False)
    shorter = settings.model_copy(update={"n": 3})
    summary = Processor(shorter).run(until_end=True, install_signal_handlers=False)
    assert summary.events == 0 and summary.published > 0
    expected = oracle_lists(shorter, events)
    assert any(len(entry[0]) == 5 for entry in oracle_lists(settings, events).values() if entry)
    assert_same_lists(last_lists(kafka_bootstrap, settings.output_topic), expected)


def test_a_crash_loop_with_a_backlog_still_moves_the_checkpoint(
    make_settings: Callable[..., ProcessorSettings], kafka_bootstrap: str, tmp_path: Path
) -> None:
    """The default batch size and checkpoint interval, a backlog, SIGKILL 2 s after every start of
    the loop: the checkpoint moves forward across the restarts and the lists end as an
    uninterrupted run's."""
    settings = make_settings(feedback="implicit", max_batch=20_000, checkpoint_interval=30.0)
    ensure_topics(settings)
    # a backlog the faster processor still needs several kill intervals for (30,000 purchases
    # were once done within the first 2 s)
    events: list[Event] = instacart_or_generated(60_000)
    produce_events(kafka_bootstrap, settings.input_topic, events)
    log = tmp_path / "crash-loop.log"
    seen = [0]
    kills = 0
    for _ in range(6):
        started = log.read_text().count(RUNNING) if log.exists() else 0
        proc = start_cli(settings, log, "--until-end", "--feedback", "implicit")
        # 2 s after the loop starts (not after the process does: on a loaded machine the imports
        # and the connection alone can take longer than a fixed kill interval)
        wait_until(
            functools.partial(loop_started, proc, log, started),
            timeout=90,
            what="the processor's loop started",
        )
        try:
            proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            kills += 1
            proc.wait(timeout=30)
        seen.append(checkpointed_offset(settings))
        if proc.returncode == 0:
            break
    assert seen == sorted(seen), seen
    advances = sum(1 for a, b in itertools.pairwise(seen) if b > a)
    assert kills >= 2, f"the backlog took less than the kill interval: {seen}"
    assert advances >= min(kills, 3), f"checkpointed offsets after each restart: {seen}"
    final = start_cli(settings, log, "--until-end", "--feedback", "implicit")
    assert final.wait(timeout=240) == 0, log.read_text()[-3000:]
    assert checkpointed_offset(settings) == len(events)
    assert_same_lists(
        last_lists(kafka_bootstrap, settings.output_topic), oracle_lists(settings, events)
    )
