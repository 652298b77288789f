"""The item residual's compiled kernel gives the numpy path's bits.

``item_residual.item_terms_compiled`` (stream_cf/engine/_item_kernel.c) and
``item_residual.item_terms_numpy`` (the reference, and the fallback where the extension is not
built) must return the same terms to the last bit (compared as bytes, so that even 0.0 and -0.0
differ), for one wanted item and for several, on random half-step ratings with take-backs and on
MovieLens 100K; predictions through the model must be equal with the kernel and without it. With
``CI=true`` in the environment the extension must be there: a build that silently fell back to
numpy fails CI instead of passing slower.
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_cf.datasets import dataset_available, dataset_events
from stream_cf.engine import UserKNN, item_kernel, item_residual
from stream_cf.engine.predict import read_baseline
from stream_cf.events import RatingEvent
from tests.engine.strategies import apply_op, op_lists
from tests.engine.test_item_residual import ITEMS, USERS, VALUES, events, fed

needs_kernel = pytest.mark.skipif(
    item_kernel.KERNEL is None, reason="the item kernel is not built (no C compiler?)"
)

FIELDS = ("num", "den", "count", "colpos", "items", "sims", "ratings", "baselines")


def assert_same_terms(model: UserKNN, user: str, cols: np.ndarray, k: int, beta: float) -> None:
    """The kernel's terms == the numpy path's, byte for byte and dtype for dtype."""
    state = model.state
    u = state.users.slot_of[user]
    base = read_baseline(state, model.settings)
    b_u = float(base.users(state, np.array([u], dtype=np.int64))[0])
    kwargs = {
        "neighbours": k,
        "shrinkage": beta,
        "mu": base.mu,
        "user_bias": b_u,
        "item_bias": base.items,
    }
    compiled = item_residual.item_terms_compiled(state, u, cols, **kwargs)
    reference = item_residual.item_terms_numpy(state, u, cols, **kwargs)
    for field in FIELDS:
        got, want = getattr(compiled, field), getattr(reference, field)
        assert got.dtype == want.dtype, (field, got.dtype, want.dtype)
        assert got.shape == want.shape, (field, got, want)
        assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes(), (
            field,
            user,
            cols.tolist(),
            got,
            want,
        )
    assert np.all(item_residual._MARKS.pos == -1)


def test_the_kernel_is_built_in_ci() -> None:
    """CI builds the package on a fresh machine with `make install`: the extension must be
    there (a silent fallback to numpy would pass every other test, slower)."""
    if os.environ.get("CI", "").lower() != "true":
        pytest.skip("only required where CI=true")
    assert item_kernel.KERNEL is not None, "stream_cf.engine._item_kernel was not built"


@needs_kernel
@settings(max_examples=60, deadline=None)
@given(
    raws=events,
    k=st.sampled_from([1, 2, 3, 40]),
    beta=st.sampled_from([0.0, 2.5, 100.0]),
)
def test_kernel_equals_numpy_bit_for_bit(raws: list[tuple[Any, ...]], k: int, beta: float) -> None:
    """Every user against each item alone (a predict) and all items at once (predict_many, the
    `rating` lists), including the items the user rated and items nobody rates any more."""
    model = fed({"item_residual": k}, raws)
    state = model.state
    every = np.arange(state.items.high, dtype=np.int64)
    for user in model.users():
        assert_same_terms(model, user, every, k, beta)
        for i in every.tolist():
            assert_same_terms(model, user, np.array([i], dtype=np.int64), k, beta)


# more items than the kernel reads in one scan (64 wanted columns): all of them take two chunks
WIDE = [f"w{n}" for n in range(72)]


def ratings_of(items: list[str]) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    """Ratings alone: a stream dense enough that items share raters with 3+ items (an s_ij > 0
    needs them; op_lists' short draws seldom have any)."""
    rate = st.tuples(
        st.just("rate"), st.sampled_from(USERS), st.sampled_from(items), st.sampled_from(VALUES)
    )
    return st.lists(rate, min_size=20, max_size=80)


@needs_kernel
@settings(max_examples=30, deadline=None)
@given(
    items=st.sampled_from([ITEMS, WIDE]),
    data=st.data(),
    k=st.sampled_from([1, 3, 40]),
    beta=st.sampled_from([0.0, 2.5]),
)
def test_several_columns_in_one_scan_equal_numpy_after_every_event(
    items: list[str], data: st.DataObject, k: int, beta: float
) -> None:
    """The kernel reads several wanted columns in one scan of u's item rows: after every event
    of a random stream (a user who rated every item, so that every item has a slot and a
    rater; ratings of a few items; then rates, re-rates, take-backs and forgotten users), for
    every user, all item slots in a shuffled order (the user's own items among them, items
    nobody rates any more, and with WIDE more than one chunk of columns) and a shuffled subset
    of them give the numpy path's bits."""
    model = UserKNN(item_residual=k)
    for n, item in enumerate(items):
        model.rate("seed", item, VALUES[n % len(VALUES)])
    raws = data.draw(ratings_of(items[:: len(items) // 8]), label="ratings")
    raws += data.draw(op_lists(USERS, items, VALUES, min_size=1, max_size=40), label="events")
    rng = data.draw(st.randoms(use_true_random=False), label="rng")
    for raw in raws:
        apply_op(model, raw)
        every = list(range(model.state.items.high))
        rng.shuffle(every)
        some = every[: rng.randint(2, 12)]
        for user in model.users():
            for cols in (every, some):
                assert_same_terms(model, user, np.array(cols, dtype=np.int64), k, beta)


@needs_kernel
def test_columns_the_user_rated_alone_or_too_and_items_nobody_else_rated() -> None:
    """Several columns at once: an item only u rated (no common rater: no term), items u rated
    itself (s_ii = 0 left out), an item u did not rate, and an item nobody rates any more."""
    model = UserKNN(item_residual=3, item_shrinkage=0.0, min_k=1)
    table = [[1.0, 2.0, 1.0, 5.0], [2.0, 3.0, 2.0, 4.0], [4.0, 5.0, 5.0, 2.0], [5.0, 4.0, 4.0, 1.0]]
    for user, row in zip(["a", "b", "c", "d"], table, strict=True):
        for item, value in zip(["x", "y", "z", "t"], row, strict=True):
            model.rate(user, item, value)  # x, y, z alike; t against them
    model.rate("e", "gone", 4.0)
    model.unrate("e", "gone")
    model.rate("me", "x", 5.0)
    model.rate("me", "y", 2.0)
    model.rate("me", "solo", 3.5)
    slots = model.state.items.slot_of
    cols = np.array([slots[i] for i in ["solo", "t", "x", "gone", "y", "z"]], dtype=np.int64)
    assert_same_terms(model, "me", cols, 3, 0.0)
    terms = item_residual.item_terms_compiled(
        model.state, model.state.users.slot_of["me"], cols, neighbours=3, shrinkage=0.0,
        mu=0.0, user_bias=0.0, item_bias=np.zeros(model.state.items.high),
    )  # fmt: skip
    assert terms.count[0] == 0 and terms.count[3] == 0  # solo: only u; gone: nobody
    assert terms.count.tolist() == [0, 0, 1, 0, 1, 2]  # t: s < 0; x: y alone (s_xx left out)
    assert terms.items[terms.colpos == 2].tolist() == [slots["y"]]


@needs_kernel
@settings(max_examples=40, deadline=None)
@given(raws=events, k=st.sampled_from([1, 2, 5]))
def test_predictions_equal_with_and_without_the_kernel(raws: list[tuple[Any, ...]], k: int) -> None:
    model = fed({"item_residual": k, "item_shrinkage": 2.5, "min_k": 1}, raws)
    items = [*ITEMS, "unknown"]
    for user in [*USERS, "nobody"]:
        compiled = [model.predict(user, item) for item in items]
        many = model.predict_many(user, items)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(item_kernel, "KERNEL", None)
            numpy_path = [model.predict(user, item) for item in items]
            numpy_many = model.predict_many(user, items)
        assert compiled == numpy_path, user
        assert list(many) == list(numpy_many), user
        assert list(many) == compiled, user


@needs_kernel
def test_ties_are_broken_by_the_first_appearance_of_the_item() -> None:
    """Items of u with equal s_ij: M(u;i) keeps the ones that appeared first in the stream
    (lower item slots), whatever the order u rated them in, and a re-rate does not move them;
    as numpy does."""
    model = UserKNN(item_residual=2, item_shrinkage=0.0, min_k=1)
    for n, user in enumerate(["a", "b", "c"]):
        for item in ["x", "y", "z", "w"]:
            model.rate(user, item, 1.0 + n)  # the same centred column for every item of these
        model.rate(user, "q", 5.0)  # (q moves the means off those ratings)
    model.rate("d", "w", 2.0)
    model.rate("d", "z", 3.0)
    model.rate("d", "y", 4.0)
    x = np.array([model.state.items.slot_of["x"]], dtype=np.int64)
    slots = model.state.items.slot_of

    def chosen() -> list[int]:
        terms = item_residual.item_terms_compiled(
            model.state, model.state.users.slot_of["d"], x, neighbours=2, shrinkage=0.0,
            mu=0.0, user_bias=0.0, item_bias=np.zeros(model.state.items.high),
        )  # fmt: skip
        assert terms.sims[0] == terms.sims[1] > 0.99  # the same sums for y, z and w: a tie
        out: list[int] = terms.items.tolist()
        return out

    assert chosen() == [slots["y"], slots["z"]]
    assert_same_terms(model, "d", x, 2, 0.0)
    model.rate("d", "y", 1.0)  # re-rated, then set back: a later rating, the same selection
    model.rate("d", "y", 4.0)
    assert chosen() == [slots["y"], slots["z"]]
    assert_same_terms(model, "d", x, 2, 0.0)


@needs_kernel
def test_a_bad_item_raises_and_leaves_the_marks_clear() -> None:
    model = UserKNN(item_residual=2, min_k=1)
    for user in ["a", "b"]:
        model.rate(user, "x", 3.0)
        model.rate(user, "y", 4.0)
    state = model.state
    good = state.items.slot_of["x"]
    with pytest.raises(ValueError, match="out of range"):
        item_residual.item_terms_compiled(
            state, state.users.slot_of["a"], np.array([good, 10**9], dtype=np.int64),
            neighbours=2, shrinkage=0.0, mu=0.0, user_bias=0.0,
            item_bias=np.zeros(state.items.high),
        )  # fmt: skip
    assert np.all(item_residual._MARKS.pos == -1)


@needs_kernel
@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(not dataset_available("ml-100k"), reason="ml-100k is not installed")
def test_kernel_equals_numpy_on_ml100k() -> None:
    model = UserKNN(item_residual=40)
    model.apply_many(dataset_events("ml-100k", limit=30_000))
    state = model.state
    rng = random.Random(5)
    slots = list(range(state.items.high))
    sampled = rng.sample(model.users(), 30)
    users_wide = set(sampled[:5])
    for user in sampled:
        wanted = np.array(rng.sample(slots, 12), dtype=np.int64)
        assert_same_terms(model, user, wanted, 40, model.settings.item_shrinkage)
        if user in users_wide:  # more columns than one scan reads (64)
            wide = np.array(rng.sample(slots, 150), dtype=np.int64)
            assert_same_terms(model, user, wide, 40, model.settings.item_shrinkage)
        for i in wanted[:4].tolist():
            assert_same_terms(model, user, np.array([i], dtype=np.int64), 40, 100.0)


@needs_kernel
def test_many_user_slots_and_few_raters_take_the_sorted_ranking() -> None:
    """With many user slots and few raters of i, the kernel ranks i's raters by sorting them
    (not through its bitmap over the user slots): the same bits, raters rated in any order."""
    model = UserKNN(item_residual=3, item_shrinkage=0.0, min_k=1)
    rng = random.Random(3)
    crowd = [f"c{n}" for n in range(6_000)]  # 94 words of user bits > 4 raters' worth
    # an item of their own each: user slots, and no pair sums to keep up
    model.apply_many(
        [RatingEvent(user_id=user, item_id=f"own-{user}", rating=3.0) for user in crowd]
    )
    raters = rng.sample(crowd, 4)  # high and low slots, not in slot order
    for n, user in enumerate(raters):
        for item in ["a", "b", "c", "d"]:
            model.rate(user, item, rng.choice(VALUES))
        model.rate(user, "e", 1.0 + n)
    model.rate("me", "a", 4.0)
    model.rate("me", "b", 2.5)
    model.rate("me", "c", 5.0)
    slots = model.state.items.slot_of
    every = np.array([slots[i] for i in ["a", "b", "c", "d", "e"]], dtype=np.int64)
    # the kernel's rule: the bitmap where its words <= 4 · (raters of i) + 64, else the sort
    assert (model.state.users.high + 63) // 64 > 4 * 4 + 64
    for user in ["me", *raters]:
        assert_same_terms(model, user, every, 3, 0.0)
    for i in every.tolist():
        assert_same_terms(model, "me", np.array([i], dtype=np.int64), 3, 2.5)
