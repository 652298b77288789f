"""The reference itself checked against Surprise's KNNWithMeans on small random data, so that the
oracle tests rest on something independently confirmed (min_similarity 0.0, no shrinkage, a
stream of first ratings only, where Surprise's semantics and the engine's promise coincide)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .reference import Reference

surprise = pytest.importorskip("surprise")

USERS = [f"u{n}" for n in range(6)]
ITEMS = [f"i{n}" for n in range(6)]


def trainset(rows: list[tuple[str, str, float]]) -> Any:
    """Surprise's Trainset from rows, in order (what Dataset.construct_trainset does)."""
    users: dict[str, int] = {}
    items: dict[str, int] = {}
    ur: dict[int, list[tuple[int, float]]] = defaultdict(list)
    ir: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for user, item, value in rows:
        u = users.setdefault(user, len(users))
        i = items.setdefault(item, len(items))
        ur[u].append((i, value))
        ir[i].append((u, value))
    return surprise.Trainset(ur, ir, len(users), len(items), len(rows), (1, 5), users, items)


@settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    name=st.sampled_from(["cosine", "msd", "pearson"]),
    ratings=st.dictionaries(
        st.tuples(st.sampled_from(USERS), st.sampled_from(ITEMS)),
        st.integers(1, 5).map(float),
        min_size=1,
        max_size=30,
    ),
    k=st.integers(1, 4),
    min_k=st.integers(1, 3),
    min_support=st.integers(1, 3),
)
def test_reference_agrees_with_surprise(
    name: str, ratings: dict[tuple[str, str], float], k: int, min_k: int, min_support: int
) -> None:
    rows = [(u, i, v) for (u, i), v in ratings.items()]
    algo = surprise.KNNWithMeans(
        k=k,
        min_k=min_k,
        sim_options={"name": name, "user_based": True, "min_support": min_support},
        verbose=False,
    )
    algo.fit(trainset(rows))
    ref = Reference(
        similarity=name, k=k, min_k=min_k, min_support=min_support, predictor="knn_means"
    )
    for row in rows:
        ref.rate(*row)
    for u in ref.users():
        assert ref.mean(u) == pytest.approx(algo.means[algo.trainset.to_inner_uid(u)], abs=1e-12)
        for v in ref.users():
            if u != v:
                want = algo.sim[algo.trainset.to_inner_uid(u), algo.trainset.to_inner_uid(v)]
                assert ref.similarity(u, v) == pytest.approx(want, abs=1e-12), (u, v)
        for item in ref.items():
            if (u, item) in ratings:
                continue  # Surprise counts the user as its own neighbour (similarity 1)
            if ref.boundary_tied(u, item):
                continue  # exact ties at the k-th place: Surprise's float order decides
            est = algo.predict(u, item).est
            assert ref.predict(u, item) == pytest.approx(est, abs=1e-12), (u, item)
