"""Oracle tests: every figure the evaluation reports equals a plain recomputation.

The stream is generated (seeded): a few users rating a few items with integer ratings, some pairs
rated twice (so the ranking sees repeats). ``eval_reference`` recomputes every figure from scratch
with loops and dicts; the evaluation runs once with a plain model (checks the loop's bookkeeping
alone) and once with the real engine (checks the engine's predictions and lists too).
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from eval_reference import (
    PlainKNN,
    assert_same,
    generated_stream,
    reference_prequential,
    reference_split,
)

from stream_cf.evaluation import EvaluationResult, prequential, split_evaluate
from stream_cf.events import Event, ForgetUserEvent, RatingEvent, UnrateEvent


def figures_of(result: EvaluationResult) -> dict[str, Any]:
    """The reported figures, in the reference's shape, from the JSON object."""
    data = result.to_json()
    keep = (
        "rmse",
        "mae",
        "warm_rmse",
        "warm_mae",
        "hit_rate_at_10",
        "ndcg_at_10",
        "coverage_at_10",
    )
    out: dict[str, Any] = {key: data[key] for key in keep}
    out["baselines"] = {
        name: {key: figs[key] for key in keep} for name, figs in data["baselines"].items()
    }
    for key in result.counts:
        out[key] = data[key]
    out["catalogue_size"] = data["catalogue_size"]
    for key in ("train_events", "test_events"):
        if key in data:
            out[key] = data[key]
    return out


def engine_model() -> Any:
    engine = pytest.importorskip("stream_cf.engine")
    return engine.UserKNN(
        rank="rating", similarity="msd", k=100, min_k=1, min_similarity=0.0, predictor="knn_means"
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("make_model", [PlainKNN, engine_model], ids=["plain", "engine"])
def test_prequential_matches_reference(seed: int, make_model: Any) -> None:
    events = generated_stream(seed)
    want = reference_prequential(events, rank_sample=0.4, seed=seed)
    result = prequential(events, make_model(), rank_sample=0.4, seed=seed)
    assert result.events == len(events)
    assert want["ranked"] > 20 and want["ranking_repeats"] > 0 and want["new_item"] > 0
    assert_same(figures_of(result), want)
    # the trace's last point is the final figures
    assert result.trace["events"][-1] == len(events)
    assert math.isclose(result.trace["model.rmse"][-1], want["rmse"])
    assert math.isclose(
        result.trace["popularity.hit_rate"][-1], want["baselines"]["popularity"]["hit_rate_at_10"]
    )


@pytest.mark.parametrize("seed", [4, 5])
@pytest.mark.parametrize("make_model", [PlainKNN, engine_model], ids=["plain", "engine"])
def test_split_matches_reference(seed: int, make_model: Any) -> None:
    events = generated_stream(seed)
    want = reference_split(events, train_fraction=0.8, rank_sample=1.0, seed=seed)
    result = split_evaluate(events, make_model(), train_fraction=0.8, rank_sample=1.0, seed=seed)
    assert want["ranked"] > 10 and want["rated"] == 60
    assert_same(figures_of(result), want)


def test_no_ranking_sample_reports_no_ranking() -> None:
    events = generated_stream(6, n_events=60)
    result = prequential(events, PlainKNN(), rank_sample=0.0)
    data = result.to_json()
    assert data["ranked"] == 0
    assert data["hit_rate_at_10"] is None and data["coverage_at_10"] is None
    assert data["baselines"]["popularity"]["hit_rate_at_10"] is None
    assert data["rmse"] is not None and data["baselines"]["global_mean"]["rmse"] is not None


def with_takebacks(events: list[Event], seed: int) -> list[Event]:
    """The stream with unrates (some of pairs never rated: refused) and forget_user inserted."""
    rng = random.Random(seed)
    out: list[Event] = []
    rated: list[tuple[str, str]] = []
    for e in events:
        out.append(e)
        if isinstance(e, RatingEvent):
            rated.append((e.user_id, e.item_id))
        roll = rng.random()
        if roll < 0.08 and rated:
            user, item = rated[rng.randrange(len(rated))]
            out.append(UnrateEvent(user_id=user, item_id=item))
        elif roll < 0.10:
            out.append(UnrateEvent(user_id="u0", item_id="never-rated"))
        elif roll < 0.115 and rated:
            out.append(ForgetUserEvent(user_id=rated[rng.randrange(len(rated))][0]))
    return out


@pytest.mark.parametrize("seed", [11, 12])
@pytest.mark.parametrize("make_model", [PlainKNN, engine_model], ids=["plain", "engine"])
def test_prequential_with_unrate_and_forget(seed: int, make_model: Any) -> None:
    """Take-backs move the model and the baselines alike; refused events are counted."""
    events = with_takebacks(generated_stream(seed), seed)
    want = reference_prequential(events, rank_sample=0.3, seed=seed)
    assert want["rejected"] > 0
    result = prequential(events, make_model(), rank_sample=0.3, seed=seed)
    assert result.events == len(events)
    assert_same(figures_of(result), want)
