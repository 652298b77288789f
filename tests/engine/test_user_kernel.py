"""The compiled user-neighbour terms of knn_baseline give the numpy path's bits.

``user_kernel.user_terms`` (the one-column case of ``user_terms_many`` in
stream_cf/engine/_item_kernel.c; several columns: test_user_kernel_many.py) must return the
figures ``predict.baseline_predict`` computes on its numpy path (:func:`numpy_terms` below: the
same calls, neighbours_of, Baseline.users and the residual sums) to the last bit (compared as
bytes, so that even 0.0 and -0.0 differ), after every event of random sequences with take-backs,
for every user and every item, under several configurations (k small enough for ties at the
k-th neighbour, every min_similarity rule, shrinkage on and off, min_support, λ_u 0), on a
catalogue wide enough for the sorted read of a user's items, and on MovieLens 100K; predictions
through the model must be equal with the kernel and without it. With ``CI=true`` in the
environment the kernel must be there.
"""

from __future__ import annotations

import os
import random
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_cf.datasets import dataset_available, dataset_events
from stream_cf.engine import UserKNN, user_kernel
from stream_cf.engine.predict import neighbours_of, read_baseline, sequential_sum
from stream_cf.events import RatingEvent
from tests.engine.strategies import apply_op, tie_prone_streams
from tests.engine.test_item_residual import ITEMS, USERS, VALUES

needs_kernel = pytest.mark.skipif(
    user_kernel.KERNEL is None, reason="the kernel is not built (no C compiler?)"
)


events = tie_prone_streams(USERS, ITEMS, VALUES)
# k small enough for ties at the k-th neighbour, every min_similarity rule, shrinkage on and off
CONFIG_CHOICES: dict[str, st.SearchStrategy[Any]] = {
    "k": st.sampled_from([1, 2, 3, 40]),
    "min_similarity": st.sampled_from([0.0, None, -0.5, 0.2]),
    "shrinkage": st.sampled_from([0.0, 2.5, 100.0]),
    "min_support": st.sampled_from([1, 2]),
    "baseline_reg_users": st.sampled_from([5.0, 0.0]),
}
configs = st.fixed_dictionaries(CONFIG_CHOICES)


def numpy_terms(model: UserKNN, u: int, i: int) -> tuple[float, float, int, float]:
    """(num, den, |N(i;u)|, b_u) as baseline_predict's numpy path computes them."""
    state, cfg = model.state, model.settings
    base = read_baseline(state, cfg)
    slots, w, r = neighbours_of(state, cfg, u, i)
    biases = base.users(state, np.concatenate(([u], slots)), distinct=True)
    dev = base.mu + biases[1:]
    dev += float(base.items[i])
    np.subtract(r, dev, out=dev)
    dev *= w
    num = sequential_sum(dev.tolist())
    den = sequential_sum([abs(weight) for weight in w.tolist()])
    return num, den, int(slots.size), float(biases[0])


def as_bytes(terms: tuple[float, float, int, float]) -> bytes:
    num, den, count, b_u = terms
    return struct.pack("<ddqd", num, den, count, b_u)


def assert_same_terms(model: UserKNN) -> int:
    """Every user against every item with raters: the kernel == the numpy path, byte for byte
    (a fresh read of the baseline for each, so no b_u is carried from one to the other).
    Returns how many pairs were compared."""
    state, cfg = model.state, model.settings
    compared = 0
    for user in model.users():
        u = state.users.slot_of[user]
        for i in np.flatnonzero(state.item_count[: state.items.high] > 0).tolist():
            state.memo.clear()
            base = read_baseline(state, cfg)
            compiled = user_kernel.user_terms(state, cfg, base, u, i)
            assert compiled is not None
            state.memo.clear()
            reference = numpy_terms(model, u, i)
            assert as_bytes(compiled) == as_bytes(reference), (user, i, compiled, reference)
            compared += 1
    return compared


def test_the_kernel_is_built_in_ci() -> None:
    if os.environ.get("CI", "").lower() != "true":
        pytest.skip("only required where CI=true")
    assert user_kernel.KERNEL is not None, "stream_cf.engine._item_kernel has no user_terms"


@needs_kernel
@settings(max_examples=80, deadline=None)
@given(raws=events, config=configs)
def test_kernel_equals_numpy_after_every_event(
    raws: list[tuple[Any, ...]], config: dict[str, Any]
) -> None:
    model = UserKNN(item_residual=0, **config)
    compared = 0
    for raw in raws:
        apply_op(model, raw)
        compared += assert_same_terms(model)
    assert compared > 0 or not model.users()


def uniform_events(seed: int) -> list[tuple[Any, ...]]:
    """40 events drawn uniformly (hypothesis favours the first users, items and values, so its
    lists above seldom tie several raters at the k-th neighbour): ratings of 1 or 5 by 7 users
    of 4 items (many equal w, re-rated ones among them), some take-backs."""
    rnd = random.Random(seed)
    users, items = USERS[:7], ITEMS[:4]
    out: list[tuple[Any, ...]] = []
    for _ in range(40):
        kind = rnd.random()
        if kind < 0.85:
            out.append(("rate", rnd.choice(users), rnd.choice(items), rnd.choice([1.0, 5.0])))
        elif kind < 0.95:
            out.append(("unrate", rnd.choice(users), rnd.choice(items)))
        else:
            out.append(("forget", rnd.choice(users)))
    return out


@needs_kernel
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), config=configs)
def test_kernel_equals_numpy_after_every_event_of_uniform_draws(
    seed: int, config: dict[str, Any]
) -> None:
    model = UserKNN(item_residual=0, **config)
    for raw in uniform_events(seed):
        apply_op(model, raw)
        assert_same_terms(model)


@needs_kernel
@settings(max_examples=40, deadline=None)
@given(raws=events, config=configs, k_items=st.sampled_from([0, 2]))
def test_predictions_equal_with_and_without_the_kernel(
    raws: list[tuple[Any, ...]], config: dict[str, Any], k_items: int
) -> None:
    """predict (kernel) == predict (numpy path) == explain's estimate, after every event,
    with and without the item residual, unknown users and items included."""
    model = UserKNN(item_residual=k_items, **config)
    for raw in raws:
        apply_op(model, raw)
        for user in [*USERS, "nobody"]:
            for item in [*ITEMS, "unknown"]:
                compiled = model.predict(user, item)
                with pytest.MonkeyPatch.context() as patch:
                    patch.setattr(user_kernel, "KERNEL", None)
                    model.state.memo.clear()
                    reference = model.predict(user, item)
                assert struct.pack("<d", compiled) == struct.pack("<d", reference), (user, item)
                assert model.explain(user, item).estimate == compiled


@needs_kernel
def test_users_with_few_items_of_a_wide_catalogue() -> None:
    """A catalogue of 6,000 items: the b_u of a user with a few items is summed through a sort
    (the bitmap over the item slots would have too many words), the others through the
    bitmap; both equal the numpy path."""
    model = UserKNN(item_residual=0, k=3)
    for j in range(6000):
        model.rate("wide", f"w{j}", VALUES[j % len(VALUES)])
    for n in range(12):
        for j in range(n, 6000, 997 + n):
            model.rate(f"few{n}", f"w{j}", VALUES[(j + n) % len(VALUES)])
    state = model.state
    assert (state.items.high + 63) // 64 > 4 * int(state.ratings.user_count[:13].min()) + 64
    for user in ("few0", "few5", "wide"):
        u = state.users.slot_of[user]
        for i in (0, 997, 1994, 5999):
            state.memo.clear()
            base = read_baseline(state, model.settings)
            compiled = user_kernel.user_terms(state, model.settings, base, u, i)
            assert compiled is not None
            state.memo.clear()
            assert as_bytes(compiled) == as_bytes(numpy_terms(model, u, i)), (user, i)


@needs_kernel
def test_no_kernel_where_the_numpy_path_reads_other_data() -> None:
    """Another similarity, implicit feedback, or no pair sums: None (the numpy path answers)."""
    for config in ({"similarity": "pearson"}, {"pair_sums": False}):
        model = UserKNN(**config)
        model.rate("a", "x", 4.0)
        model.rate("b", "x", 3.0)
        state = model.state
        base = read_baseline(state, model.settings)
        assert user_kernel.user_terms(state, model.settings, base, 0, 0) is None, config


@needs_kernel
@pytest.mark.skipif(not dataset_available("ml-100k"), reason="ml-100k is not installed")
def test_kernel_equals_numpy_on_movielens() -> None:
    """The first 30,000 ratings of ML-100K (943 users: two tiles of pair cells), the event's
    own (user, item) compared before it is learnt, every 3rd event."""
    model = UserKNN()
    state, cfg = model.state, model.settings
    compared = 0
    for n, event in enumerate(dataset_events("ml-100k")[:30000]):
        assert isinstance(event, RatingEvent)
        u = state.users.slot_of.get(event.user_id)
        i = state.items.slot_of.get(event.item_id)
        if n % 3 == 0 and u is not None and i is not None and state.item_count[i] > 0:
            base = read_baseline(state, cfg)
            compiled = user_kernel.user_terms(state, cfg, base, u, i)
            assert compiled is not None
            state.memo.clear()
            assert as_bytes(compiled) == as_bytes(numpy_terms(model, u, i)), n
            compared += 1
        model.apply(event)
    assert compared > 8000
