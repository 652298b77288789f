"""Quick smoke tests of the engine's public face (the oracle and parity tests are elsewhere)."""

from __future__ import annotations

import io

import pytest

from stream_cf import Recommendations, UserKNN
from stream_cf.events import ForgetUserEvent, PurchaseEvent, RatingEvent, UnrateEvent
from stream_cf.exceptions import InvalidEvent, StateFormatError, UnknownRating

ROWS = [
    ("a", "x", 5.0),
    ("a", "y", 3.0),
    ("a", "w", 4.0),
    ("b", "x", 4.0),
    ("b", "y", 2.0),
    ("b", "z", 1.0),
    ("c", "y", 4.5),
    ("c", "z", 2.0),
    ("c", "x", 1.0),
]


def model_with_rows(**kwargs: object) -> UserKNN:
    model = UserKNN(**kwargs)  # type: ignore[arg-type]
    for row in ROWS:
        model.rate(*row)
    return model


def test_reads_and_prediction() -> None:
    model = model_with_rows(similarity="pearson", min_similarity=None)
    assert model.n_users == 3 and model.n_items == 4 and model.n_ratings == 9
    assert model.raters("x") == ["a", "b", "c"]
    assert model.mean("a") == 4.0
    explanation = model.explain("a", "z")
    assert explanation.fallback is None
    assert 1.0 <= explanation.estimate <= 5.0
    assert model.predict("a", "z") == explanation.estimate
    assert model.explain("ghost", "z").fallback == "unknown user"
    assert model.explain("a", "nothing").fallback == "unknown item"


def test_recommend_excludes_own_items_and_cold_users_get_popularity() -> None:
    model = model_with_rows()
    recs = model.recommendations("a", 5)
    assert isinstance(recs, Recommendations)
    assert all(item not in model.user_items("a") for item, _ in recs.items)
    cold = model.recommendations("nobody", 2)
    assert cold.fallback is not None
    assert [item for item, _ in cold.items] == ["x", "y"]
    many = model.recommend_many(["a", "nobody"], 2)
    assert set(many) == {"a", "nobody"}


def test_apply_many_equals_one_by_one() -> None:
    events = [RatingEvent(user_id=u, item_id=i, rating=r) for u, i, r in ROWS]
    events += [
        UnrateEvent(user_id="b", item_id="z"),
        RatingEvent(user_id="a", item_id="x", rating=2.0),
        ForgetUserEvent(user_id="c"),
        RatingEvent(user_id="d", item_id="x", rating=3.0),
    ]
    one = UserKNN()
    for event in events:
        one.apply(event)
    many = UserKNN()
    effect = many.apply_many(events)
    assert effect.events == len(events)
    assert "c" in effect.forgotten
    assert one.users() == many.users()
    for u in one.users():
        assert one.user_items(u) == many.user_items(u)
        for v in one.users():
            assert one.similarity(u, v) == many.similarity(u, v)
        assert one.recommend(u) == many.recommend(u)


def test_bad_input_leaves_the_state_unchanged() -> None:
    model = model_with_rows()
    with pytest.raises(InvalidEvent) as info:
        model.rate("a", "z", 9.0)
    assert info.value.reason == "rating_out_of_scale"
    with pytest.raises(UnknownRating):
        model.unrate("a", "z")
    model.forget_user("ghost")  # documented no-op
    assert model.n_ratings == len(ROWS)


def test_save_load_roundtrip_and_bad_file() -> None:
    model = model_with_rows(similarity="cosine")
    buf = io.BytesIO()
    model.save(buf)
    again = UserKNN.load(io.BytesIO(buf.getvalue()))
    assert again.config() == model.config()
    assert again.recommend("a") == model.recommend("a")
    model.rate("d", "z", 4.0)
    again.rate("d", "z", 4.0)
    assert again.recommend("d") == model.recommend("d")
    with pytest.raises(StateFormatError):
        UserKNN.load(io.BytesIO(b"not a state"))


def test_implicit_purchases() -> None:
    model = UserKNN(feedback="implicit", implicit_cap=3.0)
    model.apply(PurchaseEvent(user_id="a", item_id="x", quantity=2.0))
    model.purchase("a", "x", 2.0)
    model.purchase("a", "y")
    model.purchase("b", "x")
    model.purchase("b", "z")
    assert model.user_items("a") == {"x": 3.0, "y": 1.0}
    assert [item for item, _ in model.recommend("a")] == ["z"]
    assert model.similarity("a", "b") > 0
