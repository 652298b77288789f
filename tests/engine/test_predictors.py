"""The rating predictors (``knn_means``, ``knn_baseline``): exact take-backs, predict_many,
settings, and saved states.

The oracle tests (test_oracle.py) compare both predictors with the from-scratch reference after
every event; here: a rating given then taken back (unrate, or forget_user of a new user) leaves
every prediction and explanation exactly (==) as before, and predict_many equals predict on
MovieLens 100K.
"""

from __future__ import annotations

import io
import json
import math
import random
import zipfile
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_cf.datasets import dataset_available, dataset_events
from stream_cf.engine import UserKNN, knn
from stream_cf.engine.neighbours import neighbourhood_of
from stream_cf.events import RatingEvent
from stream_cf.exceptions import ConfigError

from .checks import reloaded, saved_bytes

PREDICTORS = ("knn_means", "knn_baseline")
USERS = [f"u{n}" for n in range(12)]
ITEMS = [f"i{n}" for n in range(10)]


def random_model(config: dict[str, Any], seed: int, n: int = 80) -> UserKNN:
    """A model fed ``n`` random half-step ratings (exact sums)."""
    rng = random.Random(seed)
    model = UserKNN(**config)
    for _ in range(n):
        model.rate(rng.choice(USERS), rng.choice(ITEMS), rng.choice([1.0, 2.5, 3.0, 4.0, 5.0]))
    return model


def everything(model: UserKNN) -> dict[str, Any]:
    """Every prediction and explanation over the users and items, plus two unknown ones."""
    users = [*USERS, "nobody"]
    items = [*ITEMS, "nothing"]
    return {
        "predict": {(u, i): model.predict(u, i) for u in users for i in items},
        "explain": {(u, i): model.explain(u, i) for u in users for i in items},
        "many": {u: model.predict_many(u, items) for u in users},
    }


@pytest.mark.default_residual  # UserKNN's own defaults: knn_baseline with its item residual
@pytest.mark.parametrize("predictor", PREDICTORS)
@pytest.mark.parametrize("seed", range(4))
def test_a_rating_taken_back_leaves_every_prediction_exactly_as_before(
    predictor: str, seed: int
) -> None:
    model = random_model({"predictor": predictor, "k": 5, "min_k": 2}, seed)
    before = everything(model)
    rng = random.Random(seed)
    user = rng.choice([u for u in USERS if model.has_user(u)])
    unrated = [i for i in ITEMS if i not in model.user_items(user)]
    rated = list(model.user_items(user))
    for target_user, item in [
        (user, rng.choice(unrated) if unrated else "fresh-item"),  # an item the user lacks
        (user, "fresh-item"),  # an item nobody has (its slot stays)
        ("fresh-user", rng.choice(ITEMS)),  # a user nobody knows
    ]:
        model.rate(target_user, item, 4.5)
        assert everything(model) != before
        model.unrate(target_user, item)
        assert everything(model) == before, (target_user, item)
    # a re-rating and its undoing
    item = rated[0]
    old = model.user_items(user)[item]
    model.rate(user, item, 1.0 if old != 1.0 else 5.0)
    model.rate(user, item, old)
    assert everything(model) == before
    # a new user's several ratings, erased with forget_user
    for item in ITEMS[:4]:
        model.rate("visitor", item, 2.0)
    model.forget_user("visitor")
    assert everything(model) == before


@pytest.mark.parametrize("predictor", PREDICTORS)
def test_a_batch_taken_back_leaves_every_prediction_exactly_as_before(predictor: str) -> None:
    model = random_model({"predictor": predictor}, seed=7)
    before = everything(model)
    events = [RatingEvent(user_id="visitor", item_id=i, rating=3.5) for i in ITEMS[:5]]
    model.apply_many(events)
    model.forget_user("visitor")
    assert everything(model) == before


def test_knn_baseline_fallbacks_and_explanation() -> None:
    model = UserKNN(
        predictor="knn_baseline",
        similarity="pearson",  # one co-rated item: 0 (adjusted_cosine need not be)
        baseline_reg_items=0.0,
        baseline_reg_users=0.0,
    )
    for user, item, value in [("a", "x", 5.0), ("a", "y", 3.0), ("b", "x", 3.0), ("b", "z", 1.0)]:
        model.rate(user, item, value)
    mu = 3.0
    b_x, b_y, b_z = 1.0, 0.0, -2.0  # item means − μ (no regularisation)
    b_a = ((5 - mu - b_x) + (3 - mu - b_y)) / 2
    unknown_user = model.explain("nobody", "x")
    assert unknown_user.fallback == "unknown user"
    assert unknown_user.estimate == pytest.approx(mu + b_x)
    unknown_item = model.explain("a", "nothing")
    assert unknown_item.fallback == "unknown item"
    assert unknown_item.estimate == pytest.approx(mu + b_a)
    assert model.predict("nobody", "nothing") == pytest.approx(mu)
    no_neighbour = model.explain("a", "z")  # b rated z, but a and b share one item: pearson 0
    assert no_neighbour.fallback == "min_k not reached"
    assert no_neighbour.baseline is not None
    assert no_neighbour.baseline.value == pytest.approx(mu + b_a + b_z)
    assert no_neighbour.estimate == pytest.approx(max(1.0, mu + b_a + b_z))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"predictor": "svd"},
        {"predictor": None},
        {"baseline_reg_items": -1.0},
        {"baseline_reg_items": math.nan},
        {"baseline_reg_users": math.inf},
        {"baseline_reg_users": "10"},
        {"damping": -0.5},
        {"damping": True},
        {"item_residual": -1},
        {"item_residual": 2.5},
        {"item_residual": True},
        {"item_residual": 3, "predictor": "knn_means"},
        {"item_residual": 3, "feedback": "implicit"},
        {"item_shrinkage": -1.0},
        {"item_shrinkage": math.inf},
    ],
    ids=repr,
)
def test_bad_predictor_settings_raise_config_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        UserKNN(**kwargs)
    assert next(iter(kwargs)) in str(info.value)


@pytest.mark.parametrize("predictor", PREDICTORS)
def test_save_load_keeps_the_predictor(predictor: str) -> None:
    config = {
        "predictor": predictor,
        "baseline_reg_items": 3.0,
        "baseline_reg_users": 2.0,
        "damping": 0.25,
    }
    model = random_model(config, seed=3)
    again = reloaded(model)
    assert again.config() == model.config()
    assert everything(again) == everything(model)


def test_save_load_keeps_the_item_residual() -> None:
    config = {"item_residual": 3, "item_shrinkage": 7.5, "rank": "rating"}
    model = random_model(config, seed=4)
    again = reloaded(model)
    assert again.config() == model.config()
    assert (again.config()["item_residual"], again.config()["item_shrinkage"]) == (3, 7.5)
    assert everything(again) == everything(model)
    # and the residual is read: the predictions differ from the same ratings without it
    off = random_model({**config, "item_residual": 0}, seed=4)
    assert everything(off) != everything(model)


def test_a_file_without_the_predictor_loads_as_knn_means() -> None:
    """States saved before the keyword existed were written by the knn_means estimator (and
    have no item sums: they are summed from the cells)."""
    model = random_model({"predictor": "knn_means"}, seed=5)
    with zipfile.ZipFile(io.BytesIO(saved_bytes(model))) as old:
        members = {name: old.read(name) for name in old.namelist()}
    meta = np.load(io.BytesIO(members["meta.npy"]), allow_pickle=False)
    data = json.loads(str(meta[0]))
    for key in ("predictor", "baseline_reg_items", "baseline_reg_users", "damping"):
        del data["config"][key]
    buf = io.BytesIO()
    np.save(buf, np.array([json.dumps(data, sort_keys=True)]))
    members["meta.npy"] = buf.getvalue()
    del members["item_sum.npy"]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as new:
        for name, blob in members.items():
            new.writestr(name, blob)
    out.seek(0)
    loaded = UserKNN.load(out)
    assert loaded.predictor == "knn_means"
    assert everything(loaded) == everything(model)
    high = model.state.items.high
    np.testing.assert_array_equal(
        loaded.state.ratings.item_sum[:high], model.state.ratings.item_sum[:high]
    )


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(not dataset_available("ml-100k"), reason="ml-100k is not installed")
@pytest.mark.parametrize("predictor", PREDICTORS)
def test_predict_many_equals_predict_on_ml100k(predictor: str) -> None:
    events = dataset_events("ml-100k", limit=30_000)
    model = UserKNN(predictor=predictor)
    model.apply_many(events)
    rng = random.Random(11)
    users = rng.sample(model.users(), 25)
    items = [*model.items(), "unknown-item"]
    for user in [*users, "unknown-user"]:
        wanted = rng.sample(items, 10)
        many = model.predict_many(user, wanted)
        for item, value in zip(wanted, many, strict=True):
            assert math.isclose(value, model.predict(user, item), rel_tol=0.0, abs_tol=1e-12)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 4))
def test_both_sources_of_a_selection_agree(seed: int, k: int) -> None:
    """N(i;u) gathered from the neighbours' rows and from the items' rows: the same pairs, in
    the same order (ties at the k-th neighbour included: few rating values, small k)."""
    model = random_model({"predictor": "knn_means", "k": k}, seed=seed)
    state, settings_ = model.state, model.settings
    for u in range(state.users.high):
        if state.users.id_of[u] is None:
            continue
        nb = neighbourhood_of(state, settings_, u)
        cols = np.flatnonzero(state.item_count[: state.items.high])
        a = knn.select(state, nb, cols, k, source="users")
        b = knn.select(state, nb, cols, k, source="items")
        for field in ("rows", "colpos", "items", "values"):
            assert np.array_equal(getattr(a, field), getattr(b, field)), field


def test_the_default_similarity_is_the_predictors() -> None:
    from stream_cf.processor.settings import load_settings  # noqa: PLC0415

    assert UserKNN().config()["similarity"] == "adjusted_cosine"
    assert UserKNN(predictor="knn_means").config()["similarity"] == "pearson"
    assert UserKNN(feedback="implicit").config()["similarity"] == "cosine"
    assert UserKNN(similarity="pearson").config()["similarity"] == "pearson"
    for predictor in PREDICTORS:
        settings = load_settings(predictor=predictor)
        expected = UserKNN(predictor=predictor).config()["similarity"]
        assert settings.engine_config()["similarity"] == expected
