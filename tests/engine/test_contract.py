"""One contract suite, run against every model variant (the four similarities in explicit mode,
and implicit feedback): what any UserKNN must do whatever its formula."""

from __future__ import annotations

import random
from typing import Any

import pytest

from stream_cf.engine import UserKNN

TOL = 1e-9
N_USERS = 30
N_ITEMS = 40

MEANS = {"predictor": "knn_means"}
VARIANTS: dict[str, dict[str, Any]] = {
    "cosine": {"rank": "rating", "similarity": "cosine", "k": 5, **MEANS},
    "msd": {"rank": "rating", "similarity": "msd", "k": 5, "min_k": 2, **MEANS},
    "pearson": {
        "rank": "rating",
        "similarity": "pearson",
        "k": 5,
        "min_similarity": None,
        **MEANS,
    },
    "adjusted_cosine": {
        "rank": "rating",
        "similarity": "adjusted_cosine",
        "k": 8,
        "shrinkage": 2.0,
        **MEANS,
    },
    "implicit": {"rank": "rating", "feedback": "implicit", "k": 5, "implicit_cap": 6.0},
    "baseline_pearson": {"rank": "rating", "similarity": "pearson", "k": 5},
    "baseline_msd": {
        "rank": "rating",
        "similarity": "msd",
        "k": 5,
        "min_k": 2,
        "min_similarity": None,
    },
    "baseline_item_residual": {
        "rank": "rating",
        "k": 5,
        "min_k": 2,
        "item_residual": 4,
        "item_shrinkage": 5.0,
    },
    "vote": {"rank": "vote", "rank_neighbours": 6},
    "item": {"rank": "item", "rank_half_life": 3.0},
    "vote-implicit": {"feedback": "implicit", "rank_exponent": 1.0, "rank_damping": 0.0},
    "vote-implicit-seen": {"feedback": "implicit", "include_seen": True},
    "vote-implicit-alike": {"feedback": "implicit", "rank_neighbour_recency": "none"},
    "vote-latest": {
        "rank": "vote",
        "rank_neighbour_recency": "latest",
        "rank_neighbour_half_life": 2.0,
    },
    "vote-shared": {"rank": "vote", "rank_neighbour_recency": "shared"},
    "vote-rarity": {"rank": "vote", "rank_rarity": 1.0},
}


def build(config: dict[str, Any], seed: int = 7) -> UserKNN:
    """A deterministic small stream: ratings, re-ratings, take-backs and one erasure."""
    rng = random.Random(seed)
    model = UserKNN(**config)
    implicit = config.get("feedback") == "implicit"
    for _ in range(400):
        user = f"u{rng.randrange(N_USERS)}"
        # a skewed item distribution, so that popularity has a shape
        item = f"i{min(rng.randrange(N_ITEMS), rng.randrange(N_ITEMS))}"
        if implicit:
            model.purchase(user, item, float(rng.choice([1, 1, 2, 3])))
        else:
            model.rate(user, item, float(rng.randint(1, 5)))
    for user in sorted(model.users())[:5]:
        first = sorted(model.user_items(user))[0]
        model.unrate(user, first)
    model.forget_user("u3")
    return model


@pytest.fixture(scope="module", params=sorted(VARIANTS), ids=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest) -> tuple[dict[str, Any], UserKNN]:
    config = VARIANTS[request.param]
    return config, build(config)


def all_users(model: UserKNN) -> list[str]:
    return [*sorted(model.users()), "u3", "nobody"]


@pytest.mark.parametrize("n", [1, 5, 10, 100])
def test_recommend_is_a_valid_top_n(variant: tuple[dict[str, Any], UserKNN], n: int) -> None:
    config, model = variant
    for user in all_users(model):
        recs = model.recommend(user, n)
        ids = [item for item, _ in recs]
        assert len(recs) <= n
        assert len(ids) == len(set(ids)), recs
        owned = model.user_items(user) if model.has_user(user) else {}
        if not config.get("include_seen"):
            assert not set(ids) & set(owned), (user, recs)
        assert all(model.has_item(item) for item in ids)
        scores = [score for _, score in recs]
        assert scores == sorted(scores, reverse=True), (user, recs)


def test_recommend_n_zero_is_empty(variant: tuple[dict[str, Any], UserKNN]) -> None:
    _config, model = variant
    assert model.recommend(sorted(model.users())[0], 0) == []
    assert model.recommend("nobody", 0) == []


def test_recommend_is_deterministic(variant: tuple[dict[str, Any], UserKNN]) -> None:
    config, model = variant
    again = build(config)
    for user in all_users(model):
        assert again.recommend(user, 10) == model.recommend(user, 10)
        assert again.recommendations(user, 10) == model.recommendations(user, 10)
        # and reading does not change anything
        assert model.recommend(user, 10) == model.recommend(user, 10)


def test_recommend_many_equals_recommend_per_user(
    variant: tuple[dict[str, Any], UserKNN],
) -> None:
    _config, model = variant
    users = all_users(model)
    many = model.recommend_many(users, 7)
    assert set(many) == set(users)
    for user in users:
        assert many[user] == model.recommendations(user, 7)
        assert list(many[user].items) == model.recommend(user, 7)


def test_unknown_user_gets_popularity(variant: tuple[dict[str, Any], UserKNN]) -> None:
    _config, model = variant
    recs = model.recommendations("nobody", 5)
    assert recs.fallback is not None
    counts = {item: len(model.raters(item)) for item in model.items()}
    assert [score for _, score in recs.items] == sorted(counts.values(), reverse=True)[:5]
    for item, score in recs.items:
        assert score == counts[item]


def test_the_scores_are_the_predictions(variant: tuple[dict[str, Any], UserKNN]) -> None:
    config, model = variant
    if config.get("rank", "vote") != "rating":
        pytest.skip("vote and item lists carry their rank score (tests/engine/test_ranking.py)")
    for user in sorted(model.users()):
        recs = model.recommendations(user, 10)
        if recs.fallback is not None:
            continue
        for item, score in recs.items:
            assert score == pytest.approx(model.predict(user, item), abs=TOL)
            assert model.explain(user, item).fallback is None


def test_explain_reproduces_predict(variant: tuple[dict[str, Any], UserKNN]) -> None:
    config, model = variant
    implicit = config.get("feedback") == "implicit"
    k = config.get("k", 40)
    min_k = config.get("min_k", 1)
    low, high = config.get("rating_scale", (1.0, 5.0))
    items = sorted(model.items())
    used = 0
    for user in [*sorted(model.users()), "nobody"]:
        for item in [*items, "no-such-item"]:
            exp = model.explain(user, item)
            assert exp.user == user
            assert exp.item == item
            assert exp.estimate == pytest.approx(model.predict(user, item), abs=TOL)
            if exp.fallback is not None:
                continue
            used += 1
            assert model.has_user(user)
            assert model.has_item(item)
            if not implicit:
                assert exp.user_mean == pytest.approx(model.mean(user), abs=TOL)
            nbs = exp.neighbours
            assert len(nbs) <= k
            if implicit:
                # the neighbours of N_k(u) who have the item; weight = w / Σ_{N_k(u)} |w|
                assert nbs
                ratios = {round(nb.weight / nb.similarity, 12) for nb in nbs}
                assert len(ratios) == 1
                assert next(iter(ratios)) > 0
                for nb in nbs:
                    assert nb.similarity == pytest.approx(model.similarity(user, nb.user), abs=TOL)
                    assert nb.rating == pytest.approx(model.user_items(nb.user)[item], abs=TOL)
                assert exp.estimate == pytest.approx(sum(nb.weight * nb.rating for nb in nbs))
                continue
            item_nbs = exp.item_neighbours
            assert min_k <= len(nbs) + len(item_nbs)
            assert len(item_nbs) <= config.get("item_residual", 0)
            assert len({nb.user for nb in nbs}) == len(nbs)
            assert user not in {nb.user for nb in nbs}
            raters = set(model.raters(item))
            total = sum(abs(nb.similarity) for nb in nbs)
            if exp.baseline is not None:  # knn_baseline: damped, around b_vi
                total += model.damping + sum(it.similarity for it in item_nbs)
            mine = model.user_items(user)
            for it in item_nbs:  # the user's own items, most similar to the item first
                assert it.item != item
                assert it.rating == mine[it.item]
                assert 0.0 < it.similarity <= 1.0
                assert it.weight == pytest.approx(it.similarity / total, abs=TOL)
            sims = [it.similarity for it in item_nbs]
            assert sims == sorted(sims, reverse=True)
            for nb in nbs:
                assert nb.user in raters
                assert nb.similarity == pytest.approx(model.similarity(user, nb.user), abs=TOL)
                assert nb.similarity != 0
                if config.get("min_similarity", 0.0) == 0.0:
                    assert nb.similarity > 0
                assert nb.weight == pytest.approx(nb.similarity / total, abs=TOL)
                assert nb.rating == pytest.approx(model.user_items(nb.user)[item], abs=TOL)
                if not implicit:
                    assert nb.neighbour_mean == pytest.approx(model.mean(nb.user), abs=TOL)
            # the neighbours are the best ones: nobody left out is more similar
            chosen = {nb.user for nb in nbs}
            worst = min((nb.similarity for nb in nbs), default=0.0)  # none: nobody usable
            for other in raters - chosen - {user}:
                left_out = model.similarity(user, other)
                assert left_out <= worst + TOL or left_out == 0.0
            if exp.baseline is None:
                est = exp.user_mean + sum(nb.weight * (nb.rating - nb.neighbour_mean) for nb in nbs)
            else:
                est = exp.baseline.value + sum(
                    nb.weight * (nb.rating - (nb.neighbour_baseline or 0.0)) for nb in nbs
                )
                est += sum(it.weight * (it.rating - it.baseline) for it in item_nbs)
            est = min(max(est, low), high)
            assert exp.estimate == pytest.approx(est, abs=TOL)
    assert used > 50


def test_explain_fallbacks_say_why(variant: tuple[dict[str, Any], UserKNN]) -> None:
    _config, model = variant
    user = sorted(model.users())[0]
    item = sorted(model.items())[0]
    for who, what in [("nobody", item), (user, "no-such-item"), ("nobody", "no-such-item")]:
        exp = model.explain(who, what)
        assert exp.fallback
        assert exp.neighbours == []
        assert exp.estimate == pytest.approx(model.predict(who, what), abs=TOL)


def test_similarity_is_symmetric_and_bounded(variant: tuple[dict[str, Any], UserKNN]) -> None:
    config, model = variant
    users = sorted(model.users())
    for u in users:
        for v in users:
            if u == v:
                continue
            w = model.similarity(u, v)
            assert w == pytest.approx(model.similarity(v, u), abs=1e-12)
            if config.get("similarity") == "msd" and config.get("feedback") != "implicit":
                assert 0.0 <= w <= 1.0
            else:
                assert -1.0 - 1e-12 <= w <= 1.0 + 1e-12
            if config.get("feedback") == "implicit" or config.get("similarity") == "cosine":
                assert w >= 0.0  # positive values only


def test_config_round_trips(variant: tuple[dict[str, Any], UserKNN]) -> None:
    config, model = variant
    got = model.config()
    for key, value in config.items():
        assert got[key] == value
    clone = UserKNN(**got)
    assert clone.config() == got


def test_reads_hand_out_copies(variant: tuple[dict[str, Any], UserKNN]) -> None:
    """Mutating what a read returned leaves the model as it was."""
    config, model = variant
    user = sorted(model.users())[0]
    item = sorted(model.items())[0]
    before = (model.user_items(user), model.raters(item), model.recommend(user, 5), model.config())
    model.user_items(user)["injected"] = 1.0
    model.raters(item).append("injected")
    model.users().append("injected")
    model.items().append("injected")
    model.recommend(user, 5).clear()
    model.config()["implicit_weights"]["purchase"] = 99.0
    model.recommendations(user, 5).items.clear()
    after = (model.user_items(user), model.raters(item), model.recommend(user, 5), model.config())
    assert after == before
    assert not model.has_user("injected")
    assert not model.has_item("injected")
    assert model.config() == {**model.config(), **config}
