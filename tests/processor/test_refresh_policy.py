"""Refresh policies: what `actors` leaves stale (and `neighbours` does not), and the tracker."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from stream_cf.engine import UserKNN
from stream_cf.events import Event, ForgetUserEvent, RatingEvent
from stream_cf.processor.loop import Processor
from stream_cf.processor.settings import ProcessorSettings
from stream_cf.processor.topics import ensure_topics
from stream_cf.processor.tracker import ListTracker
from tests.processor.conftest import assert_same_lists, last_lists, oracle_lists, produce_events
from tests.processor.test_end_to_end import movielens_or_generated


def _one_changing_event(
    settings: ProcessorSettings, history: list[Event]
) -> tuple[RatingEvent, list[str]]:
    """A new rating whose effect reaches users other than its author, and those users."""
    before = oracle_lists(settings, history)
    for user in sorted({e.user_id for e in history}):
        for rating in (1.0, 5.0):
            event = RatingEvent(user_id=user, item_id="brand-new-item", rating=rating)
            after = oracle_lists(settings, [*history, event])
            others = [u for u in after if u != user and after[u] != before[u]]
            if others:
                return event, others
    raise AssertionError("no event changes another user's list")


@pytest.mark.kafka
@pytest.mark.timeout(120)
@pytest.mark.parametrize("policy", ["actors", "neighbours"])
def test_actors_leaves_co_raters_stale_neighbours_does_not(
    make_settings: Callable[..., ProcessorSettings], kafka_bootstrap: str, policy: str
) -> None:
    """Under `actors` a user's list is the one of the state when it was last recomputed (after a
    batch with one of their own events); a co-rater's later event does not update it."""
    settings = make_settings(refresh=policy)
    ensure_topics(settings)
    history = movielens_or_generated(600)
    produce_events(kafka_bootstrap, settings.input_topic, history)
    Processor(settings).run(until_end=True, install_signal_handlers=False)
    event, others = _one_changing_event(settings, history)
    produce_events(kafka_bootstrap, settings.input_topic, [event])
    Processor(settings).run(until_end=True, install_signal_handlers=False)

    published = last_lists(kafka_bootstrap, settings.output_topic)
    now = oracle_lists(settings, [*history, event])
    assert_same_lists(
        {event.user_id: published[event.user_id]}, {event.user_id: now[event.user_id]}
    )
    if policy == "neighbours":
        assert_same_lists(published, now)
    else:
        then = oracle_lists(settings, history)
        assert_same_lists({u: published[u] for u in others}, {u: then[u] for u in others})


def test_tracker_owes_co_raters_and_forgets_the_forgotten() -> None:
    engine = UserKNN(predictor="knn_means")  # co-raters are the whole reach of knn_means
    engine.apply_many(
        [
            RatingEvent(user_id="a", item_id="x", rating=5.0),
            RatingEvent(user_id="b", item_id="x", rating=3.0),
            RatingEvent(user_id="c", item_id="y", rating=4.0),
        ]
    )
    tracker = ListTracker(policy="neighbours", n=5)
    batch: list[Event] = [RatingEvent(user_id="a", item_id="z", rating=2.0)]
    before = tracker.before_batch(engine, ["a"])
    now = tracker.after_batch(engine, engine.apply_many(batch), before)
    assert now == ["a"] and tracker.pending == {"b"}
    changed = tracker.recompute(engine, now)
    assert [entry.user for entry in changed] == ["a"]
    assert tracker.recompute(engine, now) == []  # same list: nothing to publish
    tracker.drain(engine, budget=10.0)
    assert tracker.pending == set() and "b" in tracker.digests

    deferred = tracker.after_batch(
        engine,
        engine.apply_many([RatingEvent(user_id="c", item_id="x", rating=1.0)]),
        tracker.before_batch(engine, ["c"]),
        defer=True,
    )
    assert deferred == [] and {"a", "b", "c"} <= tracker.pending

    forget = engine.apply_many([ForgetUserEvent(user_id="b")])
    tracker.after_batch(engine, forget, set())
    assert "b" not in tracker.pending and "b" not in tracker.digests

    actors_only = ListTracker(policy="actors", n=5)
    effect = engine.apply_many([RatingEvent(user_id="a", item_id="y", rating=1.0)])
    assert actors_only.after_batch(engine, effect, actors_only.before_batch(engine, ["a"])) == ["a"]
    assert actors_only.pending == set()
