"""Refresh policies: what `actors` leaves stale (and `neighbours` does not), and the tracker."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stream_cf.engine import UserKNN
from stream_cf.events import Event, ForgetUserEvent, PurchaseEvent, RatingEvent, UnrateEvent
from stream_cf.processor.codec import list_digest
from stream_cf.processor.loop import Processor
from stream_cf.processor.settings import ProcessorSettings
from stream_cf.processor.topics import ensure_topics
from stream_cf.processor.tracker import BeforeBatch, ListTracker
from tests.kafka_utils import read_all
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
    else:  # the co-raters' last lists were published before the event: they are stale
        named: dict[str, int] = {}
        for record in read_all(kafka_bootstrap, settings.output_topic, timeout=60.0):
            if record.value is not None:
                named[record.key.decode()] = int(json.loads(record.value)["input_offsets"]["0"])
        for user in others:
            assert named[user] <= len(history), f"{user}'s list was refreshed under actors"
            assert published[user] != now[user]


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
    before = tracker.before_batch(engine, batch)
    now = tracker.after_batch(engine, engine.apply_many(batch), before)
    assert now == ["a"] and tracker.pending == {"b"}
    changed = tracker.recompute(engine, now)
    assert [entry.user for entry in changed] == ["a"]
    assert tracker.recompute(engine, now) == []  # same list: nothing to publish
    tracker.drain(engine, budget=10.0)
    assert tracker.pending == set() and "b" in tracker.digests

    late: list[Event] = [RatingEvent(user_id="c", item_id="x", rating=1.0)]
    before = tracker.before_batch(engine, late)
    deferred = tracker.after_batch(engine, engine.apply_many(late), before, defer=True)
    assert deferred == [] and {"a", "b", "c"} <= tracker.pending

    erase: list[Event] = [ForgetUserEvent(user_id="b")]
    before = tracker.before_batch(engine, erase)
    tracker.after_batch(engine, engine.apply_many(erase), before)
    assert "b" not in tracker.pending and "b" not in tracker.digests

    actors_only = ListTracker(policy="actors", n=5)
    mine: list[Event] = [RatingEvent(user_id="a", item_id="y", rating=1.0)]
    before = actors_only.before_batch(engine, mine)
    assert actors_only.after_batch(engine, engine.apply_many(mine), before) == ["a"]
    assert actors_only.pending == set()


RANKINGS = [
    {"rank": "vote", "rank_neighbours": 2},
    {"rank": "vote", "rank_damping": 0.0},
    {"rank": "item"},
    {"rank": "rating", "k": 3},
    # re-purchases listed; shared items weighted by rarity (w_uv follows n_j of u's own items,
    # which only u's co-raters change)
    {"rank": "vote", "feedback": "implicit", "include_seen": True, "rank_rarity": 1.0},
    {"rank": "vote", "feedback": "implicit"},  # the neighbours' items near the shared ones
    {"rank": "vote", "rank_neighbour_recency": "latest", "rank_neighbour_half_life": 1.0},
    {"rank": "vote", "rank_damping": -0.5},  # favours popular items: a new rater raises a score
    # knn_means: a list's reach is the co-raters alone (no μ, b_i), so the co-raters before a
    # batch are looked up, for the actors who lose an item in it
    {"rank": "vote", "predictor": "knn_means"},
    {"rank": "rating", "predictor": "knn_means", "k": 3},
]
event_strategy = st.tuples(
    st.sampled_from(["rate", "rate", "rate", "unrate", "forget"]),
    st.sampled_from([f"u{n}" for n in range(7)]),
    st.sampled_from([f"i{n}" for n in range(6)]),
    st.sampled_from([1.0, 3.0, 5.0]),
)


def _event(raw: tuple[str, str, str, float], engine: UserKNN) -> Event | None:
    kind, user, item, value = raw
    if kind == "forget":
        return ForgetUserEvent(user_id=user)
    if kind == "unrate":
        owned = sorted(engine.user_items(user))
        return UnrateEvent(user_id=user, item_id=owned[0]) if owned else None
    if engine.implicit:
        return PurchaseEvent(user_id=user, item_id=item, quantity=value)
    return RatingEvent(user_id=user, item_id=item, rating=value)


@settings(max_examples=60, deadline=None, derandomize=True)
@example(  # knn_baseline's predicted ratings move with a stranger's rating (μ, b_i)
    config={"rank": "vote", "rank_neighbours": 2},
    raws=[("rate", "u0", "i0", 1.0), ("rate", "u0", "i2", 1.0), ("rate", "u2", "i0", 1.0),
          ("rate", "u1", "i1", 3.0)],
    sizes=[1],
)  # fmt: skip
@example(  # a batch that forgets users: they no longer count as covered, u5's new co-raters are
    # looked up (u0 gains u5 as a neighbour through i1)
    config={"rank": "vote", "feedback": "implicit"},
    raws=[("rate", "u0", "i1", 5.0), ("rate", "u7", "i1", 5.0), ("rate", "u7", "i4", 5.0),
          ("rate", "u5", "i2", 5.0), ("rate", "u2", "i3", 5.0), ("rate", "u8", "i5", 5.0),
          ("forget", "u2", "i0", 1.0), ("forget", "u8", "i0", 1.0), ("rate", "u5", "i1", 5.0)],
    sizes=[6, 3],
)  # fmt: skip
@given(
    config=st.sampled_from(RANKINGS),
    raws=st.lists(event_strategy, max_size=40),
    sizes=st.lists(st.integers(1, 6), min_size=1, max_size=8),
)
def test_neighbours_policy_leaves_no_list_stale(
    config: dict[str, Any], raws: list[tuple[str, str, str, float]], sizes: list[int]
) -> None:
    """After every batch and a full drain, every user's last computed list is the list of the
    current state, for every ranking mode (the ``shown`` index and the take-back rule included)."""
    engine = UserKNN(**config)
    tracker = ListTracker(policy="neighbours", n=3)
    pos = 0
    step = 0
    while pos < len(raws):
        size = sizes[step % len(sizes)]
        step += 1
        batch = []
        shadow = UserKNN.load(_saved(engine))
        for raw in raws[pos : pos + size]:
            event = _event(raw, shadow)
            if event is not None:
                shadow.apply(event)
                batch.append(event)
        pos += size
        before = tracker.before_batch(engine, batch)
        effect = engine.apply_many(batch)
        tracker.recompute(engine, tracker.after_batch(engine, effect, before))
        tracker.drain(engine, budget=60.0)
        assert not tracker.pending
        users = engine.users()
        lists = engine.recommend_many(users, 3)
        for user in users:
            recs = lists[user]
            ratings = None
            if not engine.implicit and recs.items:
                ratings = engine.predict_many(user, [item for item, _ in recs.items])
            digest = list_digest(recs.items, recs.fallback, ratings)
            assert tracker.digests.get(user) == digest, f"{user}'s list is stale after {batch}"


def _saved(engine: UserKNN) -> io.BytesIO:
    buffer = io.BytesIO()
    engine.save(buffer)
    buffer.seek(0)
    return buffer


def test_a_new_rater_raises_an_item_for_strangers_when_damping_is_negative() -> None:
    """With rank_damping < 0 a score grows with the item's raters: z, who shares nothing with u,
    buys y, and y overtakes x in u's list (u's neighbour v has both); u is owed a refresh."""
    engine = UserKNN(feedback="implicit", rank_damping=-0.5)
    tracker = ListTracker(policy="neighbours", n=1)
    history: list[Event] = [
        PurchaseEvent(user_id=user, item_id=item)
        for user, item in [("v", "a"), ("v", "x"), ("v", "y"), ("u", "a"), ("z", "q")]
    ]
    tracker.recompute(
        engine, tracker.after_batch(engine, engine.apply_many(history), BeforeBatch(set(), set()))
    )
    tracker.recompute(engine, sorted(engine.users()))
    assert [item for item, _ in engine.recommend("u", 1)] == ["x"]  # a tie: first appearance
    batch: list[Event] = [PurchaseEvent(user_id="z", item_id="y")]
    before = tracker.before_batch(engine, batch)
    effect = engine.apply_many(batch)
    tracker.recompute(engine, tracker.after_batch(engine, effect, before))
    assert [item for item, _ in engine.recommend("u", 1)] == ["y"]
    assert "u" in tracker.pending
