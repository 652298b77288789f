"""The compiled choice of N(i;u) for a few wanted items gives the numpy path's pairs.

``select_kernel.select_columns`` (stream_cf/engine/_select_kernel.c) must return, for any
neighbourhood and any distinct wanted item slots, exactly what :func:`knn.select` returns on its
numpy path (the wanted items' rows, and the neighbours' rows): the same (position, column, item,
rating) arrays, compared as bytes, after every event of random sequences with take-backs and
forgotten users, with k small enough that runs of equal similarities straddle the k-th place
(settled by the earlier rating of the item), every similarity; and ``predict_many`` through the
model gives the same bits with the kernel and without it, on random states and on MovieLens 100K.
With ``CI=true`` in the environment the kernel must be there.
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
from stream_cf.engine import UserKNN, knn, select_kernel
from stream_cf.engine.neighbours import neighbourhood_of
from tests.engine.strategies import apply_op, tie_prone_streams
from tests.engine.test_item_residual import ITEMS, USERS, VALUES

needs_kernel = pytest.mark.skipif(
    select_kernel.KERNEL is None, reason="the kernel is not built (no C compiler?)"
)

events = tie_prone_streams(USERS, ITEMS, VALUES)
configs = st.fixed_dictionaries(
    {
        "k": st.sampled_from([1, 2, 3, 40]),
        "similarity": st.sampled_from(["pearson", "cosine", "msd", "adjusted_cosine"]),
        "predictor": st.sampled_from(["knn_means", "knn_baseline"]),
        "min_similarity": st.sampled_from([0.0, None, -0.5]),
    }
)


@contextmanager
def numpy_path() -> Iterator[None]:
    """knn.select without the kernel (its reference)."""
    kernel, select_kernel.KERNEL = select_kernel.KERNEL, None
    try:
        yield
    finally:
        select_kernel.KERNEL = kernel


def as_bytes(picked: knn.Picked) -> tuple[bytes, ...]:
    arrays = (picked.rows, picked.colpos, picked.items, picked.values)
    return (*(np.ascontiguousarray(a).tobytes() for a in arrays), bytes([picked.n_cols]))


@needs_kernel
@settings(max_examples=60, deadline=None)
@given(ops=events, config=configs, seed=st.integers(0, 2**16))
def test_the_kernel_picks_the_numpy_pairs_after_every_event(
    ops: list[tuple[Any, ...]], config: dict[str, Any], seed: int
) -> None:
    model = UserKNN(item_residual=0, **config)
    state, cfg = model.state, model.settings
    rng = random.Random(seed)
    for op in ops:
        apply_op(model, op)
        known = [i for i in range(state.items.high) if state.item_count[i] > 0]
        for u in state.users.slot_of.values():
            if not known:
                break
            nb = neighbourhood_of(state, cfg, u)
            cols = np.array(rng.sample(known, rng.randint(1, len(known))), dtype=np.int64)
            got = knn.select(state, nb, cols, cfg.k, source="items")
            with numpy_path():
                by_items = knn.select(state, nb, cols, cfg.k, source="items")
                by_users = knn.select(state, nb, cols, cfg.k, source="users")
            assert as_bytes(got) == as_bytes(by_items) == as_bytes(by_users), (u, cols.tolist())


@needs_kernel
@settings(max_examples=40, deadline=None)
@given(ops=events, config=configs)
def test_predict_many_is_the_same_with_and_without_the_kernel(
    ops: list[tuple[Any, ...]], config: dict[str, Any]
) -> None:
    model = UserKNN(**config)
    for op in ops:
        apply_op(model, op)
    items = model.items()
    for user in model.users():
        wanted = [*items[::2], "unknown"]
        got = model.predict_many(user, wanted)
        with numpy_path():
            expected = model.predict_many(user, wanted)
        assert np.array(got).tobytes() == np.array(expected).tobytes(), user


@needs_kernel
@pytest.mark.skipif(not dataset_available("ml-100k"), reason="MovieLens 100K is not installed")
def test_movielens_lists_ratings_are_the_same_with_and_without_the_kernel() -> None:
    model = UserKNN(predictor="knn_means")  # the processor's predictor
    model.apply_many(dataset_events("ml-100k"))
    users = model.users()[::25]
    for user in users:
        wanted = [item for item, _ in model.recommend(user, 10)]
        got = model.predict_many(user, wanted)
        with numpy_path():
            expected = model.predict_many(user, wanted)
        assert np.array(got).tobytes() == np.array(expected).tobytes(), user


def test_the_kernel_is_built_where_ci_says_so() -> None:
    """CI builds the package with `make install`: the extension must be there (a silent
    fallback to numpy would hide a broken build)."""
    if os.environ.get("CI", "").lower() != "true":
        pytest.skip("only required where CI=true")
    assert select_kernel.KERNEL is not None
