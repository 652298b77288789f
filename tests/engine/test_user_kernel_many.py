"""The compiled user-neighbour terms of several items give the numpy path's bits.

``user_kernel.user_terms_many`` (``user_terms_many`` in stream_cf/engine/_item_kernel.c) reads
N(i;u) of several wanted items in one call, sharing w_uv, b_v and b_u between the columns. It
must return what :func:`stream_cf.engine.predict.user_columns` computes on its numpy path
(neighbourhood_of, knn.select, Baseline.users, baseline.residual_sums) to the last bit (compared
as bytes, so that even 0.0 and -0.0 differ), and ``predict_many`` through it must equal
``predict_many`` on the numpy path and ``predict`` item by item (kernel and numpy), after every
event of random sequences (rate, re-rate, unrate, forget_user), under several configurations
(k small enough for ties at the k-th neighbour, every min_similarity rule, shrinkage on and off,
min_support, λ_u 0, with and without the item residual), and on MovieLens 100K. With
``CI=true`` in the environment the kernel must be there: these tests fail instead of skipping.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_cf.datasets import dataset_available, dataset_events
from stream_cf.engine import UserKNN, user_kernel
from stream_cf.engine.predict import read_baseline, user_columns
from tests.engine.strategies import apply_op, tie_prone_streams
from tests.engine.test_item_residual import ITEMS, USERS, VALUES
from tests.engine.test_user_kernel import CONFIG_CHOICES, uniform_events


@pytest.fixture(autouse=True)
def kernel() -> None:
    """Skip without the kernel, but fail where CI=true (a build that fell back to numpy)."""
    if user_kernel.KERNEL is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("stream_cf.engine._item_kernel has no user_terms_many (CI=true)")
        pytest.skip("the kernel is not built (no C compiler?)")


events = tie_prone_streams(USERS, ITEMS, VALUES)
configs = st.fixed_dictionaries({**CONFIG_CHOICES, "item_residual": st.sampled_from([0, 2])})


@contextmanager
def without_kernel() -> Iterator[None]:
    """A context in which the kernel is absent (the numpy path answers)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(user_kernel, "KERNEL", None)
        yield


def terms_bytes(terms: tuple[np.ndarray, np.ndarray, np.ndarray, float]) -> tuple[bytes, ...]:
    num, den, count, b_u = terms
    assert num.dtype == den.dtype == np.float64 and count.dtype == np.int64
    return (
        np.ascontiguousarray(num).tobytes(),
        np.ascontiguousarray(den).tobytes(),
        np.ascontiguousarray(count).tobytes(),
        np.float64(b_u).tobytes(),
    )


def assert_same_columns(model: UserKNN, u: int, cols: np.ndarray) -> None:
    """user_terms_many == user_columns' numpy path, byte for byte, each from a fresh read of the
    baseline (no b_v carried from one to the other)."""
    state, cfg = model.state, model.settings
    state.memo.clear()
    compiled = user_kernel.user_terms_many(state, cfg, read_baseline(state, cfg), u, cols)
    assert compiled is not None
    state.memo.clear()
    with without_kernel():
        reference = user_columns(state, cfg, read_baseline(state, cfg), u, cols)
    assert terms_bytes(compiled) == terms_bytes(reference), (u, cols.tolist())


def assert_same_predictions(model: UserKNN, wanted: list[str]) -> None:
    """For every user (and an unknown one): predict_many through the kernel == predict_many on
    the numpy path == predict item by item, with and without the kernel (as bytes)."""
    state = model.state
    for user in [*model.users(), "nobody"]:
        state.memo.clear()
        many = np.array(model.predict_many(user, wanted))
        with without_kernel():
            state.memo.clear()
            numpy_many = np.array(model.predict_many(user, wanted))
            numpy_one = np.array([model.predict(user, item) for item in wanted])
        state.memo.clear()
        one = np.array([model.predict(user, item) for item in wanted])
        assert many.tobytes() == numpy_many.tobytes(), (user, many, numpy_many)
        assert many.tobytes() == numpy_one.tobytes(), (user, many, numpy_one)
        assert many.tobytes() == one.tobytes(), (user, many, one)


def check(model: UserKNN, rnd: random.Random) -> None:
    """Every user against every known item at once and a random few; predictions of every item
    (unknown ones and repeats included) and of a random list."""
    state = model.state
    known = np.flatnonzero(state.item_count[: state.items.high] > 0).astype(np.int64)
    for user in model.users():
        u = state.users.slot_of[user]
        assert_same_columns(model, u, known)
        if known.size:
            few = np.sort(rnd.sample(known.tolist(), rnd.randint(1, known.size)))
            assert_same_columns(model, u, np.array(few, dtype=np.int64))
    assert_same_predictions(model, [*ITEMS, "unknown", ITEMS[0]])
    assert_same_predictions(model, rnd.sample(ITEMS, 3))


@settings(max_examples=80, deadline=None)
@given(raws=events, config=configs, seed=st.integers(0, 2**32 - 1))
def test_many_equals_numpy_and_predict_after_every_event(
    raws: list[tuple[Any, ...]], config: dict[str, Any], seed: int
) -> None:
    model = UserKNN(**config)
    rnd = random.Random(seed)
    for raw in raws:
        apply_op(model, raw)
        check(model, rnd)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), config=configs)
def test_many_equals_numpy_after_every_event_of_uniform_draws(
    seed: int, config: dict[str, Any]
) -> None:
    """Many raters with equal w (ratings of 1 or 5 by 7 users of 4 items): ties at the k-th
    neighbour, settled by the earlier rating."""
    model = UserKNN(**config)
    rnd = random.Random(seed)
    for raw in uniform_events(seed):
        apply_op(model, raw)
        check(model, rnd)


def test_the_kernel_answers_where_it_applies() -> None:
    """user_columns takes the kernel for explicit adjusted_cosine with int32 pair cells (the
    comparisons above are then kernel against numpy), and None elsewhere."""
    model = UserKNN(k=2)
    for user, item, value in [("a", "x", 4.0), ("b", "x", 3.0), ("a", "y", 2.0), ("b", "y", 5.0)]:
        model.rate(user, item, value)
    state, cfg = model.state, model.settings
    cols = np.array([0, 1], dtype=np.int64)
    assert user_kernel.user_terms_many(state, cfg, read_baseline(state, cfg), 0, cols) is not None
    for config in ({"similarity": "pearson"}, {"pair_sums": False}):
        other = UserKNN(**config)
        other.rate("a", "x", 4.0)
        other.rate("b", "x", 3.0)
        base = read_baseline(other.state, other.settings)
        assert user_kernel.user_terms_many(other.state, other.settings, base, 0, cols[:1]) is None


def test_every_column_of_users_read_unsorted() -> None:
    """One call over every item of a catalogue, k = 40, every user's row of item slots stale
    (re-rated out of order): the room for the users listed unsorted is enough, and the
    terms equal the numpy path's."""
    model = UserKNN(k=40, item_residual=0)
    rnd = random.Random(5)
    users = [f"v{n}" for n in range(60)]
    items = [f"j{n}" for n in range(50)]
    for _ in range(1500):
        model.rate(rnd.choice(users), rnd.choice(items), rnd.choice(VALUES))
    state = model.state
    for user in users[:10]:
        if not model.has_user(user):
            continue
        state.ratings.sorted_ok[:] = False
        every = np.flatnonzero(state.item_count[: state.items.high] > 0).astype(np.int64)
        assert_same_columns(model, state.users.slot_of[user], every)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(not dataset_available("ml-100k"), reason="ml-100k is not installed")
def test_many_equals_numpy_on_movielens() -> None:
    """The first 30,000 ratings of ML-100K: 40 users' recommended lists and random lists."""
    model = UserKNN()
    model.apply_many(dataset_events("ml-100k", limit=30_000))
    state = model.state
    rnd = random.Random(3)
    items = model.items()
    for user in rnd.sample(model.users(), 40):
        u = state.users.slot_of[user]
        listed = [item for item, _ in model.recommend(user, 10)]
        for wanted in (listed, rnd.sample(items, 10)):
            cols = np.unique([state.items.slot_of[item] for item in wanted]).astype(np.int64)
            assert_same_columns(model, u, cols)
            state.memo.clear()
            many = np.array(model.predict_many(user, wanted))
            with without_kernel():
                state.memo.clear()
                numpy_many = np.array(model.predict_many(user, wanted))
            assert many.tobytes() == numpy_many.tobytes(), user
            state.memo.clear()
            one = np.array([model.predict(user, item) for item in wanted])
            assert many.tobytes() == one.tobytes(), user
