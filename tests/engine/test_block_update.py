"""The batched pair-sum update, every path, against the sums computed from scratch.

A micro-batch changes cells (user, item): new ratings, changed ones and removals, several changed
users sharing items. Each of the update's paths (products over every changed user at once, user
by user, pair by pair; float64 values or float32 on the int8 2·value copy) must leave exactly the
sums a from-scratch computation over the new ratings gives (the store's int32 sums of 2·value).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_cf.engine import pairs as pairs_module
from stream_cf.engine import products
from stream_cf.engine.pairs import PairSums

METHODS = [
    ("dense", False),
    ("dense", True),
    ("by_user", False),
    ("by_user", True),
    ("sparse", False),
]
SHARED = ["pairs", "products"]  # the two ways of correcting the entries between changed users


def forcing(way: str) -> object:
    """A replacement of the dense update's corrections between changed users, one way only."""

    def forced(cells: products.Cells, dtype: type) -> tuple[np.ndarray, np.ndarray]:
        n_cols = int(cells.cols.max()) + 1
        if way == "pairs":
            return products._shared_pairs(cells, np.bincount(cells.cols, minlength=n_cols))
        return products._shared_products(cells, n_cols, dtype)

    return forced


def from_scratch(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    """sums[a, b] = [n, Σ r_a, Σ r_a², Σ r_a·r_b] over the items both rated, plainly."""
    n_users, n_items = mask.shape
    out = np.zeros((n_users, n_users, 4))
    for a in range(n_users):
        for b in range(n_users):
            for i in range(n_items):
                if mask[a, i] and mask[b, i]:
                    out[a, b] += [1.0, values[a, i], values[a, i] ** 2, values[a, i] * values[b, i]]
    return out


Block = tuple[np.ndarray, np.ndarray, list[tuple[int, int]], np.ndarray, np.ndarray]


def apply_block(method: str, twice: bool, shared: str, block: Block) -> np.ndarray:
    """The sums after updating from-scratch sums of the old grid with the block's changed cells
    (old mask and values, the cells, new mask and values) by one path."""
    old_m, old_v, cells, new_m, new_v = block
    n_users = old_m.shape[0]
    pairs = PairSums()
    pairs.ensure(n_users)
    pairs.set_rows(0, np.rint(from_scratch(old_m, old_v) / pairs.units()).astype(np.int32))
    cu = np.array([c[0] for c in cells], dtype=np.int64)
    ct = np.array([c[1] for c in cells], dtype=np.int64)
    values_t = (2.0 * old_v.T).astype(np.int8) if twice else old_v.T.copy()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pairs_module, "shared_items", forcing(shared))
        pairs.update_block(
            n_users=n_users,
            cell_users=cu,
            cell_cols=ct,
            mask_t=old_m.T.copy(),
            values_t=values_t,
            new_values=new_v[cu, ct],
            new_present=new_m[cu, ct],
            scale=2.0 if twice else 1.0,
            exact32=twice,
            method=method,  # type: ignore[arg-type]
        )
    return pairs.dense(n_users).astype(np.float64) * pairs.units()


@st.composite
def blocks(draw: st.DrawFn) -> Block:
    n_users = draw(st.integers(1, 7))
    n_items = draw(st.integers(1, 6))
    half = st.integers(1, 10).map(lambda k: k / 2.0)  # 0.5 .. 5.0
    old_m = np.array(
        draw(st.lists(st.booleans(), min_size=n_users * n_items, max_size=n_users * n_items))
    ).reshape(n_users, n_items)
    old_v = (
        np.array([draw(half) for _ in range(n_users * n_items)]).reshape(n_users, n_items) * old_m
    )
    all_cells = [(u, i) for u in range(n_users) for i in range(n_items)]
    cells = draw(st.lists(st.sampled_from(all_cells), min_size=1, unique=True))
    new_m = old_m.copy()
    new_v = old_v.copy()
    for u, i in cells:
        if old_m[u, i] and draw(st.booleans()):
            new_m[u, i], new_v[u, i] = False, 0.0  # taken back
        else:
            new_m[u, i], new_v[u, i] = True, draw(half)  # new or changed
    return old_m, old_v, cells, new_m, new_v


@pytest.mark.timeout(120)
@pytest.mark.parametrize("shared", SHARED)
@pytest.mark.parametrize(("method", "twice"), METHODS)
@settings(max_examples=150, deadline=None)
@given(block=blocks())
def test_every_path_equals_from_scratch(
    shared: str,
    method: str,
    twice: bool,
    block: Block,
) -> None:
    _old_m, _old_v, _cells, new_m, new_v = block
    got = apply_block(method, twice, shared, block)
    assert np.array_equal(got, from_scratch(new_m, new_v))


@pytest.mark.parametrize("shared", SHARED)
@pytest.mark.parametrize(("method", "twice"), METHODS)
def test_users_sharing_items(shared: str, method: str, twice: bool) -> None:
    """A fixed case: three changed users on one item, a re-rating, a removal, a new user."""
    rng = np.random.default_rng(7)
    n_users, n_items = 9, 6
    old_m = rng.random((n_users, n_items)) < 0.5
    old_v = np.where(old_m, rng.integers(1, 11, (n_users, n_items)) / 2.0, 0.0)
    cells = [(0, 1), (3, 1), (3, 4), (5, 0), (8, 5), (2, 2), (0, 4), (5, 1)]
    new_m = old_m.copy()
    new_v = old_v.copy()
    for n, (x, t) in enumerate(cells):
        if n % 3 == 2:
            new_m[x, t], new_v[x, t] = False, 0.0
        else:
            new_m[x, t], new_v[x, t] = True, float(1 + n)
    got = apply_block(method, twice, shared, (old_m, old_v, cells, new_m, new_v))
    assert np.array_equal(got, from_scratch(new_m, new_v))
    assert not np.array_equal(got, from_scratch(old_m, old_v))  # the batch changed something
