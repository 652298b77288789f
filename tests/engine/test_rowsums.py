"""The b_u sums of ``knn_baseline`` (:mod:`stream_cf.engine.rowsums`): scipy's compiled CSR
product gives np.bincount's bits on any rows, a product that adds in another order (or fails) is
refused at the check, predictions are the same bits on either path, and the ratings' shortcut
that tells a missing cell from u's kept sorted row agrees with a scan after every event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_cf.engine import UserKNN, rowsums
from stream_cf.events import Event
from stream_cf.exceptions import UnknownRating
from tests.engine.strategies import event_lists

USERS = [f"u{n}" for n in range(6)]
ITEMS = [f"i{n}" for n in range(7)]

events = event_lists(USERS, ITEMS, st.sampled_from([1.0, 2.0, 2.5, 3.0, 4.0, 5.0]))

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=300, deadline=None)
@given(
    x=st.lists(finite | st.sampled_from([1e16, -1e16, 1.0, 0.1, -0.0]), min_size=1, max_size=40),
    rows=st.lists(st.lists(st.integers(0, 39), max_size=30), max_size=8),
)
def test_row_sums_equal_bincount(x: list[float], rows: list[list[int]]) -> None:
    values = np.array(x)
    indices = np.array([j % values.size for row in rows for j in row], dtype=np.int32)
    indptr = np.concatenate(([0], np.cumsum([len(row) for row in rows]))).astype(np.int64)
    with np.errstate(over="ignore", invalid="ignore"):  # sums of huge values overflow alike
        fast = rowsums.row_sums(indptr, indices, values)
        reference = rowsums.row_sums_bincount(indptr, indices, values)
    assert fast.tobytes() == reference.tobytes()


def test_the_compiled_path_is_on() -> None:
    """scipy (a dependency) has the product and it adds in order: if an upgrade takes it away,
    the b_u sums fall back to np.bincount (same bits, ~5x their time) and this says so."""
    assert rowsums.fast_path()


def _pairwise(n_row: int, _n_col: int, ap: Any, aj: Any, _ax: Any, x: Any, out: Any) -> None:
    """A CSR product that adds each row pairwise (numpy's np.sum): other bits."""
    for r in range(n_row):
        out[r] = np.sum(x[aj[ap[r] : ap[r + 1]]])


def _reversed(n_row: int, _n_col: int, ap: Any, aj: Any, _ax: Any, x: Any, out: Any) -> None:
    for r in range(n_row):
        total = 0.0
        for j in aj[ap[r] : ap[r + 1]][::-1].tolist():
            total += float(x[j])
        out[r] = total


def _refuses(*_args: Any) -> None:
    raise TypeError("no such signature")


@pytest.mark.parametrize("matvec", [_pairwise, _reversed, _refuses])
def test_a_product_in_another_order_is_refused(matvec: Callable[..., None]) -> None:
    assert not rowsums._adds_in_order(matvec)


def test_a_product_in_order_is_taken() -> None:
    def _in_order(*args: Any) -> None:
        n_row, _n_col, ap, aj, ax, x, out = args
        for r in range(n_row):
            total = 0.0
            for k in range(int(ap[r]), int(ap[r + 1])):
                total += float(ax[k]) * float(x[aj[k]])
            out[r] = total

    assert rowsums._adds_in_order(_in_order)


def _replay(stream: list[Event], *, check: Callable[[UserKNN], None]) -> list[float]:
    """Every prediction of every (user, item) after every event, ``check`` after each too."""
    model = UserKNN(damping=0.5)  # knn_baseline, adjusted_cosine: the defaults
    seen: list[float] = []
    for event in stream:
        try:
            model.apply(event)
        except UnknownRating:  # a take-back of a rating that does not exist: refused
            continue
        for user in USERS:
            seen.extend(model.predict(user, item) for item in ITEMS)
            seen.extend(model.predict_many(user, ITEMS))
        check(model)
    return seen


def _cells_agree(model: UserKNN) -> None:
    """cell_of (which tells a missing cell from a kept sorted row) against a plain scan."""
    st_ = model.state
    ratings = st_.ratings
    for u in range(st_.users.high):
        cells = ratings.by_user.row(u)
        for i in range(st_.items.high):
            hit = np.flatnonzero(ratings.cell_item[cells] == i)
            assert ratings.cell_of(u, i) == (int(cells[hit[0]]) if hit.size else -1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=events)
def test_predictions_equal_on_either_path(stream: list[Event]) -> None:
    kept = rowsums.PRODUCT.get()
    assert kept is not None
    fast = _replay(stream, check=_cells_agree)
    try:
        rowsums.PRODUCT.set(None)  # np.bincount
        slow = _replay(stream, check=_cells_agree)
    finally:
        rowsums.PRODUCT.set(kept)
    assert np.array(fast).tobytes() == np.array(slow).tobytes()
