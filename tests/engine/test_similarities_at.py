"""u's similarities to a few users (:func:`neighbours.similarities`, what one prediction reads)
equal the whole row at those users (:func:`neighbours.similarity_row`) bit for bit, for every
similarity, with the pair sums kept for every user, for owned users only, or computed from the
ratings, after every event of random streams (ratings, re-ratings, take-backs, erasures)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_cf.engine import UserKNN, neighbours
from stream_cf.events import Event, RatingEvent
from stream_cf.exceptions import UnknownRating
from tests.engine.strategies import event_lists

USERS = [f"u{n}" for n in range(7)]
ITEMS = [f"i{n}" for n in range(6)]

VARIANTS: dict[str, dict[str, Any]] = {
    "adjusted_cosine": {"similarity": "adjusted_cosine", "shrinkage": 2.0},
    "pearson": {"similarity": "pearson", "min_support": 2},
    "msd": {"similarity": "msd"},
    "cosine": {"similarity": "cosine", "pair_sums": False},
    "owned": {"similarity": "adjusted_cosine", "pair_rows": "owned"},
    "implicit": {"feedback": "implicit", "pair_sums": True},
}

events = event_lists(USERS, ITEMS, st.sampled_from([1.0, 2.5, 3.0, 4.0, 5.0]))


@pytest.mark.parametrize("name", sorted(VARIANTS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=events)
def test_similarities_at_slots_equal_the_row(name: str, stream: list[Event]) -> None:
    model = UserKNN(**VARIANTS[name])
    state, cfg = model.state, model.settings
    compared = 0
    for event in stream:
        try:
            model.apply(event)
        except UnknownRating:  # a take-back of a rating that does not exist: refused
            continue
        if cfg.pair_rows == "owned":
            model.own(model.users())
        high = state.users.high
        for u in range(high):
            if state.users.id_of[u] is None:
                continue
            others = np.array([v for v in range(high) if v != u], dtype=np.int64)
            row = neighbours.similarity_row(state, cfg, u)
            at = neighbours.similarities(state, cfg, u, others)
            assert at.tobytes() == row[others].tobytes()
            compared += 1
    assert compared or not any(isinstance(e, RatingEvent) for e in stream)
