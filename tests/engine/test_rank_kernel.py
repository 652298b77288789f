"""The `vote` list's compiled kernel gives the numpy path's lists, scores to the last bit.

``ranking.ranked`` takes ``ranking.vote_compiled`` (stream_cf/engine/_rank_kernel.c) when the
extension is built, else the numpy functions (``vote_neighbours``, ``vote_scores``: the
reference, and the fallback). Here both are run on the same state after every event of random
streams (rate, re-rate, unrate, forget_user, purchases; explicit and implicit; every neighbour
recency, rarity, exponent, damping, K, include_seen, list length) and after micro-batches (whose
rows leave the order of their events: the kernel's radix sort), and on MovieLens 100K: the same
items in the same order and the scores equal as bytes (0.0 and -0.0 differ). With ``CI=true`` in
the environment the extension must be there.
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream_cf.datasets import dataset_available, dataset_events
from stream_cf.engine import UserKNN, rank_kernel, ranking
from stream_cf.engine.config import RankConfig
from stream_cf.events import PurchaseEvent, RatingEvent

from .test_oracle import SETTINGS, apply_direct, as_event
from .test_ranking import events, rank_config, stream_for

needs_kernel = pytest.mark.skipif(
    rank_kernel.KERNEL is None, reason="the rank kernel is not built (no C compiler?)"
)

vote_config = rank_config.map(lambda config: {**config, "rank": "vote"})


def numpy_list(model: UserKNN, u: int, cfg: RankConfig, n: int) -> Any:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rank_kernel, "KERNEL", None)
        return ranking.ranked(model.state, cfg, u, n)


def assert_same_lists(model: UserKNN, cfg: RankConfig | None = None, users: Any = None) -> int:
    """Every user's list (n 0, 1, 3, 10) through the kernel == through numpy, bytes for the
    scores; returns the number of non-empty lists compared."""
    cfg = cfg or model.settings.ranking
    state = model.state
    compared = 0
    for user in users if users is not None else model.users():
        u = state.users.slot_of[user]
        for n in (0, 1, 3, 10):
            got = ranking.ranked(state, cfg, u, n)
            want = numpy_list(model, u, cfg, n)
            if want is None:
                assert got is None, (user, n, got)
                continue
            assert got is not None, (user, n, want)
            assert [i for i, _ in got] == [i for i, _ in want], (user, n, got, want)
            got_bytes = np.array([s for _, s in got], dtype=np.float64).tobytes()
            want_bytes = np.array([s for _, s in want], dtype=np.float64).tobytes()
            assert got_bytes == want_bytes, (user, n, got, want)
            compared += n > 0 and len(want) > 0
    return compared


def test_the_kernel_is_built_in_ci() -> None:
    """CI builds the package with `make install`: the extension must be there (a silent
    fallback to numpy would pass every other test, slower)."""
    if os.environ.get("CI", "").lower() != "true":
        pytest.skip("only required where CI=true")
    assert rank_kernel.KERNEL is not None, "stream_cf.engine._rank_kernel was not built"


@needs_kernel
@SETTINGS
@given(config=vote_config, raws=events)
def test_kernel_lists_equal_numpy_after_every_event(
    config: dict[str, Any], raws: list[tuple[Any, ...]]
) -> None:
    model = UserKNN(**config)
    assert model.settings.ranking.mode == "vote"
    for ev in stream_for(config, raws):
        apply_direct(model, ev)
        assert_same_lists(model)


@needs_kernel
@SETTINGS
@given(config=vote_config, raws=events, size=st.integers(2, 9))
def test_kernel_lists_equal_numpy_after_micro_batches(
    config: dict[str, Any], raws: list[tuple[Any, ...]], size: int
) -> None:
    """Batches write a user's new cells in their own order, not the events': the rows are
    sorted by sequence number at each read (the kernel's radix sort of the neighbours' rows)."""
    model = UserKNN(**config)
    stream = stream_for(config, raws)
    for lo in range(0, len(stream), size):
        model.apply_many(as_event(ev) for ev in stream[lo : lo + size])
        assert_same_lists(model)


@needs_kernel
@pytest.mark.parametrize("recency", ["none", "latest", "shared"])
@pytest.mark.parametrize("feedback", ["explicit", "implicit"])
def test_long_histories_and_popular_items_grow_the_tables(recency: str, feedback: str) -> None:
    """More positions than the latest table's first 64 entries and more raters than the
    damping table's (the staple, listed: include_seen): both grow (the kernel asks again) and
    the lists stay numpy's."""
    model = UserKNN(
        feedback=feedback, rank_neighbour_recency=recency, rank_damping=0.2, rank_neighbours=7,
        include_seen=True,
    )  # fmt: skip
    rng = random.Random(7)
    crowd = [f"c{n}" for n in range(90)]
    items = [f"i{n}" for n in range(150)]
    batch: list[Any] = []
    for user in crowd:  # every user has the staple, and a long history
        for item in ["staple", *rng.sample(items, rng.randint(1, 100))]:
            if feedback == "explicit":
                batch.append(RatingEvent(user_id=user, item_id=item, rating=rng.choice([1.0, 4.5])))
            else:
                batch.append(PurchaseEvent(user_id=user, item_id=item))
    rng.shuffle(batch)  # rows far out of the order of their events
    model.apply_many(batch)
    ranking._LATEST.__init__()  # type: ignore[misc]
    ranking._DAMP.__init__()  # type: ignore[misc]
    assert max(model.state.ratings.by_user.length) > 64
    assert max(model.state.ratings.item_count) > 64
    assert assert_same_lists(model, users=crowd[:30]) > 0
    assert ranking._LATEST.values.size > 64 or recency != "latest"
    assert ranking._DAMP.values.size > 64


@needs_kernel
def test_a_bad_slot_raises_and_leaves_the_scratch_clear() -> None:
    model = UserKNN(rank_neighbours=2)
    for user, items in {"a": "xyz", "b": "xyw", "c": "yzw"}.items():
        for item in items:
            model.rate(user, item, 4.0)
    state = model.state
    kernel = rank_kernel.KERNEL
    assert kernel is not None
    before = assert_same_lists(model)
    bad = np.array([0, 10**9], dtype=np.int64)
    with pytest.raises(ValueError, match="out of range"):
        rank_kernel.neighbours(kernel, state, 0, items=bad, x=np.ones(2), k=2)
    with pytest.raises(ValueError, match="out of range"):
        rank_kernel.shared_cost(
            kernel, state, slots=np.array([0, 1], dtype=np.int64), mine=bad, half_life=5.0,
            neighbour_half_life=5.0, skip_mine=True,
        )  # fmt: skip
    assert assert_same_lists(model) == before > 0


@needs_kernel
@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(not dataset_available("ml-100k"), reason="ml-100k is not installed")
def test_kernel_equals_numpy_on_ml100k() -> None:
    """One apply_many of 30,000 ratings: rows out of the order of their events, long histories,
    hundreds of raters per item."""
    model = UserKNN()
    model.apply_many(dataset_events("ml-100k", limit=30_000))
    users = random.Random(5).sample(model.users(), 25)
    for cfg in [
        RankConfig(),
        RankConfig(neighbour_recency="latest", rarity=1.0, exponent=1.5),
        RankConfig(neighbour_recency="none", damping=-0.5, include_seen=True),
        RankConfig(neighbours=400, half_life=0.5, neighbour_half_life=50.0),
    ]:
        assert assert_same_lists(model, cfg, users) > 0


@needs_kernel
@pytest.mark.parametrize("recency", ["none", "latest", "shared"])
def test_many_user_slots_and_few_raters_walk_the_entries(recency: str) -> None:
    """With many user slots and few rater entries (entries · 8 < user slots) the kernel reads
    the totals back along the entries, not by a scan of every slot: the same lists."""
    model = UserKNN(rank_neighbour_recency=recency, rank_neighbours=3, min_k=1)
    rng = random.Random(4)
    crowd = [f"c{n}" for n in range(2_000)]
    model.apply_many(
        [RatingEvent(user_id=user, item_id=f"own-{user}", rating=3.0) for user in crowd]
    )
    raters = rng.sample(crowd, 12)  # high and low slots
    for user in raters:
        for item in rng.sample("abcdefgh", 4):
            model.rate(user, item, rng.choice([1.0, 3.5, 5.0]))
    model.rate("me", "a", 4.0)
    model.rate("me", "b", 2.5)
    entries = int(
        model.state.ratings.item_count[[model.state.items.slot_of[i] for i in "ab"]].sum()
    )
    assert entries * 8 < model.state.users.high  # the kernel's rule for the walk
    assert assert_same_lists(model, users=["me", *raters]) > 0
