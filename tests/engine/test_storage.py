"""The rating grid's copies stay in step with it: after every event of random streams (ratings,
re-ratings, take-backs, erasures and slot reuse, one by one or in micro-batches, save/load), the
item-major mask is the mask's transpose and, while it is kept, the int8 copy holds exactly twice
every value (it is dropped for good once a value without an exact int8 2·value is stored, and
only then)."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_cf.engine import UserKNN
from stream_cf.events import Event, ForgetUserEvent, RatingEvent, UnrateEvent

USERS = [f"u{n}" for n in range(5)]
ITEMS = [f"i{n}" for n in range(5)]
HALVES = [-60.0, -1.5, 0.0, 0.5, 3.0, 63.5]
OTHERS = [1.3, 64.0, -90.0]  # not a multiple of 0.5, or |2·value| > 127

events = st.lists(
    st.one_of(
        st.builds(
            RatingEvent,
            user_id=st.sampled_from(USERS),
            item_id=st.sampled_from(ITEMS),
            rating=st.sampled_from(HALVES) | st.sampled_from(OTHERS),
        ),
        st.builds(UnrateEvent, user_id=st.sampled_from(USERS), item_id=st.sampled_from(ITEMS)),
        st.builds(ForgetUserEvent, user_id=st.sampled_from(USERS)),
    ),
    max_size=40,
)


def valid(stream: list[Event]) -> list[Event]:
    """The stream without the take-backs of ratings that do not exist at that point."""
    current: set[tuple[str, str]] = set()
    kept: list[Event] = []
    for event in stream:
        if isinstance(event, RatingEvent):
            current.add((event.user_id, event.item_id))
        elif isinstance(event, UnrateEvent):
            if (event.user_id, event.item_id) not in current:
                continue
            current.discard((event.user_id, event.item_id))
        else:
            current = {cell for cell in current if cell[0] != event.user_id}
        kept.append(event)
    return kept


def check_copies(model: UserKNN, others_stored: bool) -> None:
    """``others_stored``: a value without an int8 2·value was in the stream (since the load)."""
    state = model.state
    grid = state.grid
    users, items = state.users.high, state.items.high
    mask = grid.mask[:users, :items]
    assert np.array_equal(grid.mask_t[:items, :users], mask.T)
    assert not grid.mask[users:].any() and not grid.mask_t[:, users:].any()
    assert not grid.values[:users, :items][~mask].any()
    current = grid.values[:users, :items][mask]
    if not (np.array_equal(2 * current, np.rint(2 * current)) and np.all(np.abs(current) <= 63.5)):
        assert grid.twice_t is None  # a value the int8 copy cannot hold is stored
    if not others_stored:
        assert grid.twice_t is not None  # never dropped without cause
    assert (grid.twice_t is not None) == state.twice_ok
    if grid.twice_t is not None:
        twice = 2.0 * grid.values[:users, :items].T
        assert np.array_equal(grid.twice_t[:items, :users].astype(np.float64), twice)
        assert not grid.twice_t[:, users:].any()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=events, cuts=st.lists(st.integers(1, 8), max_size=10), reload_at=st.integers(0, 40))
def test_grid_copies_follow_every_event(
    stream: list[Event], cuts: list[int], reload_at: int
) -> None:
    stream = valid(stream)
    model = UserKNN(rating_scale=(-100.0, 100.0))
    others_stored = False
    pos = 0
    sizes = iter(cuts)
    while pos < len(stream):
        batch = stream[pos : pos + next(sizes, 1)]
        pos += len(batch)
        if len(batch) == 1:
            model.apply(batch[0])
        else:
            model.apply_many(batch)
        others_stored |= any(
            isinstance(event, RatingEvent) and event.rating in OTHERS for event in batch
        )
        check_copies(model, others_stored)
        if reload_at and pos >= reload_at:
            reload_at = 0
            buf = io.BytesIO()
            model.save(buf)
            buf.seek(0)
            model = UserKNN.load(buf)
            # a loaded state keeps the copy exactly when its current values allow it
            state = model.state
            mask = state.grid.mask[: state.users.high, : state.items.high]
            current = state.grid.values[: state.users.high, : state.items.high][mask]
            others_stored = not (
                np.array_equal(2 * current, np.rint(2 * current))
                and bool(np.all(np.abs(current) <= 63.5))
            )
            check_copies(model, others_stored)
