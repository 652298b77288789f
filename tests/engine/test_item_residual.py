"""The item-based residual's two ways of summing s_ij give the same bits.

A predict (one wanted item) scans from the item's side (the rows of its raters against a dense
position array of the user's items); predict_many and the ``rating`` lists (several items) join
the raters of the user's items with the raters of the wanted items. Both sum each s_ij over the
common raters in ascending slot order, so they must agree exactly (==), not within a tolerance:
here on random half-step ratings with take-backs, and on MovieLens 100K. The position array,
reused from read to read, is left clear after every read.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_cf.datasets import dataset_available, dataset_events
from stream_cf.engine import UserKNN, item_residual
from tests.engine.strategies import apply_op, op_lists

USERS = [f"u{n}" for n in range(8)]
ITEMS = [f"i{n}" for n in range(8)]
VALUES = [1.0 + 0.5 * n for n in range(9)]

events = op_lists(USERS, ITEMS, VALUES, min_size=1, max_size=60)


def fed(config: dict[str, Any], raws: list[tuple[Any, ...]]) -> UserKNN:
    model = UserKNN(**config)
    for raw in raws:
        apply_op(model, raw)
    return model


def assert_positions_clear() -> None:
    assert np.all(item_residual._POSITIONS.pos == -1)


@settings(max_examples=60, deadline=None)
@given(raws=events, shrinkage=st.sampled_from([0.0, 2.5, 100.0]))
def test_one_column_equals_the_join_bit_for_bit(
    raws: list[tuple[Any, ...]], shrinkage: float
) -> None:
    """s_ij of each item alone (the predict path) == its row of all items at once (the join),
    for every user, including items the user rated (s_ii stays 0)."""
    model = fed({"item_residual": 3}, raws)
    state = model.state
    every = np.array(
        [state.items.slot_of[i] for i in ITEMS if i in state.items.slot_of], dtype=np.int64
    )
    for user in model.users():
        u = state.users.slot_of[user]
        mine = state.ratings.cell_item.take(state.ratings.by_user.row(u)).astype(np.int64)
        if every.size < 2:
            continue
        joined = item_residual.similarities(state, u, every, mine, shrinkage)
        for row, i in enumerate(every.tolist()):
            alone = item_residual.similarities(
                state, u, np.array([i], dtype=np.int64), mine, shrinkage
            )
            assert np.array_equal(alone[0], joined[row]), (user, i)
            assert_positions_clear()


@settings(max_examples=40, deadline=None)
@given(raws=events, k=st.sampled_from([1, 2, 5]))
def test_predict_equals_predict_many_and_explain_bit_for_bit(
    raws: list[tuple[Any, ...]], k: int
) -> None:
    model = fed({"item_residual": k, "item_shrinkage": 2.5, "min_k": 1}, raws)
    items = [*ITEMS, "unknown"]
    for user in [*USERS, "nobody"]:
        many = model.predict_many(user, items)
        for item, value in zip(items, many, strict=True):
            assert model.predict(user, item) == value, (user, item)
            assert model.explain(user, item).estimate == value, (user, item)
    assert_positions_clear()


def test_the_position_array_grows_with_the_items_and_stays_clear() -> None:
    model = UserKNN(item_residual=2, min_k=1)
    for n in range(3):
        model.rate("a", f"x{n}", 1.0 + n)
        model.rate("b", f"x{n}", 2.0 + n)
    model.rate("a", "y", 4.0)
    model.predict("b", "y")
    before = item_residual._POSITIONS.pos.size
    assert before >= model.state.items.high
    for n in range(before + 5):  # more item slots than the array holds
        model.rate("c", f"z{n}", 3.0)
    model.rate("b", f"z{before}", 5.0)
    model.rate("a", f"z{before}", 4.0)
    model.predict("a", "x0")
    model.predict("c", "y")
    assert item_residual._POSITIONS.pos.size >= model.state.items.high > before
    assert_positions_clear()


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(not dataset_available("ml-100k"), reason="ml-100k is not installed")
def test_predict_equals_predict_many_on_ml100k_bit_for_bit() -> None:
    events = dataset_events("ml-100k", limit=30_000)
    model = UserKNN(item_residual=40)
    model.apply_many(events)
    rng = random.Random(12)
    items = model.items()
    for user in rng.sample(model.users(), 25):
        wanted = rng.sample(items, 10)
        many = model.predict_many(user, wanted)
        for item, value in zip(wanted, many, strict=True):
            assert model.predict(user, item) == value, (user, item)
    assert_positions_clear()


@pytest.mark.default_residual
def test_knn_baseline_pools_forty_item_neighbours_by_default() -> None:
    """The default: knn_baseline with an item residual of K = 40 (BENCHMARKS.md, Predictors);
    knn_means, implicit feedback and an explicit 0 have none."""
    assert UserKNN().config()["item_residual"] == 40
    assert UserKNN(predictor="knn_means").config()["item_residual"] == 0
    assert UserKNN(feedback="implicit").config()["item_residual"] == 0
    assert UserKNN(item_residual=0).config()["item_residual"] == 0
