"""SIGKILL at several points, restart each time: the same final state as an uninterrupted run.
SIGTERM: the batch is finished, published, committed and checkpointed, exit 0."""

from __future__ import annotations

import io
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from stream_cf.engine import UserKNN
from stream_cf.events import RatingEvent, UnrateEvent
from stream_cf.processor.checkpoint import read_checkpoint
from stream_cf.processor.loop import Processor
from stream_cf.processor.settings import ProcessorSettings
from stream_cf.processor.topics import ensure_topics
from tests.kafka_utils import committed_offsets, wait_until
from tests.processor.conftest import (
    assert_same_lists,
    last_lists,
    oracle_lists,
    produce_events,
    start_cli,
)
from tests.processor.test_end_to_end import movielens_or_generated

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


def engine_of(settings: ProcessorSettings) -> tuple[dict[int, int], UserKNN, dict[str, str]]:
    checkpoint = read_checkpoint(settings.checkpoint_path)
    assert checkpoint is not None
    return checkpoint.input_offsets, UserKNN.load(io.BytesIO(checkpoint.engine)), checkpoint.digests


def test_sigkill_anywhere_then_restart_gives_the_uninterrupted_result(
    make_settings: Callable[..., ProcessorSettings], kafka_bootstrap: str, tmp_path: Path
) -> None:
    events = movielens_or_generated(2000)
    crashing = make_settings(max_batch=40, checkpoint_interval=0.3)
    reference = make_settings(max_batch=700)
    for settings in (crashing, reference):
        ensure_topics(settings)
        produce_events(kafka_bootstrap, settings.input_topic, events)
    Processor(reference).run(until_end=True, install_signal_handlers=False)

    log = tmp_path / "crashing.log"
    kills = 0
    for point in (None, 0.2, 0.45, 0.7):  # None: a kill during start-up, before any batch
        proc = start_cli(crashing, log, "--until-end")
        if point is None:
            time.sleep(0.5)  # an arbitrary moment of start-up; not a synchronisation
        else:
            wait_until(
                lambda p=point, pr=proc: (
                    pr.poll() is not None
                    or committed_offsets(
                        kafka_bootstrap, crashing.group_id, crashing.input_topic
                    ).get(0, 0)
                    >= p * len(events)
                ),
                timeout=120,
                interval=0.05,
                what=f"progress {point}",
            )
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
    final = start_cli(crashing, log, "--until-end")
    assert final.wait(timeout=180) == 0, log.read_text()[-3000:]
    assert kills >= 3, "the processor finished before it could be killed"

    offsets, engine, digests = engine_of(crashing)
    ref_offsets, ref_engine, ref_digests = engine_of(reference)
    assert offsets == ref_offsets == {0: len(events)}
    assert digests == ref_digests
    assert sorted(engine.users()) == sorted(ref_engine.users())
    for user in ref_engine.users():
        assert engine.user_items(user) == ref_engine.user_items(user)
    users = sorted(ref_engine.users())
    assert engine.recommend_many(users, n=10) == ref_engine.recommend_many(users, n=10)

    published = last_lists(kafka_bootstrap, crashing.output_topic)
    assert_same_lists(published, last_lists(kafka_bootstrap, reference.output_topic))
    assert_same_lists(published, oracle_lists(crashing, events))


def test_sigterm_finishes_commits_checkpoints_and_exits_zero(
    make_settings: Callable[..., ProcessorSettings], kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = make_settings(checkpoint_interval=3600.0)  # only the shutdown checkpoint
    ensure_topics(settings)
    events = movielens_or_generated(500)
    produce_events(kafka_bootstrap, settings.input_topic, events)
    log = tmp_path / "term.log"
    proc = start_cli(settings, log)
    wait_until(
        lambda: (
            committed_offsets(kafka_bootstrap, settings.group_id, settings.input_topic).get(0)
            == len(events)
        ),
        timeout=90,
        what="all events committed",
    )
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    assert "received SIGTERM" in log.read_text()
    offsets, _, _ = engine_of(settings)
    assert offsets == {0: len(events)}
    assert_same_lists(
        last_lists(kafka_bootstrap, settings.output_topic), oracle_lists(settings, events)
    )


def test_a_list_published_after_the_checkpoint_is_superseded_on_replay(
    make_settings: Callable[..., ProcessorSettings], kafka_bootstrap: str
) -> None:
    """The crash window between publish and checkpoint, made deterministic.

    Run 1 ends with checkpoint C0. Run 2 publishes lists changed by a new rating, then its
    checkpoint is thrown away (as if it crashed just before writing it). The replay from C0 also
    sees the rating taken back, so its final lists equal C0's digests exactly (integer ratings:
    the sums come back bit for bit): only the output records written after C0 tell the restarted
    processor that the topic now holds other lists, which it must supersede.
    """
    settings = make_settings(checkpoint_interval=3600.0)
    ensure_topics(settings)
    history = movielens_or_generated(600)
    produce_events(kafka_bootstrap, settings.input_topic, history)
    Processor(settings).run(until_end=True, install_signal_handlers=False)
    c0 = settings.checkpoint_path.read_bytes()
    before = oracle_lists(settings, history)
    change = next(  # a new rating that changes someone's list
        event
        for user in sorted({e.user_id for e in history})
        for rating in (1.0, 2.0, 5.0)
        if oracle_lists(
            settings,
            [*history, event := RatingEvent(user_id=user, item_id="brand-new-item", rating=rating)],
        )
        != before
    )
    user = change.user_id
    produce_events(kafka_bootstrap, settings.input_topic, [change])
    second = Processor(settings).run(until_end=True, install_signal_handlers=False)
    assert second.published > 0
    settings.checkpoint_path.write_bytes(c0)  # the crash: run 2's checkpoint never happened

    take_back = UnrateEvent(user_id=user, item_id="brand-new-item")
    produce_events(kafka_bootstrap, settings.input_topic, [take_back])
    third = Processor(settings).run(until_end=True, install_signal_handlers=False)
    assert third.restored and third.events == 2
    all_events = [*history, change, take_back]
    assert_same_lists(
        last_lists(kafka_bootstrap, settings.output_topic), oracle_lists(settings, all_events)
    )
