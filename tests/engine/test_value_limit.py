"""The engine's value limit: no quantity, accumulated weight or rating scale passes it, so that
no sum can overflow; a refused event leaves the state unchanged (issue 13)."""

from __future__ import annotations

import pytest

from stream_cf.engine import UserKNN
from stream_cf.engine.validation import VALUE_LIMIT
from stream_cf.events import PurchaseEvent, RatingEvent
from stream_cf.exceptions import ConfigError, InvalidEvent

from .checks import saved_bytes


def implicit_model() -> UserKNN:
    model = UserKNN(feedback="implicit", similarity="cosine")
    model.apply_many(
        [PurchaseEvent(user_id=u, item_id=i, quantity=2) for u in "abc" for i in "xyz"]
    )
    return model


@pytest.mark.parametrize("quantity", [1e200, VALUE_LIMIT * 2, 1e308])
def test_a_huge_quantity_is_refused(quantity: float) -> None:
    model = implicit_model()
    before = saved_bytes(model)
    with pytest.raises(InvalidEvent) as info:
        model.purchase("a", "x", quantity)
    assert info.value.reason == "value_too_large"
    with pytest.raises(InvalidEvent) as info:
        model.apply_many([PurchaseEvent(user_id="d", item_id="x", quantity=quantity)])
    assert info.value.reason == "value_too_large"
    assert saved_bytes(model) == before


@pytest.mark.parametrize("batched", [True, False])
def test_an_accumulated_weight_above_the_limit_is_refused(batched: bool) -> None:
    model = implicit_model()
    model.purchase("a", "x", VALUE_LIMIT * 0.75)
    before = saved_bytes(model)
    events = [
        PurchaseEvent(user_id="a", item_id="x", quantity=VALUE_LIMIT * 0.5),
        PurchaseEvent(user_id="b", item_id="y", quantity=1),
    ]
    with pytest.raises(InvalidEvent) as info:
        if batched:  # the vectorized batch defers to the event-by-event path, which stops at once
            model.apply_many(events)
        else:
            model.apply(events[0])
    assert info.value.reason == "value_too_large"
    assert saved_bytes(model) == before
    # within the limit: applied, and every similarity stays finite
    model.apply_many([RatingEvent(user_id="a", item_id="x", rating=5)])
    assert model.user_items("a")["x"] == 2 + VALUE_LIMIT * 0.75 + 5
    assert all(abs(model.similarity("a", v)) <= 1 + 1e-9 for v in "bc")


def test_with_a_cap_the_weight_stops_at_the_cap() -> None:
    model = UserKNN(feedback="implicit", similarity="cosine", implicit_cap=10.0)
    model.purchase("a", "x", VALUE_LIMIT)
    model.purchase("a", "x", VALUE_LIMIT)
    assert model.user_items("a") == {"x": 10.0}


def test_a_rating_scale_beyond_the_limit_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="rating_scale"):
        UserKNN(rating_scale=(1.0, 1e300))
