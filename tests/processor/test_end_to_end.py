"""End to end through the real broker: `stream-cf run --until-end` in a subprocess."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from stream_cf.datasets import dataset_available
from stream_cf.events import Event, RatingEvent
from stream_cf.processor.checkpoint import read_checkpoint
from stream_cf.processor.settings import ProcessorSettings
from tests.datasets import first_events
from tests.kafka_utils import committed_offsets, read_all
from tests.processor.conftest import (
    assert_same_lists,
    last_lists,
    oracle_lists,
    produce_events,
    start_cli,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]


def movielens_or_generated(count: int) -> list[Event]:
    """The first ``count`` MovieLens 100K ratings, or generated ones if recbole is missing."""
    if dataset_available("ml-100k"):
        return first_events("ml-100k", count)
    events: list[Event] = []
    for index in range(count):
        user, item = index % 97, (index * 7919) % 211
        rating = float(1 + (user * 31 + item * 17) % 5)
        events.append(RatingEvent(user_id=f"u{user}", item_id=f"i{item}", rating=rating))
    return events


def test_until_end_lists_equal_a_batch_computation(
    make_settings: Callable[..., ProcessorSettings], kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = make_settings(max_batch=300, checkpoint_interval=0.5)
    events = movielens_or_generated(3000)
    # the processor creates the topics; produce after it did, to a topic that exists
    first = start_cli(settings, tmp_path / "first.log", "--until-end")
    assert first.wait(timeout=120) == 0, (tmp_path / "first.log").read_text()[-3000:]
    produce_events(kafka_bootstrap, settings.input_topic, events)

    proc = start_cli(settings, tmp_path / "run.log", "--until-end", "--json")
    code = proc.wait(timeout=180)
    log = (tmp_path / "run.log").read_text()
    assert code == 0, log[-3000:]

    published = last_lists(kafka_bootstrap, settings.output_topic)
    assert_same_lists(published, oracle_lists(settings, events))
    assert committed_offsets(kafka_bootstrap, settings.group_id, settings.input_topic) == {
        0: len(events)
    }
    checkpoint = read_checkpoint(settings.checkpoint_path)
    assert checkpoint is not None and checkpoint.input_offsets == {0: len(events)}
    assert read_all(kafka_bootstrap, settings.dead_letter_topic) == []
