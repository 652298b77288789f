"""Hypothesis strategies shared by the engine's tests, and the step that applies a tuple stream."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from stream_cf.engine import UserKNN
from stream_cf.events import Event, ForgetUserEvent, RatingEvent, UnrateEvent


def event_lists(
    users: Sequence[str],
    items: Sequence[str],
    ratings: st.SearchStrategy[float],
    *,
    max_size: int = 40,
) -> st.SearchStrategy[list[Event]]:
    """Random streams of ratings (values drawn from ``ratings``), take-backs and forgotten
    users over the given ids."""
    return st.lists(
        st.one_of(
            st.builds(
                RatingEvent,
                user_id=st.sampled_from(users),
                item_id=st.sampled_from(items),
                rating=ratings,
            ),
            st.builds(UnrateEvent, user_id=st.sampled_from(users), item_id=st.sampled_from(items)),
            st.builds(ForgetUserEvent, user_id=st.sampled_from(users)),
        ),
        max_size=max_size,
    )


def op_lists(
    users: Sequence[str],
    items: Sequence[str],
    values: Sequence[float],
    *,
    min_size: int,
    max_size: int,
) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    """Random streams as plain tuples — ("rate", user, item, value), ("unrate", user, item),
    ("forget", user) — mostly ratings (``one_of`` draws its branches alike; re-rates among
    them), some take-backs."""
    rate = st.tuples(
        st.just("rate"), st.sampled_from(users), st.sampled_from(items), st.sampled_from(values)
    )
    return st.lists(
        st.one_of(
            rate,
            rate,
            rate,
            rate,
            st.tuples(st.just("unrate"), st.sampled_from(users), st.sampled_from(items)),
            st.tuples(st.just("forget"), st.sampled_from(users)),
        ),
        min_size=min_size,
        max_size=max_size,
    )


def tie_prone_streams(
    users: Sequence[str], items: Sequence[str], values: Sequence[float]
) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    """:func:`op_lists` of two kinds: ``values`` over every given id, and ratings 1 or 5 by seven
    users of four items (many raters with equal w, re-rated: ties at the k-th neighbour that the
    earlier rating breaks, not the place in the item's row)."""
    return st.one_of(
        op_lists(users, items, values, min_size=1, max_size=40),
        op_lists(users[:7], items[:4], [1.0, 5.0], min_size=20, max_size=40),
    )


def apply_op(model: UserKNN, op: tuple[Any, ...]) -> None:
    """One tuple of :func:`op_lists` applied to ``model`` (a take-back of nothing, or forgetting
    an unknown user, is skipped)."""
    if op[0] == "rate":
        model.rate(op[1], op[2], op[3])
    elif op[0] == "unrate" and model.current(op[1], op[2]) is not None:
        model.unrate(op[1], op[2])
    elif op[0] == "forget" and model.has_user(op[1]):
        model.forget_user(op[1])
