"""The worked example, computed by hand.

Ratings (rows users 0-4, columns items 0-3, "-" unrated), fed row by row, left to right:

    user 0:  5  3  -  1        mean r̄_0 = 9/3  = 3
    user 1:  4  -  -  1        mean r̄_1 = 5/2  = 2.5
    user 2:  1  1  -  5        mean r̄_2 = 7/3
    user 3:  1  -  -  4        mean r̄_3 = 5/2  = 2.5
    user 4:  -  1  5  4        mean r̄_4 = 10/3

Pearson (as Surprise), min_support 1, over the co-rated items:
num = Σxy − n·x̄·ȳ, den = sqrt(Σx² − n·x̄²) · sqrt(Σy² − n·ȳ²).

Similarities of user 0:
    0-1 on items {0, 3}: x = (5, 1), y = (4, 1); x̄ = 3, ȳ = 2.5
        num = 21 − 2·3·2.5 = 6; den = sqrt(26 − 18) · sqrt(17 − 12.5) = sqrt(8 · 4.5) = 6 -> +1
    0-2 on items {0, 1, 3}: x = (5, 3, 1), y = (1, 1, 5); x̄ = 3, ȳ = 7/3
        num = 13 − 3·3·7/3 = −8; den = sqrt(35 − 27) · sqrt(27 − 49/3) = sqrt(8 · 32/3)
            = 16/sqrt(3) -> −8·sqrt(3)/16 = −sqrt(3)/2 ≈ −0.8660
    0-3 on items {0, 3}: x = (5, 1), y = (1, 4); x̄ = 3, ȳ = 2.5
        num = 9 − 15 = −6; den = sqrt(8) · sqrt(17 − 12.5) = 6 -> −1
    0-4 on items {1, 3}: x = (3, 1), y = (1, 4); x̄ = 2, ȳ = 2.5
        num = 7 − 2·2·2.5 = −3; den = sqrt(10 − 8) · sqrt(17 − 12.5) = sqrt(9) = 3 -> −1

Prediction of user 0 for item 2 (k = 40, min_k = 1). Item 2 has one rater, user 4 (r = 5, w = −1):
    min_similarity 0.0: only w > 0 is usable; user 4 is not, 0 < min_k -> the mean of user 0 = 3
    min_similarity None: every w ≠ 0; r̂ = 3 + (5 − 10/3)·(−1) / |−1| = 3 − 5/3 = 4/3 ≈ 1.3333,
        inside [1, 5], so no clipping.

A second one, user 1 for item 1 (raters: user 0 = 3, user 2 = 1, user 4 = 1):
    1-0 = +1 (above, symmetric)
    1-2 on items {0, 3}: x = (4, 1), y = (1, 5); x̄ = 2.5, ȳ = 3
        num = 9 − 2·2.5·3 = −6; den = sqrt(17 − 12.5) · sqrt(26 − 18) = 6 -> −1
    1-4 on item {3}: x = (1), y = (4); num = 4 − 4 = 0, den = 0 -> 0
    min_similarity 0.0: user 0 only; r̂ = 2.5 + (3 − 3)·1/1 = 2.5
    min_similarity None: users 0 (w = 1) and 2 (w = −1), user 4 has w = 0 and is left out;
        r̂ = 2.5 + [(3 − 3)·1 + (1 − 7/3)·(−1)] / (1 + 1) = 2.5 + (4/3)/2 = 2.5 + 2/3 = 19/6
"""

from __future__ import annotations

import math

import pytest

from stream_cf.engine import UserKNN

MATRIX = [
    [5, 3, None, 1],
    [4, None, None, 1],
    [1, 1, None, 5],
    [1, None, None, 4],
    [None, 1, 5, 4],
]
EXACT = 1e-12


def build(min_similarity: float | None) -> UserKNN:
    model = UserKNN(
        similarity="pearson",
        k=40,
        min_k=1,
        min_support=1,
        min_similarity=min_similarity,
        predictor="knn_means",  # the worked example is KNNWithMeans'
    )
    for u, row in enumerate(MATRIX):
        for i, value in enumerate(row):
            if value is not None:
                model.rate(str(u), str(i), float(value))
    return model


@pytest.mark.parametrize("min_similarity", [0.0, None])
def test_similarities_of_user_0(min_similarity: float | None) -> None:
    model = build(min_similarity)
    expected = {"1": 1.0, "2": -math.sqrt(3) / 2, "3": -1.0, "4": -1.0}
    for v, w in expected.items():
        assert model.similarity("0", v) == pytest.approx(w, abs=EXACT)
        assert model.similarity(v, "0") == pytest.approx(w, abs=EXACT)
    assert model.similarity("1", "2") == pytest.approx(-1.0, abs=EXACT)
    assert model.similarity("1", "4") == 0.0
    assert model.mean("0") == 3.0
    assert model.mean("4") == pytest.approx(10 / 3, abs=EXACT)


def test_user_0_item_2_min_similarity_zero_falls_back_to_the_mean() -> None:
    model = build(0.0)
    assert model.predict("0", "2") == pytest.approx(3.0, abs=EXACT)
    explanation = model.explain("0", "2")
    assert explanation.fallback is not None
    assert explanation.estimate == pytest.approx(3.0, abs=EXACT)


def test_user_0_item_2_min_similarity_none_uses_the_negative_neighbour() -> None:
    model = build(None)
    assert model.predict("0", "2") == pytest.approx(4 / 3, abs=EXACT)
    explanation = model.explain("0", "2")
    assert explanation.fallback is None
    assert [nb.user for nb in explanation.neighbours] == ["4"]
    (nb,) = explanation.neighbours
    assert nb.similarity == pytest.approx(-1.0, abs=EXACT)
    assert nb.weight == pytest.approx(-1.0, abs=EXACT)
    assert nb.rating == 5.0
    assert nb.neighbour_mean == pytest.approx(10 / 3, abs=EXACT)


@pytest.mark.parametrize(("min_similarity", "expected"), [(0.0, 2.5), (None, 19 / 6)])
def test_user_1_item_1(min_similarity: float | None, expected: float) -> None:
    model = build(min_similarity)
    assert model.predict("1", "1") == pytest.approx(expected, abs=EXACT)
    users = [nb.user for nb in model.explain("1", "1").neighbours]
    assert users == (["0"] if min_similarity == 0.0 else ["0", "2"])


# Implicit feedback, by hand (the lead's decision: N_k(u) = the k nearest neighbours of u, the
# score Σ_{v∈N_k(u), v has i} w_uv·r_vi / Σ_{v∈N_k(u)} |w_uv|). Purchases (weights):
#     a: x = 1, y = 2          |a| = sqrt(5)
#     b: x = 3, z = 4          |b| = 5
#     c: y = 1, z = 1, w = 2   |c| = sqrt(6)
#     d: q = 5                 |d| = 5
# cos(a, b) = 1·3 / (sqrt(5)·5) = 3 / (5·sqrt(5)) ≈ 0.2683
# cos(a, c) = 2·1 / (sqrt(5)·sqrt(6)) = 2 / sqrt(30) ≈ 0.3651
# cos(a, d) = 0 (nothing in common): never a neighbour
# k = 2: N_2(a) = [c, b], Σ|w| = s_c + s_b ≈ 0.6335
#     z: (s_b·4 + s_c·1) / (s_b + s_c) ≈ (1.0733 + 0.3651) / 0.6335 ≈ 2.2707
#     w: (s_c·2) / (s_b + s_c) ≈ 0.7303 / 0.6335 ≈ 1.1528   (b has no w, but counts below)
#     q: nobody in N_2(a) has it -> not a candidate; recommend(a) = [z, w]
# k = 1: N_1(a) = [c]: z -> 1·s_c / s_c = 1, w -> 2; recommend(a) = [w, z]
S_B = 3 / (5 * math.sqrt(5))
S_C = 2 / math.sqrt(30)


def implicit_example(k: int) -> UserKNN:
    model = UserKNN(rank="rating", feedback="implicit", similarity="cosine", k=k)
    for user, item, quantity in [
        ("a", "x", 1.0),
        ("a", "y", 2.0),
        ("b", "x", 3.0),
        ("b", "z", 4.0),
        ("c", "y", 1.0),
        ("c", "z", 1.0),
        ("c", "w", 2.0),
        ("d", "q", 5.0),
    ]:
        model.purchase(user, item, quantity)
    return model


def test_implicit_by_hand_k2() -> None:
    model = implicit_example(2)
    assert model.similarity("a", "b") == pytest.approx(S_B, abs=EXACT)
    assert model.similarity("a", "c") == pytest.approx(S_C, abs=EXACT)
    assert model.similarity("a", "d") == 0.0
    z = (4 * S_B + S_C) / (S_B + S_C)
    w = 2 * S_C / (S_B + S_C)
    assert model.predict("a", "z") == pytest.approx(z, abs=EXACT)
    assert model.predict("a", "w") == pytest.approx(w, abs=EXACT)
    recs = model.recommend("a", 10)
    assert [item for item, _ in recs] == ["z", "w"]
    assert recs[0][1] == pytest.approx(z, abs=EXACT)
    assert recs[1][1] == pytest.approx(w, abs=EXACT)


def test_implicit_by_hand_k1() -> None:
    model = implicit_example(1)
    assert model.predict("a", "z") == pytest.approx(1.0, abs=EXACT)
    assert model.predict("a", "w") == pytest.approx(2.0, abs=EXACT)
    assert [item for item, _ in model.recommend("a", 10)] == ["w", "z"]
