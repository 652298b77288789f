"""The pair-by-pair (scatter) update of the pair sums against a from-scratch computation.

Random streams of ratings, re-rates, unrates and forget_user, cut into random micro-batches (a
batch of one through ``apply``: the single-cell update) and applied through the public API with the
scatter path, the block path or the cost model's choice; after every batch the int32 pair sums must
equal, bit for bit, the sums computed plainly from the ratings (sums[a, b] = [n, Σ 2r_a, Σ (2r_a)²,
Σ (2r_a)(2r_b)] over the items both rated; zero for free slots). Tiles of 2 or 3 user slots
(instead of 512) put the users in several tiles, so the flat addressing across tiles is exercised
too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_cf.engine import UserKNN, commit, scatter
from stream_cf.engine import pairs as pairs_module
from stream_cf.events import Event, ForgetUserEvent, RatingEvent, UnrateEvent

USERS = [f"u{n}" for n in range(7)]
ITEMS = [f"i{n}" for n in range(5)]
VALUES = [1.0 + 0.5 * n for n in range(9)]  # 1.0 .. 5.0 (the default scale)

step = st.one_of(
    st.tuples(
        st.just("rate"), st.sampled_from(USERS), st.sampled_from(ITEMS), st.sampled_from(VALUES)
    ),
    st.tuples(st.just("unrate"), st.integers(0, 10_000)),
    st.tuples(st.just("forget"), st.sampled_from(USERS)),
    st.tuples(st.just("cut")),
)


def from_scratch(model: UserKNN) -> np.ndarray:
    """The int32 sums over slots [0, high), from the public reads and the slot map."""
    state = model.state
    n = state.users.high
    out = np.zeros((n, n, 4), dtype=np.int64)
    rows = {
        state.users.slot_of[user]: {
            item: round(2 * value) for item, value in model.user_items(user).items()
        }
        for user in model.users()
    }
    for a, mine in rows.items():
        for b, theirs in rows.items():
            for item, x in mine.items():
                if item in theirs:
                    out[a, b] += [1, x, x * x, x * theirs[item]]
    return out


def events_of(steps: list[Any], model: UserKNN, rated: set[tuple[str, str]]) -> list[Event]:
    """The steps as valid events (an unrate picks one of the ratings present when it runs)."""
    out: list[Event] = []
    for s in steps:
        if s[0] == "rate":
            out.append(RatingEvent(user_id=s[1], item_id=s[2], rating=s[3]))
            rated.add((s[1], s[2]))
        elif s[0] == "unrate" and rated:
            user, item = sorted(rated)[s[1] % len(rated)]
            rated.discard((user, item))
            out.append(UnrateEvent(user_id=user, item_id=item))
        elif s[0] == "forget":
            rated.difference_update({(u, i) for u, i in rated if u == s[1]})
            out.append(ForgetUserEvent(user_id=s[1]))
    return out


def small_tiles_and_spies(monkeypatch: pytest.MonkeyPatch, tile: int = 2) -> dict[str, int]:
    """Tiles of ``tile`` slots, and counters of the paths that ran (batches by scatter or block,
    single cells by scatter)."""
    monkeypatch.setattr(pairs_module, "TILE", tile)
    used = {"scatter": 0, "block": 0, "cell": 0}
    scatter_update = pairs_module.scatter_update
    scatter_cell = pairs_module.scatter_cell
    update_block = pairs_module.PairSums.update_block

    def spy_scatter(*args: Any, **kwargs: Any) -> None:
        used["scatter"] += 1
        scatter_update(*args, **kwargs)

    def spy_cell(*args: Any, **kwargs: Any) -> None:
        used["cell"] += 1
        scatter_cell(*args, **kwargs)

    def spy_block(self: pairs_module.PairSums, **kwargs: Any) -> None:
        used["block"] += 1
        update_block(self, **kwargs)

    monkeypatch.setattr(pairs_module, "scatter_update", spy_scatter)
    monkeypatch.setattr(pairs_module, "scatter_cell", spy_cell)
    monkeypatch.setattr(pairs_module.PairSums, "update_block", spy_block)
    return used


def run(steps: list[Any], path: str | None, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Apply the steps in batches (cut at "cut"), checking the sums after every batch; returns
    how often each path ran."""
    used = small_tiles_and_spies(monkeypatch)
    monkeypatch.setattr(commit, "FORCE_PATH", path)
    model = UserKNN()
    rated: set[tuple[str, str]] = set()
    batch: list[Any] = []
    for s in [*steps, ("cut",)]:
        if s[0] != "cut":
            batch.append(s)
            continue
        events = events_of(batch, model, rated)
        batch = []
        if not events:
            continue
        if len(events) == 1:
            model.apply(events[0])  # the single-event path
        else:
            model.apply_many(events)
        pairs = model.state.pairs
        assert pairs is not None and pairs.integer
        n = model.state.users.high
        assert np.array_equal(pairs.dense(n).astype(np.int64), from_scratch(model))
    return used


SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.mark.skipif(not scatter.PACKED, reason="the scatter path needs a little-endian machine")
@pytest.mark.parametrize("path", ["scatter", "block", None])
@SETTINGS
@given(steps=st.lists(step, min_size=1, max_size=60))
def test_pair_sums_equal_from_scratch_after_every_batch(
    path: str | None, steps: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    used = run(steps, path, monkeypatch)
    if path == "scatter":
        assert used["block"] == 0
    elif path == "block":
        assert used["scatter"] == 0


@pytest.mark.skipif(not scatter.PACKED, reason="the scatter path needs a little-endian machine")
@pytest.mark.parametrize("tile", [2, 3])
def test_both_paths_ran_in_one_stream(monkeypatch: pytest.MonkeyPatch, tile: int) -> None:
    """Alternating the forced path batch by batch: each reads what the other wrote."""
    rng = np.random.default_rng(7)
    used = small_tiles_and_spies(monkeypatch, tile)
    model = UserKNN()
    rated: set[tuple[str, str]] = set()
    for round_ in range(40):
        monkeypatch.setattr(commit, "FORCE_PATH", "scatter" if round_ % 2 else "block")
        steps: list[Any] = []
        for _ in range(int(rng.integers(1, 12))):
            kind = rng.random()
            if kind < 0.75:
                user, item = str(rng.choice(USERS)), str(rng.choice(ITEMS))
                steps.append(("rate", user, item, float(rng.choice(VALUES))))
            elif kind < 0.95:
                steps.append(("unrate", int(rng.integers(0, 1000))))
            else:
                steps.append(("forget", str(rng.choice(USERS))))
        events = events_of(steps, model, rated)
        if len(events) == 1:
            model.apply(events[0])
        elif events:
            model.apply_many(events)
        n = model.state.users.high
        assert model.state.pairs is not None
        assert np.array_equal(model.state.pairs.dense(n).astype(np.int64), from_scratch(model))
    assert min(used.values()) > 0, used
