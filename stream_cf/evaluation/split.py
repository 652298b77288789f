"""Batch mode: learn the first 80% of the stream by time, test on the remaining 20%.

This is the temporal hold-out used to set the engine beside batch libraries (Surprise, ...):

* *train* — the first ``floor(train_fraction × len(events))`` events are applied to the model and
  the baselines, in time order;
* *test* — every later rating is predicted by the frozen model and mean baselines (nothing is
  learnt during the test). Cold is defined against the training state (``new_user``,
  ``new_item``, see :mod:`stream_cf.evaluation.scoreboard`);
* ranking — each distinct test (user, item) pair that the user did not have at the end of
  training is, if drawn into the sample (``rank_sample``, one draw per such pair from
  ``random.Random(seed)``), scored against the user's top-N from the training state (model and
  popularity); a pair seen again in the test, or already held in training, counts as a repeat.
  The lists are computed once per user, since the state does not change.

``unrate`` and ``forget_user`` events in the test part are not scored (counted as
``test_not_scored``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence

from stream_cf.evaluation.baselines import Baselines
from stream_cf.evaluation.prequential import (
    TOP_N,
    Recommender,
    catalogue_size,
    model_is_explicit,
    score_rating_event,
)
from stream_cf.evaluation.scoreboard import EvaluationResult, Scoreboard, build_result
from stream_cf.events import Event, PurchaseEvent, RatingEvent
from stream_cf.exceptions import InvalidEvent, UnknownRating


def split_point(n_events: int, train_fraction: float) -> int:
    """How many events go to training."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    return int(n_events * train_fraction)


def split_evaluate(
    events: Sequence[Event],
    model: Recommender,
    *,
    dataset: str = "",
    train_fraction: float = 0.8,
    rank_sample: float = 0.0,
    seed: int = 0,
    n: int = TOP_N,
    rating_scale: tuple[float, float] = (1.0, 5.0),
    on_event: Callable[[int], None] | None = None,
) -> EvaluationResult:
    """Train on the first ``train_fraction`` of ``events`` (in time order), test on the rest."""
    if not 0.0 <= rank_sample <= 1.0:
        raise ValueError(f"rank_sample must be in [0, 1], got {rank_sample}")
    cut = split_point(len(events), train_fraction)
    rate_metrics = model_is_explicit(model)
    rng = random.Random(seed)
    board = Scoreboard(n=n)
    baselines = Baselines(rating_scale)
    means, popularity = baselines.means, baselines.popularity
    tick = max(1, len(events) // 1000)

    start = time.perf_counter()
    for done, event in enumerate(events[:cut], start=1):
        try:
            model.apply(event)
        except (InvalidEvent, UnknownRating):
            board.count("rejected")
        else:
            baselines.apply(event)
        if on_event is not None and done % tick == 0:
            on_event(tick)
    train_seconds = time.perf_counter() - start

    model_lists: dict[str, list[str]] = {}
    popular_lists: dict[str, list[str]] = {}
    seen: set[tuple[str, str]] = set()
    board.count("test_not_scored", 0)
    for done, event in enumerate(events[cut:], start=cut + 1):
        if isinstance(event, RatingEvent | PurchaseEvent):
            user, item = event.user_id, event.item_id
            user_known = model.has_user(user)
            if rate_metrics and isinstance(event, RatingEvent):
                score_rating_event(board, model, event, means)
            if rank_sample > 0.0:
                pair = (user, item)
                if pair in seen or item in popularity.has(user):
                    board.count("ranking_repeats")
                else:
                    seen.add(pair)
                    if rng.random() < rank_sample:
                        if user not in model_lists:
                            model_lists[user] = [i for i, _ in model.recommend(user, n)]
                            popular_lists[user] = popularity.recommend(user, n)
                        board.score_ranking(
                            item, model_lists[user], popular_lists[user], user_known=user_known
                        )
        else:
            board.count("test_not_scored")
        if on_event is not None and done % tick == 0:
            on_event(tick)
    seconds = time.perf_counter() - start
    if on_event is not None and len(events) % tick:
        on_event(len(events) % tick)
    return build_result(
        board,
        mode="split",
        dataset=dataset,
        events=len(events),
        seconds=seconds,
        catalogue_size=catalogue_size(events),
        rank_sample=rank_sample,
        seed=seed,
        config=model.config(),
        rating_metrics=rate_metrics,
        extra={
            "train_events": cut,
            "test_events": len(events) - cut,
            "train_fraction": train_fraction,
            "train_seconds": round(train_seconds, 3),
        },
    )
