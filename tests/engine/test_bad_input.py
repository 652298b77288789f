"""Bad input: a clear domain exception (or a documented no-op) and the state left unchanged."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from stream_cf.engine import UserKNN
from stream_cf.events import PurchaseEvent, RatingEvent, UnrateEvent
from stream_cf.exceptions import InvalidEvent, StreamCFError, UnknownRating

from .checks import saved_bytes, snapshot

USERS = ["a", "b", "c", "ghost"]
ITEMS = ["x", "y", "z", "nothing"]
ROWS = [
    ("a", "x", 5.0),
    ("a", "y", 3.0),
    ("b", "x", 4.0),
    ("b", "y", 2.0),
    ("b", "z", 1.0),
    ("c", "y", 4.5),
    ("c", "z", 2.0),
]


def explicit_model() -> UserKNN:
    model = UserKNN(similarity="pearson", min_similarity=None)
    for row in ROWS:
        model.rate(*row)
    return model


def implicit_model() -> UserKNN:
    model = UserKNN(feedback="implicit", similarity="cosine", implicit_cap=5.0)
    for user, item, value in ROWS:
        model.purchase(user, item, value)
    return model


def assert_rejected(
    model: UserKNN, action: Callable[[UserKNN], Any], exc: type[Exception], reason: str | None
) -> None:
    before = snapshot(model, USERS, ITEMS)
    before_bytes = saved_bytes(model)
    with pytest.raises(exc) as info:
        action(model)
    if reason is not None:
        assert isinstance(info.value, InvalidEvent)
        assert info.value.reason == reason, info.value
        assert str(info.value)
    assert snapshot(model, USERS, ITEMS) == before
    assert saved_bytes(model) == before_bytes


@pytest.mark.parametrize("value", [0.5, 5.5, -1.0, 100.0, 0.0])
def test_rating_outside_the_scale(value: float) -> None:
    model = explicit_model()
    assert_rejected(model, lambda m: m.rate("a", "z", value), InvalidEvent, "rating_out_of_scale")
    # a re-rating of an existing pair too
    assert_rejected(model, lambda m: m.rate("a", "x", value), InvalidEvent, "rating_out_of_scale")
    # and a new user
    assert_rejected(model, lambda m: m.rate("new", "x", value), InvalidEvent, "rating_out_of_scale")


def test_rating_outside_a_custom_scale() -> None:
    model = UserKNN(rating_scale=(0.0, 10.0))
    model.rate("a", "x", 0.0)
    model.rate("a", "y", 10.0)
    assert_rejected(model, lambda m: m.rate("a", "z", 10.5), InvalidEvent, "rating_out_of_scale")
    assert_rejected(model, lambda m: m.rate("a", "z", -0.5), InvalidEvent, "rating_out_of_scale")


@pytest.mark.xfail(strict=True, reason="engine bug: see /tmp/engine_bugs.md #2")
@pytest.mark.parametrize("value", [-2.0, 0.0, 0.5, 9.0])
def test_implicit_rating_outside_the_scale(value: float) -> None:
    """The scale holds in implicit mode too: a negative or zero "rating" would make a negative or
    empty weight (a negative cosine, an item held with weight 0)."""
    model = implicit_model()
    assert_rejected(model, lambda m: m.rate("a", "z", value), InvalidEvent, "rating_out_of_scale")
    assert_rejected(model, lambda m: m.rate("a", "x", value), InvalidEvent, "rating_out_of_scale")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_rating_not_finite(value: float) -> None:
    model = explicit_model()
    assert_rejected(model, lambda m: m.rate("a", "z", value), InvalidEvent, "not_finite")
    assert_rejected(model, lambda m: m.rate("a", "x", value), InvalidEvent, "not_finite")


@pytest.mark.parametrize("quantity", [math.nan, math.inf, -math.inf])
def test_purchase_not_finite(quantity: float) -> None:
    model = implicit_model()
    assert_rejected(model, lambda m: m.purchase("a", "z", quantity), InvalidEvent, "not_finite")
    assert_rejected(model, lambda m: m.purchase("a", "x", quantity), InvalidEvent, "not_finite")


@pytest.mark.parametrize("quantity", [0.0, -1.0])
def test_purchase_not_positive(quantity: float) -> None:
    model = implicit_model()
    assert_rejected(model, lambda m: m.purchase("a", "z", quantity), InvalidEvent, None)


@pytest.mark.parametrize(
    "action",
    [
        lambda m: m.rate("", "x", 3.0),
        lambda m: m.rate("a", "", 3.0),
        lambda m: m.rate("", "", 3.0),
    ],
    ids=["empty-user", "empty-item", "both-empty"],
)
def test_empty_id_in_a_rating(action: Callable[[UserKNN], Any]) -> None:
    assert_rejected(explicit_model(), action, InvalidEvent, "empty_id")


@pytest.mark.parametrize(
    "action",
    [lambda m: m.purchase("", "x", 1.0), lambda m: m.purchase("a", "", 1.0)],
    ids=["empty-user", "empty-item"],
)
def test_empty_id_in_a_purchase(action: Callable[[UserKNN], Any]) -> None:
    assert_rejected(implicit_model(), action, InvalidEvent, "empty_id")


@pytest.mark.parametrize(
    ("user", "item"),
    [("a", "z"), ("ghost", "x"), ("a", "nothing"), ("ghost", "nothing")],
    ids=["known-both", "unknown-user", "unknown-item", "unknown-both"],
)
def test_unrate_of_a_missing_pair(user: str, item: str) -> None:
    assert_rejected(explicit_model(), lambda m: m.unrate(user, item), UnknownRating, None)
    assert_rejected(implicit_model(), lambda m: m.unrate(user, item), UnknownRating, None)


def test_unrate_twice() -> None:
    model = explicit_model()
    model.unrate("a", "x")
    assert_rejected(model, lambda m: m.unrate("a", "x"), UnknownRating, None)


def test_unknown_rating_is_a_domain_error() -> None:
    assert issubclass(UnknownRating, StreamCFError)
    assert issubclass(InvalidEvent, StreamCFError)


@pytest.mark.parametrize("build", [explicit_model, implicit_model], ids=["explicit", "implicit"])
def test_forget_of_an_unknown_user_is_a_no_op(build: Callable[[], UserKNN]) -> None:
    model = build()
    before = snapshot(model, USERS, ITEMS)
    before_bytes = saved_bytes(model)
    model.forget_user("ghost")
    assert snapshot(model, USERS, ITEMS) == before
    assert saved_bytes(model) == before_bytes
    effect = model.apply_many([])
    assert effect.events == 0


def test_bad_event_through_apply() -> None:
    model = explicit_model()
    # the pydantic models accept any float for a rating; the engine checks the scale
    assert_rejected(
        model,
        lambda m: m.apply(RatingEvent(user_id="a", item_id="z", rating=9.0)),
        InvalidEvent,
        "rating_out_of_scale",
    )
    assert_rejected(
        model, lambda m: m.apply(UnrateEvent(user_id="a", item_id="z")), UnknownRating, None
    )


def test_bad_event_in_a_batch_raises() -> None:
    """A batch stops at its bad event with the same exception; the events before it are applied,
    as they would be one by one (apply_many is apply in order)."""
    model = explicit_model()
    reference = explicit_model()
    reference.rate("a", "z", 2.0)
    with pytest.raises(InvalidEvent):
        model.apply_many(
            [
                RatingEvent(user_id="a", item_id="z", rating=2.0),
                RatingEvent(user_id="c", item_id="x", rating=7.0),
            ]
        )
    assert snapshot(model, USERS, ITEMS) == snapshot(reference, USERS, ITEMS)


def test_purchase_in_explicit_mode_or_works_or_is_refused_cleanly() -> None:
    model = explicit_model()
    before = snapshot(model, USERS, ITEMS)
    try:
        model.apply(PurchaseEvent(user_id="a", item_id="z", quantity=1.0))
    except StreamCFError:
        assert snapshot(model, USERS, ITEMS) == before
