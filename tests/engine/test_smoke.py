"""Quick smoke tests of the engine's public face (the oracle and parity tests are elsewhere)."""

from __future__ import annotations

import io

import numpy as np
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
    model = UserKNN(feedback="implicit", similarity="cosine", implicit_cap=3.0)
    model.apply(PurchaseEvent(user_id="a", item_id="x", quantity=2.0))
    model.purchase("a", "x", 2.0)
    model.purchase("a", "y")
    model.purchase("b", "x")
    model.purchase("b", "z")
    assert model.user_items("a") == {"x": 3.0, "y": 1.0}
    assert [item for item, _ in model.recommend("a")] == ["z"]
    assert model.similarity("a", "b") > 0


def test_implicit_batch_with_repeated_cells_equals_one_by_one() -> None:
    events = [
        PurchaseEvent(user_id=u, item_id=i, quantity=q)
        for u, i, q in [
            ("a", "x", 2.0),
            ("a", "x", 3.0),
            ("b", "x", 1.0),
            ("a", "y", 0.5),
            ("b", "y", 2.0),
            ("a", "x", 1.0),
            ("c", "y", 3.0),
        ]
    ]
    one = UserKNN(feedback="implicit", similarity="cosine", implicit_cap=5.5)
    for event in events:
        one.apply(event)
    many = UserKNN(feedback="implicit", similarity="cosine", implicit_cap=5.5)
    many.apply_many(events)
    for user in one.users():
        assert one.user_items(user) == many.user_items(user)
        assert one.raters("x") == many.raters("x")
        for other in one.users():
            assert one.similarity(user, other) == many.similarity(user, other)


def _reference_list(model: UserKNN, user: str, n: int) -> list[tuple[str, float]]:
    """The n best items by predict, one item at a time (ties: first appearance)."""
    scored = []
    for order, item in enumerate(model.items()):
        if item in model.user_items(user):
            continue
        explanation = model.explain(user, item)
        if explanation.fallback is None:
            scored.append((-explanation.estimate, order, item, explanation.estimate))
    scored.sort()
    return [(item, value) for _, _, item, value in scored[:n]]


@pytest.mark.parametrize("scale", [(1.0, 5.0), (-10.0, 10.0)])
def test_single_user_counts_by_popcount_follow_changes_past_64_users(
    scale: tuple[float, float],
) -> None:
    """recommend(u) counts usable raters from a bit mask repacked per 64-user word after each
    change; users in several words, re-ratings, unrates and the extreme values of the scale
    (the int8 copy of the ratings marks unrated cells with -128) give predict's lists."""
    rng = np.random.default_rng(7)
    low, high = scale
    model = UserKNN(rank="rating", rating_scale=scale, k=5)
    values = np.arange(low, high + 0.5, 0.5)
    users = [f"u{j}" for j in range(150)]
    items = [f"i{j}" for j in range(25)]
    for _ in range(1500):
        model.rate(str(rng.choice(users)), str(rng.choice(items)), float(rng.choice(values)))
    probe = [users[j] for j in (0, 63, 64, 65, 127, 128, 149)]
    for user in probe:
        assert model.recommend(user, 8) == _reference_list(model, user, 8)
    events = []
    for user in (users[64], users[130], users[3]):
        for item in list(model.user_items(user))[:3]:
            events.append(UnrateEvent(user_id=user, item_id=item))
        events.append(RatingEvent(user_id=user, item_id=items[0], rating=high))
        events.append(RatingEvent(user_id=user, item_id=items[1], rating=low))
    model.apply_many(events)
    many = model.recommend_many(users[60:80], 8)
    for user in [*probe, users[130], users[3]]:
        assert model.recommend(user, 8) == _reference_list(model, user, 8)
    for user in users[60:80]:
        assert many[user].items == model.recommend(user, 8)
