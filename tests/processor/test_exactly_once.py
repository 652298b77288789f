"""``--guarantee exactly-once``: each batch's outputs and input offsets commit as one transaction.

Read with read_committed, after any crash: each dead letter is there once, the last list per user
is the final state's, every committed list is the list of the state at the input offsets it names
(no rolled-back state shows through), and aborted work is never visible.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from stream_cf.engine import UserKNN
from stream_cf.events import Event
from stream_cf.exceptions import ProducerFenced
from stream_cf.processor.codec import decode_recommendations
from stream_cf.processor.dlq import DeadLetter
from stream_cf.processor.loop import Processor
from stream_cf.processor.publisher import OutgoingRecord
from stream_cf.processor.settings import ProcessorSettings
from stream_cf.processor.topics import ensure_topics
from stream_cf.processor.transactions import (
    TransactionalPublisher,
    committed_by_this_topic,
    offsets_metadata,
)
from tests.kafka_utils import committed_offsets, read_all, wait_until
from tests.processor.conftest import (
    Lists,
    assert_same_lists,
    last_lists,
    oracle_lists,
    produce_events,
    start_cli,
)
from tests.processor.test_implicit import instacart_or_generated

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

EXACTLY_ONCE = ("--feedback", "implicit", "--guarantee", "exactly-once")


def with_bad_records(events: list[Event], count: int) -> tuple[list[Event | bytes], set[int]]:
    """``events`` with ``count`` invalid records spread through them; their offsets."""
    mixed: list[Event | bytes] = list(events)
    step = len(events) // count
    bad: set[int] = set()
    for k in range(count):
        index = (k + 1) * step + k
        mixed.insert(index, f"not json {k}".encode())
        bad.add(index)
    return mixed, bad


def dead_letter_offsets(bootstrap: str, topic: str) -> list[int]:
    """The source offset of every committed dead letter, in log order."""
    return [
        DeadLetter.from_record(r.key, r.value, r.headers).offset
        for r in read_all(bootstrap, topic, timeout=60.0, read_committed=True)
    ]


def check_every_committed_list(
    settings: ProcessorSettings, bootstrap: str, mixed: Sequence[Event | bytes]
) -> int:
    """Every committed list equals the list of the state at the input offset it names (the events
    before it), and those offsets never go back along the topic; returns how many were checked."""
    named: list[tuple[int, str, bytes | None]] = []
    for record in read_all(bootstrap, settings.output_topic, timeout=60.0, read_committed=True):
        assert record.value is not None  # no forget events here
        offset = int(json.loads(record.value)["input_offsets"]["0"])
        named.append((offset, record.key.decode(), record.value))
    offsets = [offset for offset, _, _ in named]
    assert offsets == sorted(offsets), "a committed list names an earlier state than one before"
    engine = UserKNN(**settings.engine_config())
    applied = 0
    for offset, user, value in named:
        if offset > applied:
            engine.apply_many([e for e in mixed[applied:offset] if not isinstance(e, bytes)])
            applied = offset
        recs = engine.recommend_many([user], n=settings.n)[user]
        assert value is not None
        _, items, fallback = decode_recommendations(value)
        got: Lists = {user: (items, fallback)}
        assert_same_lists(got, {user: (list(recs.items), recs.fallback)})
    return len(named)


def test_sigkill_at_random_points_leaves_each_dead_letter_once_and_only_final_lists(
    make_settings: Callable[..., ProcessorSettings], kafka_bootstrap: str, tmp_path: Path
) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    settings = make_settings(
        feedback="implicit", guarantee="exactly-once", max_batch=40, checkpoint_interval=0.3
    )
    ensure_topics(settings)
    # 1,500 events (38 transactions of 40 records): the last kill point leaves at least 375
    # events to go, as 0.85 of the 2,500 this test used to run did
    events = instacart_or_generated(1500)
    mixed, bad = with_bad_records(events, 10)
    produce_events(kafka_bootstrap, settings.input_topic, mixed)

    log = tmp_path / "eos.log"
    kills = 0
    points = sorted(rng.uniform(0.1, 0.75) for _ in range(3))
    for point in (None, *points):  # None: during start-up
        proc = start_cli(settings, log, "--until-end", *EXACTLY_ONCE)
        if point is None:
            time.sleep(rng.uniform(0.3, 2.0))
        else:
            goal = point * len(mixed)

            def progressed(pr: subprocess.Popen[bytes] = proc, goal: float = goal) -> bool:
                done = committed_offsets(kafka_bootstrap, settings.group_id, settings.input_topic)
                return pr.poll() is not None or done.get(0, 0) >= goal

            wait_until(
                progressed,
                timeout=120,
                interval=0.05,
                what=f"progress {point} (seed {seed})",
            )
            time.sleep(rng.uniform(0.0, 0.3))  # anywhere in a batch or a transaction
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
    final = start_cli(settings, log, "--until-end", *EXACTLY_ONCE)
    assert final.wait(timeout=180) == 0, log.read_text()[-3000:]
    assert kills >= 3, f"the processor finished before it could be killed (seed {seed})"
    # whether a kill fell between a transaction's commit and the next checkpoint (a restart then
    # replays committed input without publishing) depends on timing: the deterministic test below
    # makes that case happen every time

    offsets = dead_letter_offsets(kafka_bootstrap, settings.dead_letter_topic)
    assert sorted(offsets) == sorted(bad), f"seed {seed}"
    assert committed_offsets(kafka_bootstrap, settings.group_id, settings.input_topic) == {
        0: len(mixed)
    }
    assert_same_lists(
        last_lists(kafka_bootstrap, settings.output_topic), oracle_lists(settings, events)
    )
    assert check_every_committed_list(settings, kafka_bootstrap, mixed) > 0


def test_a_crash_between_commit_and_checkpoint_publishes_nothing_twice(
    make_settings: Callable[..., ProcessorSettings], kafka_bootstrap: str
) -> None:
    """The window after a transaction committed and before the checkpoint, made deterministic:
    run 2's checkpoint is thrown away; run 3 applies run 2's input again without publishing."""
    settings = make_settings(feedback="implicit", guarantee="exactly-once", max_batch=100)
    ensure_topics(settings)
    events = instacart_or_generated(1200)
    mixed, bad = with_bad_records(events, 4)
    first, second = mixed[:600], mixed[600:]
    produce_events(kafka_bootstrap, settings.input_topic, first)
    Processor(settings).run(until_end=True, install_signal_handlers=False)
    c0 = settings.checkpoint_path.read_bytes()
    produce_events(kafka_bootstrap, settings.input_topic, second)
    run2 = Processor(settings).run(until_end=True, install_signal_handlers=False)
    assert run2.published > 0 and run2.dead_letters > 0
    settings.checkpoint_path.write_bytes(c0)  # the crash: run 2's checkpoint never happened

    run3 = Processor(settings).run(until_end=True, install_signal_handlers=False)
    assert run3.restored and run3.replayed == len(second)
    assert run3.published == 0 and run3.dead_letters == 0 and run3.events == 0
    assert sorted(dead_letter_offsets(kafka_bootstrap, settings.dead_letter_topic)) == sorted(bad)
    assert_same_lists(
        last_lists(kafka_bootstrap, settings.output_topic), oracle_lists(settings, events)
    )


def publisher(settings: ProcessorSettings) -> TransactionalPublisher:
    return TransactionalPublisher(
        settings.kafka_config(),
        transactional_id=settings.transaction_id,
        group_id=settings.group_id,
        input_topic=settings.input_topic,
        input_topic_id="topic-id",
        stop_requested=lambda: False,
        backoff_max=1.0,
        shutdown_timeout=5.0,
    )


class Crash(Exception):
    """The process dies here."""


def test_aborted_and_unfinished_transactions_are_not_visible_and_the_zombie_is_fenced(
    make_settings: Callable[..., ProcessorSettings],
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(guarantee="exactly-once")
    ensure_topics(settings)
    out, group, topic = settings.output_topic, settings.group_id, settings.input_topic

    def record(name: str) -> OutgoingRecord:
        return OutgoingRecord(out, name.encode(), name.encode())

    def visible(committed: bool = True) -> list[str]:
        return [r.key.decode() for r in read_all(kafka_bootstrap, out, read_committed=committed)]

    zombie = publisher(settings)
    successor: TransactionalPublisher | None = None
    try:
        zombie.publish([record("a")], {0: 5})

        def crash() -> None:
            raise Crash

        # dies after sending its records and offsets, before the commit: the transaction stays open
        monkeypatch.setattr(zombie._producer, "commit_transaction", crash)
        with pytest.raises(Crash):
            zombie.publish([record("b"), record("c")], {0: 9})
        assert visible() == ["a"]  # read_committed stops before the open transaction

        successor = publisher(settings)  # init_transactions aborts it and fences the zombie
        assert visible() == ["a"]
        assert visible(committed=False) == ["a", "b", "c"]  # written, then aborted
        assert committed_offsets(kafka_bootstrap, group, topic) == {0: 5}

        monkeypatch.undo()
        with pytest.raises(ProducerFenced):
            zombie.publish([record("zombie")], {0: 50})

        successor.publish([record("d")], {0: 12})
        successor.publish([], {0: 14})  # offsets alone
        assert visible() == ["a", "d"]
        assert committed_offsets(kafka_bootstrap, group, topic) == {0: 14}
    finally:
        zombie.close(timeout=1.0)
        if successor is not None:
            successor.close()


def test_only_offsets_committed_by_a_transaction_on_this_topic_are_replayed() -> None:
    assert committed_by_this_topic(offsets_metadata("abc"), "abc")
    assert not committed_by_this_topic(offsets_metadata("abc"), "abd")  # a re-created topic
    assert not committed_by_this_topic("", "abc")  # committed at least once (no metadata)
    assert not committed_by_this_topic(offsets_metadata(None), None)
