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

from collections.abc import Iterator
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


def applied_batches(steps: list[Any]) -> Iterator[UserKNN]:
    """A new model fed the steps in batches (cut at "cut"; a batch of one event through the
    single-event path), yielded after every non-empty batch."""
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
        yield model


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
    for model in applied_batches(steps):
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


def upper_halves_are_zero(pairs: pairs_module.PairSums) -> bool:
    """Only the lower triangle holds cells: every tile row bi has tiles (bi, 0..bi), and the
    upper half of each diagonal tile (lo > hi) was never written."""
    tile = pairs_module.TILE
    above = np.triu(np.ones((tile, tile), dtype=np.bool_), k=1)
    return all(len(row) == bi + 1 for bi, row in enumerate(pairs.tiles)) and all(
        not np.any(row[bi][above]) for bi, row in enumerate(pairs.tiles)
    )


@SETTINGS
@given(steps=st.lists(step, min_size=1, max_size=60), tile=st.sampled_from([2, 3]))
def test_each_pair_held_once_read_in_both_orders(
    steps: list[Any], tile: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After every batch: one cell per unordered pair (the upper halves stay zero), every user's
    row of sums (n, Σx, Σy, Σx², Σy², Σxy, the read the similarities use) equals the from-scratch
    sums in rating units, the ordered rows written back with set_rows in ranges that cut
    through tiles give the same cells, and the reads at slots (sums_at: the flat gather, and
    tile by tile in float mode; row_at, col_at) equal the whole rows at those slots, bit for
    bit."""
    small_tiles_and_spies(monkeypatch, tile)
    for model in applied_batches(steps):
        pairs = model.state.pairs
        assert pairs is not None and pairs.integer
        assert upper_halves_are_zero(pairs)
        n = model.state.users.high
        want = from_scratch(model)
        units = np.array([1.0, 0.5, 0.5, 0.25, 0.25, 0.25])  # n, Σx, Σy, Σx², Σy², Σxy
        for u in range(n):
            mine, theirs = want[u], want[:, u]
            expect = np.stack(
                [mine[:, 0], mine[:, 1], theirs[:, 1], mine[:, 2], theirs[:, 2], mine[:, 3]],
                axis=1,
            )
            assert np.array_equal(pairs.sums_row(u, n), expect * units)
        copy = pairs_module.PairSums()
        copy.ensure(n)
        lo = 0
        while lo < n:  # rows in uneven ranges
            hi = min(n, lo + 1 + lo % 3)
            copy.set_rows(lo, want[lo:hi].astype(np.int32))
            lo = hi
        assert np.array_equal(copy.dense(n).astype(np.int64), want)
        for mine, theirs in zip(copy.tiles, pairs.tiles, strict=True):
            for a, b in zip(mine, theirs, strict=True):
                assert np.array_equal(a, b)
        copy.to_float()  # the reads at slots off the flat gather: tile by tile, float sums
        for store in (pairs, copy):
            for u in range(n):
                slots = np.concatenate([np.arange(n)[::-1], np.arange(n)[u::2]]).astype(np.int64)
                row, col = store.row(u, n)[slots], store.col(u, n)[slots]
                at_row, at_col = store.sums_at(u, slots)
                assert at_row.tobytes() == row.tobytes() and at_col.tobytes() == col.tobytes()
                assert store.row_at(u, slots).tobytes() == row.tobytes()
                assert store.col_at(u, slots).tobytes() == col.tobytes()


@pytest.mark.parametrize("one_by_one", [True, False])
@SETTINGS
@given(steps=st.lists(step, min_size=1, max_size=60))
def test_pair_sums_outside_the_reservation(
    one_by_one: bool, steps: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tiles as plain arrays (as on a big-endian machine or where the reservation is refused):
    single cells (every event on its own with ``one_by_one``) and batches written tile by tile,
    the same sums after every batch."""
    monkeypatch.setattr(pairs_module, "PACKED", False)
    if one_by_one:
        steps = [part for s in steps for part in (s, ("cut",))]
    used = run(steps, None, monkeypatch)
    assert used["scatter"] == 0 and used["cell"] == 0


def item_copies_equal_from_scratch(model: UserKNN) -> None:
    """Each item's rater copies (``Ratings.item_users``, ``Ratings.item_values``) hold the
    item's raters and values from the public reads, in the order of the item's cell row, and
    each cell's kept position (``Ratings.cell_pos``) is its place in that row."""
    state = model.state
    ratings = state.ratings
    expected: dict[int, list[tuple[int, float]]] = {}
    for user in model.users():
        for item, value in model.user_items(user).items():
            i = state.items.slot_of[item]
            expected.setdefault(i, []).append((state.users.slot_of[user], value))
    for i in range(state.items.high):
        raters = ratings.item_users.row(i)
        values = ratings.item_values.row(i)
        cells = ratings.by_item.row(i)
        assert raters.tolist() == ratings.cell_user[cells].tolist()
        assert values.tolist() == ratings.cell_value[cells].tolist()
        assert ratings.cell_pos[cells].tolist() == list(range(cells.size))
        assert sorted(zip(raters.tolist(), values.tolist(), strict=True)) == sorted(
            expected.get(i, [])
        )
        where, batch_raters, batch_values = ratings.items_rows(np.array([i], dtype=np.int64))
        assert batch_raters.tolist() == raters.tolist() and batch_values.tolist() == values.tolist()
        assert where.tolist() == [0] * raters.size


@pytest.mark.parametrize("path", ["scatter", "block"])
@SETTINGS
@given(steps=st.lists(step, min_size=1, max_size=60))
def test_item_rater_copies_equal_from_scratch_after_every_batch(
    path: str, steps: list[Any], monkeypatch: pytest.MonkeyPatch, tmp_path_factory: Any
) -> None:
    """The per-item copies of the raters and values, read by the batch update
    (``Ratings.items_rows``), after every batch and single event (rates, re-rates, unrates,
    forget_user) and after a checkpoint round trip."""
    monkeypatch.setattr(commit, "FORCE_PATH", path)
    model = None
    for model in applied_batches(steps):
        item_copies_equal_from_scratch(model)
    if model is not None:
        path_out = tmp_path_factory.mktemp("ckpt") / "model.npz"
        model.save(path_out)
        item_copies_equal_from_scratch(UserKNN.load(path_out))
