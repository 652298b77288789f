"""Micro-batches on real data: MovieLens 100K in time order, applied in batches of the sizes the
processor polls, end in exactly the state of applying the same ratings one by one.

Random small streams (test_oracle.py) mostly take the single-product and pair-by-pair paths of
the block update; real batches (~25 users, ~1,000 cells, ~550 items per 1,000 events) take the
user-by-user products, and batches of several thousand the product form of the corrections
between changed users. The test checks that those paths really ran, then compares the pair sums
(bit for bit), the grid and the recommendations.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

from stream_cf.datasets import dataset_available, dataset_events
from stream_cf.engine import UserKNN, commit, products
from stream_cf.engine import pairs as pairs_module

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        not dataset_available("ml-100k"), reason="MovieLens 100K is not installed: make datasets"
    ),
]

EVENTS = 30_000


@pytest.fixture(scope="module")
def one_by_one() -> UserKNN:
    model = UserKNN()
    for event in dataset_events("ml-100k", limit=EVENTS):
        model.apply(event)
    return model


def batched(size: int, monkeypatch: pytest.MonkeyPatch) -> tuple[UserKNN, Counter[str]]:
    """The same ratings in batches of ``size``, counting which update paths ran."""
    used: Counter[str] = Counter()

    def spy(name: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            used[name] += 1
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(
        pairs_module, "products_by_user", spy("by_user", pairs_module.products_by_user)
    )
    monkeypatch.setattr(pairs_module, "products_dense", spy("dense", pairs_module.products_dense))
    monkeypatch.setattr(products, "_shared_pairs", spy("shared_pairs", products._shared_pairs))
    monkeypatch.setattr(
        products, "_shared_products", spy("shared_products", products._shared_products)
    )
    events = dataset_events("ml-100k", limit=EVENTS)
    model = UserKNN()
    for lo in range(0, len(events), size):
        model.apply_many(events[lo : lo + size])
    return model, used


@pytest.mark.parametrize(
    ("size", "path"), [(1_000, "by_user"), (1_000, "shared_pairs"), (10_000, "shared_products")]
)
def test_batches_equal_one_by_one(
    one_by_one: UserKNN, monkeypatch: pytest.MonkeyPatch, size: int, path: str
) -> None:
    model, used = batched(size, monkeypatch)
    assert used[path] > 0, f"batches of {size} never took the {path} path: {dict(used)}"
    a, b = one_by_one.state, model.state
    n, m = a.users.high, a.items.high
    assert (n, m) == (b.users.high, b.items.high)
    assert a.pairs.dense(n).tobytes() == b.pairs.dense(n).tobytes()
    for u in range(n):
        mine, theirs = a.ratings.user_row(u), b.ratings.user_row(u)
        assert all(np.array_equal(x, y) for x, y in zip(mine, theirs, strict=True))
    users = one_by_one.users()[::50]
    assert all(one_by_one.recommend(u) == model.recommend(u) for u in users)


def test_batches_split_by_memory_equal_one_by_one(
    one_by_one: UserKNN, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a tiny memory budget per block every changed user's cells are committed on their
    own, one group after the other: still the same sums."""
    monkeypatch.setattr(commit, "MAX_BLOCK_BYTES", 1)
    blocks: Counter[str] = Counter()
    update = pairs_module.PairSums.update_block

    def counted(self: pairs_module.PairSums, **kwargs: Any) -> None:
        blocks["updates"] += 1
        update(self, **kwargs)

    monkeypatch.setattr(pairs_module.PairSums, "update_block", counted)
    events = dataset_events("ml-100k", limit=EVENTS)
    model = UserKNN()
    for lo in range(0, len(events), 1_000):
        model.apply_many(events[lo : lo + 1_000])
    assert blocks["updates"] > 10 * (len(events) // 1_000)  # split: ~25 users per batch
    n = one_by_one.state.users.high
    assert one_by_one.state.pairs.dense(n).tobytes() == model.state.pairs.dense(n).tobytes()
