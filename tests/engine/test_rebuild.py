"""The rebuilt pair sums equal a triple loop over users, users and items: exactly (int64) with a
scale, to float rounding without one, on random small rating sets (users without ratings,
n_users not a multiple of the block, blocks of one row, every item dense, none or some, one or
two workers), and on values large enough for the float64, int64 and unpacked paths."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_cf.engine import rebuild
from stream_cf.engine.rebuild import pair_sum_blocks

Ratings = dict[tuple[int, int], float]


def reference(ratings: Ratings, n_users: int, scale: float | None) -> np.ndarray:
    """sums[a, b] = [n, Σ r_a, Σ r_a², Σ r_a·r_b] over the items both rated, by plain loops
    (Python ints in scale units with a scale, floats without)."""
    by_user: list[dict[int, Any]] = [{} for _ in range(n_users)]
    for (user, item), value in ratings.items():
        by_user[user][item] = value if scale is None else round(value * scale)
    out = np.zeros((n_users, n_users, 4), dtype=object)
    for a in range(n_users):
        for b in range(n_users):
            total = [0, 0, 0, 0]
            for item, ra in by_user[a].items():
                if item in by_user[b]:
                    rb = by_user[b][item]
                    total = [total[0] + 1, total[1] + ra, total[2] + ra * ra, total[3] + ra * rb]
            out[a, b] = total
    return out


def rebuilt(ratings: Ratings, n_users: int, scale: float | None, **kwargs: Any) -> np.ndarray:
    """Every block of pair_sum_blocks copied into one array (checking the ranges and shapes)."""
    users = np.array([u for u, _ in ratings], dtype=np.int64)
    items = np.array([i for _, i in ratings], dtype=np.int64)
    values = np.array(list(ratings.values()), dtype=np.float64)
    dtype = np.float64 if scale is None else np.int64
    out = np.full((n_users, n_users, 4), -1, dtype=dtype)
    expected_lo = 0
    for lo, hi, block in pair_sum_blocks(users, items, values, n_users, scale=scale, **kwargs):
        assert lo == expected_lo < hi <= n_users
        assert block.shape == (hi - lo, n_users, 4)
        assert block.dtype == dtype
        out[lo:hi] = block
        expected_lo = hi
    assert expected_lo == n_users
    return out


@st.composite
def rating_sets(draw: st.DrawFn, scaled: bool) -> tuple[Ratings, int]:
    n_users = draw(st.integers(0, 9))
    n_items = draw(st.integers(1, 7))
    cells = st.tuples(st.integers(0, max(n_users - 1, 0)), st.integers(0, n_items - 1))
    if scaled:  # multiples of 0.5, negative ones too
        value = st.integers(-20, 20).map(lambda k: k / 2)
    else:
        value = st.floats(-50, 50, allow_nan=False, allow_infinity=False)
    ratings = draw(st.dictionaries(cells, value, max_size=40)) if n_users else {}
    return ratings, n_users


options = st.fixed_dictionaries(
    {
        "block_rows": st.integers(1, 5),
        "workers": st.integers(1, 2),
        "dense_share": st.sampled_from([0.0, 0.3, 2.0]),  # every item dense, some, none
    }
)


@settings(max_examples=300, deadline=None)
@given(data=rating_sets(scaled=True), kwargs=options)
def test_scaled_sums_are_exact(data: tuple[Ratings, int], kwargs: dict[str, Any]) -> None:
    ratings, n_users = data
    got = rebuilt(ratings, n_users, 2.0, **kwargs)
    assert np.array_equal(got, reference(ratings, n_users, 2.0).astype(np.int64))


@settings(max_examples=300, deadline=None)
@given(data=rating_sets(scaled=False), kwargs=options)
def test_float_sums_match_to_rounding(data: tuple[Ratings, int], kwargs: dict[str, Any]) -> None:
    ratings, n_users = data
    got = rebuilt(ratings, n_users, None, **kwargs)
    want = reference(ratings, n_users, None).astype(np.float64)
    # atol: sums of terms up to 2,500 whose order differs, cancelling down to about 0
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)


def random_ratings(n_users: int, n_items: int, low: int, high: int, seed: int) -> Ratings:
    rng = np.random.default_rng(seed)
    cells = rng.random((n_users, n_items)) < 0.5
    values = rng.integers(low, high, size=(n_users, n_items))
    return {(int(u), int(i)): float(values[u, i]) for u, i in zip(*np.nonzero(cells), strict=True)}


@pytest.mark.parametrize(
    ("low", "high"),
    [
        (1, 6),  # float32 products, one packed sparse product
        (-3000, 3000),  # B ≥ 2^24: float64 products, two sparse products (negative values)
        (0, 3000),  # the same, two sparse products (the packed fields do not fit)
        (2**26, 2**26 + 5),  # B ≥ 2^53: int64, no dense part; packing does not fit
        (-(2**28), 2**28),  # the same, negative values
    ],
)
@pytest.mark.parametrize("dense_share", [0.0, 0.5, 2.0])
def test_every_product_path_is_exact(low: int, high: int, dense_share: float) -> None:
    ratings = random_ratings(13, 11, low, high, seed=low % 1000)
    got = rebuilt(ratings, 13, 1.0, block_rows=4, dense_share=dense_share)
    assert np.array_equal(got, reference(ratings, 13, 1.0).astype(np.int64))


def test_tiles_with_and_without_packing_are_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """Values up to 200: bit fields fit in 53 bits for tiles of users with ≤ 3 ratings, not for
    the tile of the user with 20 (so that tile takes two products)."""
    ratings = random_ratings(40, 3, 0, 201, seed=7)
    ratings.update({(5, item): float(item * 10) for item in range(3, 23)})
    layouts: list[object] = []
    original = rebuild._SparseOperands._layout

    def spy(self: Any, most: int) -> tuple[int, int] | None:
        layouts.append(original(self, most))
        return layouts[-1]

    monkeypatch.setattr(rebuild, "TILE_ROWS", 4)
    monkeypatch.setattr(rebuild._SparseOperands, "_layout", spy)
    got = rebuilt(ratings, 40, 1.0, block_rows=8, dense_share=2.0)
    assert None in layouts and any(layout is not None for layout in layouts)
    assert np.array_equal(got, reference(ratings, 40, 1.0).astype(np.int64))


def test_rows_of_users_without_ratings_are_zero() -> None:
    ratings = {(1, 0): 3.0, (1, 2): 4.0, (4, 2): 5.0}
    got = rebuilt(ratings, 6, 2.0, block_rows=4)
    assert not got[[0, 2, 3, 5]].any() and not got[:, [0, 2, 3, 5]].any()
    assert got[1, 1].tolist() == [2, 14, 100, 100]  # 2·3 + 2·4 = 14, 36 + 64 = 100
    assert got[1, 4].tolist() == [1, 8, 64, 80]  # item 2 only
    assert got[4, 1].tolist() == [1, 10, 100, 80]


def test_no_users_no_blocks() -> None:
    empty = np.zeros(0, dtype=np.int64)
    assert list(pair_sum_blocks(empty, empty, empty.astype(float), 0, scale=2.0)) == []


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (([0, 0], [1, 1], [1.0, 2.0], 2, 2.0), "more than once"),
        (([0, 2], [1, 1], [1.0, 2.0], 2, 2.0), "user slots"),
        (([0, -1], [1, 1], [1.0, 2.0], 2, 2.0), "user slots"),
        (([0, 1], [1, -1], [1.0, 2.0], 2, 2.0), "item slots"),
        (([0, 1], [1, 1], [1.0, 2.25], 2, 2.0), "integer"),
        (([0, 1], [1, 1], [1.0, np.nan], 2, None), "finite"),
        (([0, 1], [1], [1.0, 2.0], 2, 2.0), "same length"),
        (([0, 1], [1, 1], [1.0, 2.0], 2, 0.0), "scale"),
        (([0, 1], [1, 1], [2.0**31, 2.0**31], 2, 2.0), "int64"),
    ],
)
def test_bad_input_is_refused_before_the_first_block(
    case: tuple[list[int], list[int], list[float], int, float | None], message: str
) -> None:
    users, items, values, n_users, scale = case
    with pytest.raises(ValueError, match=message):
        pair_sum_blocks(np.array(users), np.array(items), np.array(values), n_users, scale=scale)
