"""``UserKNN.co_raters`` (the processor's refresh policy asks it for every batch's actors) against
a plain computation from the users' items, after every step of random streams."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_cf.engine import UserKNN
from tests.engine.strategies import apply_op, op_lists

USERS = [f"u{n}" for n in range(8)]
ITEMS = [f"i{n}" for n in range(7)]


def plain_co_raters(model: UserKNN, users: list[str]) -> set[str]:
    """Every user with an item in common with one of ``users`` (each of them included when it
    has an item)."""
    theirs: set[str] = set()
    for user in users:
        if model.has_user(user):
            theirs |= set(model.user_items(user))
    return {v for v in model.users() if theirs & set(model.user_items(v))}


@settings(max_examples=80, deadline=None)
@given(
    ops=op_lists(USERS, ITEMS, [1.0, 3.0, 5.0], min_size=1, max_size=40),
    asked=st.lists(st.lists(st.sampled_from([*USERS, "stranger"]), max_size=4), min_size=1),
    implicit=st.booleans(),
)
def test_co_raters_equal_a_plain_computation_after_every_step(
    ops: list[tuple[Any, ...]], asked: list[list[str]], implicit: bool
) -> None:
    model = UserKNN(feedback="implicit") if implicit else UserKNN()
    for step, op in enumerate(ops):
        apply_op(model, op)
        users = asked[step % len(asked)]
        assert model.co_raters(users) == plain_co_raters(model, users), (step, users)
