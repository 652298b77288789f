"""Invariants of the similarities on tiny data: symmetry, bounds, self-consistency with the
definition, min_support, shrinkage, and values that do not depend on the arrival order."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_cf.engine import UserKNN

from .reference import EXPLICIT_SIMILARITIES, Reference

USERS = [f"u{n}" for n in range(4)]
ITEMS = [f"i{n}" for n in range(6)]
VALUES = [1.0 + 0.5 * n for n in range(9)]

ratings_dicts = st.dictionaries(
    st.tuples(st.sampled_from(USERS), st.sampled_from(ITEMS)),
    st.sampled_from(VALUES),
    min_size=1,
    max_size=24,
)
SETTINGS = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


def fed(config: dict[str, Any], ratings: dict[tuple[str, str], float]) -> UserKNN:
    model = UserKNN(**config)
    for (u, i), value in ratings.items():
        model.rate(u, i, value)
    return model


@SETTINGS
@given(
    name=st.sampled_from(EXPLICIT_SIMILARITIES),
    ratings=ratings_dicts,
    order=st.randoms(use_true_random=False),
    min_support=st.integers(1, 4),
    shrinkage=st.sampled_from([0.0, 3.0]),
)
def test_symmetry_bounds_support_and_order(
    name: str,
    ratings: dict[tuple[str, str], float],
    order: Any,
    min_support: int,
    shrinkage: float,
) -> None:
    config = {"similarity": name, "min_support": min_support, "shrinkage": shrinkage}
    model = fed(config, ratings)
    shuffled = list(ratings.items())
    order.shuffle(shuffled)
    other = fed(config, dict(shuffled))
    ref = Reference(**config)
    for (u, i), value in ratings.items():
        ref.rate(u, i, value)
    users = sorted(model.users())
    for u in users:
        for v in users:
            if u == v:
                continue
            w = model.similarity(u, v)
            assert math.isclose(w, model.similarity(v, u), abs_tol=1e-12), "symmetry"
            assert math.isclose(w, other.similarity(u, v), abs_tol=1e-12), "order independence"
            assert math.isclose(w, ref.similarity(u, v), abs_tol=1e-10), "definition"
            n = ref.support(u, v)
            if n < min_support:
                assert w == 0.0, "min_support"
            if name == "msd":
                assert 0.0 <= w <= 1.0
                if n >= min_support:
                    assert w > 0.0
            else:
                assert -1.0 <= w <= 1.0
            if name == "cosine":
                assert w >= 0.0
            if shrinkage and n:
                assert abs(w) <= n / (n + shrinkage) + 1e-12


@pytest.mark.parametrize("name", EXPLICIT_SIMILARITIES)
def test_identical_users(name: str) -> None:
    """Two users with the same (non-constant) ratings are perfectly similar."""
    model = UserKNN(shrinkage=0.0, similarity=name)
    for user in ("a", "b"):
        for item, value in (("x", 1.0), ("y", 4.0), ("z", 2.5)):
            model.rate(user, item, value)
    assert model.similarity("a", "b") == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("name", ["pearson", "adjusted_cosine"])
def test_opposite_users(name: str) -> None:
    model = UserKNN(shrinkage=0.0, similarity=name)
    for item, x in (("x", 1.0), ("y", 5.0), ("z", 3.0)):
        model.rate("a", item, x)
        model.rate("b", item, 6.0 - x)
    assert model.similarity("a", "b") == pytest.approx(-1.0, abs=1e-12)


@pytest.mark.parametrize("name", ["pearson", "adjusted_cosine"])
def test_constant_ratings_give_zero_not_nan(name: str) -> None:
    model = UserKNN(shrinkage=0.0, similarity=name)
    for item, y in (("x", 1.0), ("y", 5.0), ("z", 2.0)):
        model.rate("a", item, 3.0)
        model.rate("b", item, y)
    assert model.similarity("a", "b") == 0.0


def test_no_common_item_gives_zero() -> None:
    for name in EXPLICIT_SIMILARITIES:
        model = UserKNN(shrinkage=0.0, similarity=name, min_support=0)
        model.rate("a", "x", 4.0)
        model.rate("b", "y", 4.0)
        assert model.similarity("a", "b") == 0.0, name


def test_msd_known_values() -> None:
    model = UserKNN(shrinkage=0.0, similarity="msd")
    model.rate("a", "x", 5.0)
    model.rate("a", "y", 1.0)
    model.rate("b", "x", 3.0)
    model.rate("b", "y", 1.0)
    # Σ(x − y)² / n = (4 + 0) / 2 = 2 -> 1 / 3
    assert model.similarity("a", "b") == pytest.approx(1 / 3, abs=1e-15)
    model.rate("b", "x", 5.0)
    assert model.similarity("a", "b") == 1.0
    model.unrate("b", "x")
    # only y in common, equal values
    assert model.similarity("a", "b") == 1.0
    model.unrate("b", "y")
    assert model.similarity("a", "b") == 0.0


def test_take_back_restores_the_similarity_exactly() -> None:
    model = UserKNN(shrinkage=0.0, similarity="pearson")
    for u, i, r in [("a", "x", 5.0), ("a", "y", 2.0), ("a", "z", 4.0)]:
        model.rate(u, i, r)
    for u, i, r in [("b", "x", 4.0), ("b", "y", 1.0), ("b", "z", 1.5)]:
        model.rate(u, i, r)
    before = model.similarity("a", "b")
    model.rate("b", "w", 3.0)
    model.rate("a", "w", 1.0)
    model.rate("a", "x", 1.0)
    model.unrate("a", "w")
    model.rate("a", "x", 5.0)
    model.unrate("b", "w")
    assert model.similarity("a", "b") == before


def test_implicit_cosine_uses_the_full_vectors() -> None:
    model = UserKNN(feedback="implicit", similarity="cosine")
    model.purchase("a", "x", 1.0)
    model.purchase("a", "y", 2.0)
    model.purchase("b", "x", 3.0)
    model.purchase("b", "z", 4.0)
    # common: x -> 1·3 = 3; norms sqrt(1 + 4) · sqrt(9 + 16) = sqrt(5)·5
    assert model.similarity("a", "b") == pytest.approx(3 / (5 * math.sqrt(5)), abs=1e-15)
    model.purchase("a", "x", 1.0)  # accumulates to 2
    assert model.user_items("a")["x"] == 2.0
    assert model.similarity("a", "b") == pytest.approx(6 / (math.sqrt(8) * 5), abs=1e-15)


def test_implicit_cap_and_type_weights() -> None:
    model = UserKNN(
        feedback="implicit",
        similarity="cosine",
        implicit_weights={"purchase": 2.0, "rating": 0.5},
        implicit_cap=5.0,
    )
    model.purchase("a", "x", 1.0)
    assert model.user_items("a")["x"] == 2.0
    model.purchase("a", "x", 2.0)
    assert model.user_items("a")["x"] == 5.0  # 2 + 4 = 6, capped at 5
    model.purchase("a", "x", 1.0)
    assert model.user_items("a")["x"] == 5.0


def test_negative_min_similarity_ignores_zero_similarities() -> None:
    """A user with w = 0 (nothing in common) is no neighbour even when min_similarity < 0: it would
    take one of the k places and count toward min_k while adding nothing (and 0/0 alone)."""
    model = UserKNN(predictor="knn_means", similarity="pearson", min_similarity=-0.5)
    model.rate("u", "x", 3.0)
    model.rate("u", "y", 4.0)
    model.rate("v", "z", 5.0)
    model.rate("v", "w", 2.0)
    assert model.similarity("u", "v") == 0.0
    assert model.predict("u", "z") == 3.5
    assert model.explain("u", "z").fallback is not None
    recs = model.recommendations("u", 5)
    assert recs.fallback is not None
    assert all(math.isfinite(score) for _, score in recs.items)
    # a negative neighbour above the threshold is used
    model.rate("t", "x", 5.0)
    model.rate("t", "y", 1.0)
    model.rate("t", "z", 4.0)
    assert model.similarity("u", "t") == pytest.approx(-1.0, abs=1e-12)
    explanation = model.explain("u", "z")
    assert [nb.user for nb in explanation.neighbours] == []  # -1 < -0.5: not usable
    model2 = UserKNN(predictor="knn_means", similarity="pearson", min_similarity=-1.5, k=1)
    for row in [("u", "x", 3.0), ("u", "y", 4.0), ("v", "z", 5.0), ("v", "w", 2.0)]:
        model2.rate(*row)
    for row in [("t", "x", 5.0), ("t", "y", 1.0), ("t", "z", 4.0)]:
        model2.rate(*row)
    # v rated z first but has w = 0; the only neighbour is t (w = -1): 3.5 + (4 - 10/3)·(-1)/1
    assert [nb.user for nb in model2.explain("u", "z").neighbours] == ["t"]
    assert model2.predict("u", "z") == pytest.approx(3.5 - 2 / 3, abs=1e-12)


@pytest.mark.parametrize("name", EXPLICIT_SIMILARITIES)
def test_self_similarity(name: str) -> None:
    """similarity(u, u) is 1 for a known user (as Surprise's diagonal), 0 for an unknown one; a
    user is never their own neighbour (predicting an item they rated uses the others)."""
    model = UserKNN(shrinkage=0.0, similarity=name, min_similarity=None)
    for item, value in (("x", 3.0), ("y", 3.0)):
        model.rate("a", item, value)  # constant ratings: pearson with anyone is 0
    model.rate("b", "x", 4.0)
    model.rate("b", "y", 2.0)
    assert model.similarity("a", "a") == 1.0
    assert model.similarity("ghost", "ghost") == 0.0
    assert model.similarity("a", "ghost") == 0.0
    assert "a" not in {nb.user for nb in model.explain("a", "x").neighbours}
