"""Prequential (test-then-learn) evaluation: predict each event just before learning it.

For each event of the stream, in time order:

1. *test* — if it is an explicit rating (and the model is explicit), the model's
   ``predict(user, item)`` and each mean baseline's prediction are scored against the rating;
   if it is a rating or purchase drawn into the ranking sample (probability ``rank_sample``, one
   draw per rating/purchase from ``random.Random(seed)``) of an item the user does not have yet,
   the model's ``recommend(user, N)`` and popularity's top-N are scored against the item.
   What counts as cold, repeat or rejected is defined in :mod:`stream_cf.evaluation.scoreboard`.
2. *learn* — the event is applied to the model (``apply``) and to the baselines.

What the engine predicts for a cold event is its documented fallback: an unknown user gets the
global mean of the ratings so far, a known user with an unknown item gets the user's mean, and a
known pair with fewer than ``min_k`` usable neighbours gets the user's mean too (counted as warm:
it is the model's own answer). An event the engine refuses (``InvalidEvent``, ``UnknownRating``)
is counted as ``rejected`` and not learnt by the baselines either.

This is the protocol of river's ``evaluate.progressive_val_score`` for recommenders: every
event is a test case once, on a model that has seen exactly the events before it.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from stream_cf.evaluation.baselines import Baselines
from stream_cf.evaluation.scoreboard import EvaluationResult, Scoreboard, build_result
from stream_cf.events import Event, PurchaseEvent, RatingEvent
from stream_cf.exceptions import InvalidEvent, UnknownRating

TOP_N = 10


class Recommender(Protocol):
    """What the evaluation needs of a model (the UserKNN API)."""

    def has_user(self, user: str) -> bool: ...
    def has_item(self, item: str) -> bool: ...
    def predict(self, user: str, item: str) -> float: ...
    def recommend(self, user: str, n: int = 10) -> list[tuple[str, float]]: ...
    def apply(self, event: Event) -> Any: ...
    def config(self) -> dict[str, Any]: ...


def model_is_explicit(model: Recommender) -> bool:
    """Whether the model predicts ratings (``feedback="explicit"``, the default)."""
    return bool(model.config().get("feedback", "explicit") == "explicit")


def catalogue_size(events: Sequence[Event]) -> int:
    """The number of distinct items in the stream (the denominator of coverage)."""
    return len({e.item_id for e in events if isinstance(e, RatingEvent | PurchaseEvent)})


def score_rating_event(
    board: Scoreboard, model: Recommender, event: RatingEvent, means: Any
) -> None:
    """Predict the event's rating with the model (and the mean baselines) before it is learnt."""
    user, item = event.user_id, event.item_id
    board.score_rating(
        user,
        item,
        event.rating,
        model.predict(user, item),
        user_known=model.has_user(user),
        item_known=model.has_item(item),
        means=means,
    )


class Tracer:
    """Snapshots of the running figures every ``every`` events, for the plot."""

    def __init__(self, total: int, points: int = 200) -> None:
        self.every = max(1, math.ceil(total / max(points, 1)))
        self.columns: dict[str, list[float]] = {"events": []}

    def maybe(self, done: int, board: Scoreboard, *, last: bool = False) -> None:
        if done % self.every and not last:
            return
        if self.columns["events"] and self.columns["events"][-1] == done:
            return
        self.columns["events"].append(float(done))
        for key, value in board.snapshot().items():
            self.columns.setdefault(key, []).append(value)


def prequential(
    events: Sequence[Event],
    model: Recommender,
    *,
    dataset: str = "",
    rank_sample: float = 0.0,
    seed: int = 0,
    n: int = TOP_N,
    rating_scale: tuple[float, float] = (1.0, 5.0),
    on_event: Callable[[int], None] | None = None,
    trace_points: int = 200,
    repeats: bool = False,
) -> EvaluationResult:
    """Run the test-then-learn loop over ``events`` (already in time order).

    ``on_event(k)`` is called every ``k`` processed events (progress bars); ``trace_points`` is
    about how many snapshots of the running figures the result's ``trace`` keeps. ``repeats``:
    a sampled event of an item the user already has is ranked too (against lists that may
    include the user's own items: the model's with ``include_seen``, popularity's over every
    item), instead of being skipped as a repeat.
    """
    if not 0.0 <= rank_sample <= 1.0:
        raise ValueError(f"rank_sample must be in [0, 1], got {rank_sample}")
    rate_metrics = model_is_explicit(model)
    rng = random.Random(seed)
    board = Scoreboard(n=n)
    baselines = Baselines(rating_scale)
    means, popularity = baselines.means, baselines.popularity
    tracer = Tracer(len(events), trace_points)
    tick = max(1, len(events) // 1000)
    start = time.perf_counter()
    done = 0
    for event in events:
        if isinstance(event, RatingEvent | PurchaseEvent):
            user, item = event.user_id, event.item_id
            user_known = model.has_user(user)
            if rate_metrics and isinstance(event, RatingEvent):
                score_rating_event(board, model, event, means)
            if rank_sample > 0.0 and rng.random() < rank_sample:
                repeat = item in popularity.has(user)
                if repeat:
                    board.count("ranking_repeats")
                if repeats or not repeat:
                    model_top = [i for i, _ in model.recommend(user, n)]
                    popular = popularity.recommend(user, n, include_seen=repeats)
                    board.score_ranking(item, model_top, popular, user_known=user_known)
        try:
            model.apply(event)
        except (InvalidEvent, UnknownRating):
            board.count("rejected")
        else:
            baselines.apply(event)
        done += 1
        tracer.maybe(done, board)
        if on_event is not None and done % tick == 0:
            on_event(tick)
    seconds = time.perf_counter() - start
    if on_event is not None and done % tick:
        on_event(done % tick)
    tracer.maybe(done, board, last=True)
    return build_result(
        board,
        mode="prequential",
        dataset=dataset,
        events=done,
        seconds=seconds,
        catalogue_size=catalogue_size(events),
        rank_sample=rank_sample,
        seed=seed,
        config=model.config(),
        rating_metrics=rate_metrics,
        trace=tracer.columns,
    )
