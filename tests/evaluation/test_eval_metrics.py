"""Metrics, baselines and the progress bar on tiny hand-made data, plus a from-scratch oracle."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_cf.evaluation.baselines import MeanBaselines, Popularity, RunningMean
from stream_cf.evaluation.metrics import Coverage, ErrorStats, RankingMetrics, rank_of


def test_error_stats_by_hand() -> None:
    stats = ErrorStats()
    assert math.isnan(stats.mae) and math.isnan(stats.rmse)
    for pred, truth in [(3.0, 4.0), (5.0, 3.0), (2.5, 2.5)]:
        stats.update(pred, truth)
    assert math.isclose(stats.mae, (1 + 2 + 0) / 3)
    assert math.isclose(stats.rmse, math.sqrt((1 + 4 + 0) / 3))


def test_ranking_by_hand() -> None:
    metrics = RankingMetrics(3)
    assert rank_of("b", ["a", "b", "c"], 3) == 1
    assert rank_of("d", ["a", "b", "c", "d"], 3) is None
    assert metrics.update("a", ["a", "b", "c", "d"]) == 0
    assert metrics.update("c", ["x", "y", "c"]) == 2
    assert metrics.update("d", ["a", "b", "c", "d"]) is None  # 4th is past the top 3
    assert metrics.stats.n == 3
    assert math.isclose(metrics.stats.hit_rate, 2 / 3)
    assert math.isclose(metrics.stats.ndcg, (1.0 + 1.0 / math.log2(4)) / 3)
    assert metrics.coverage.shown == {"a", "b", "c", "x", "y"}
    assert math.isclose(metrics.coverage.value(10), 0.5)
    assert math.isnan(Coverage().value(0))


def test_running_mean_revert_to_empty() -> None:
    mean = RunningMean()
    mean.update(0.1)
    mean.update(0.2)
    mean.revert(0.1)
    mean.revert(0.2)
    assert mean.n == 0 and mean.total == 0.0 and mean.get(7.0) == 7.0


def test_mean_baselines_fallbacks() -> None:
    means = MeanBaselines((1.0, 5.0))
    assert means.predict("global_mean", "u", "i") == 3.0  # empty: midpoint of the scale
    assert means.predict("user_mean", "u", "i") == 3.0
    means.rate("u", "i", 5.0)
    means.rate("v", "j", 1.0)
    assert means.predict("user_mean", "w", "i") == 3.0  # unknown user -> global mean
    assert means.predict("item_mean", "u", "k") == 3.0  # unknown item -> global mean
    assert means.predict("user_mean", "u", "k") == 5.0
    assert means.predict("item_mean", "w", "j") == 1.0


def test_popularity_ties_and_exclusion() -> None:
    pop = Popularity()
    for user, item in [("u", "a"), ("v", "b"), ("w", "b"), ("u", "c"), ("u", "a")]:
        pop.add(user, item)
    assert pop.count("a") == 1  # a repeat by the same user counts once
    assert pop.recommend("z", 10) == ["b", "a", "c"]  # b most; a before c (first appearance)
    assert pop.recommend("u", 10) == ["b"]
    assert pop.recommend("z", 2) == ["b", "a"]
    pop.forget_user("v")
    pop.forget_user("w")
    assert pop.recommend("z", 10) == ["a", "c"]  # b has no holder left


ops = st.lists(
    st.tuples(
        st.sampled_from(["rate", "rate", "rate", "unrate", "forget"]),
        st.sampled_from(["u1", "u2", "u3"]),
        st.sampled_from(["i1", "i2", "i3", "i4"]),
        st.integers(1, 5),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(ops)
def test_baselines_oracle(sequence: list[tuple[str, str, str, int]]) -> None:
    """After every operation, the running baselines equal a from-scratch computation."""
    means = MeanBaselines((1.0, 5.0))
    pop = Popularity()
    current: dict[tuple[str, str], float] = {}
    first_seen: list[str] = []
    for op, user, item, value in sequence:
        if op == "rate":
            means.rate(user, item, float(value))
            pop.add(user, item)
            current[(user, item)] = float(value)
            if item not in first_seen:
                first_seen.append(item)
        elif op == "unrate":
            means.unrate(user, item)
            pop.remove(user, item)
            current.pop((user, item), None)
        else:
            means.forget_user(user)
            pop.forget_user(user)
            for key in [key for key in current if key[0] == user]:
                del current[key]
        values = list(current.values())
        mu = sum(values) / len(values) if values else 3.0
        assert math.isclose(means.predict("global_mean", "x", "y"), mu, abs_tol=1e-10)
        for u in ("u1", "u2", "u3", "new"):
            own = [v for (uu, _), v in current.items() if uu == u]
            expected = sum(own) / len(own) if own else mu
            assert math.isclose(means.predict("user_mean", u, "y"), expected, abs_tol=1e-10)
        counts: dict[str, int] = {}
        for i in ("i1", "i2", "i3", "i4", "new"):
            own = [v for (_, ii), v in current.items() if ii == i]
            expected = sum(own) / len(own) if own else mu
            assert math.isclose(means.predict("item_mean", "x", i), expected, abs_tol=1e-10)
            counts[i] = len(own)
        ranked = sorted(
            (i for i in first_seen if counts[i] > 0),
            key=lambda i: (-counts[i], first_seen.index(i)),
        )
        assert pop.recommend("nobody", 10) == ranked
        held = {i for (u, i) in current if u == "u1"}
        assert pop.recommend("u1", 2) == [i for i in ranked if i not in held][:2]
