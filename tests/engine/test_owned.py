"""Owned pair rows (``pair_rows="owned"``, :mod:`stream_cf.engine.owned`): random streams of
rate / unrate / forget_user (one by one and in apply_many batches) interleaved with own / disown,
against a model with the full pair sums fed the same events. For every owned user the stored sums
(the channels kept), the similarity row, every prediction and the list are the same bits; for
every other user the list is the same (computed from the ratings). Tiles are shrunk to a few
slots so that the updates cross tile boundaries."""

from __future__ import annotations

import collections
import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_cf.engine import UserKNN, neighbours, owned, pairs
from stream_cf.engine.owned import OwnedPairSums, channels_for
from stream_cf.events import Event, ForgetUserEvent, RatingEvent, UnrateEvent
from stream_cf.exceptions import ConfigError

USERS = [f"u{n}" for n in range(9)]
ITEMS = [f"i{n}" for n in range(6)]
HALF = [1.0 + 0.5 * n for n in range(9)]
OFF_GRID = [1.3, 2.7, 4.1]

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)

user_set = st.lists(st.sampled_from(USERS), max_size=4)
rate_ev = st.tuples(
    st.just("rate"), st.sampled_from(USERS), st.sampled_from(ITEMS), st.sampled_from(HALF)
)
unrate_ev = st.tuples(st.just("unrate"), st.integers(0, 10_000))
forget_ev = st.tuples(st.just("forget"), st.sampled_from(USERS))
event = st.one_of(rate_ev, rate_ev, rate_ev, rate_ev, unrate_ev, forget_ev)
# a batch and a mask of USERS to own (see Pair.step: the batch then updates owned rows)
batch = st.tuples(
    st.just("batch"), st.lists(event, min_size=2, max_size=12), st.integers(0, 2 ** len(USERS) - 1)
)
own_step = st.tuples(st.just("own"), st.integers(1, 2 ** len(USERS) - 1))  # a mask of USERS
step = st.one_of(event, batch, batch, own_step, own_step, st.tuples(st.just("disown"), user_set))
steps = st.lists(step, min_size=5, max_size=30)
configs = st.fixed_dictionaries(
    {
        "similarity": st.sampled_from(["pearson", "msd", "cosine", "adjusted_cosine"]),
        "rank": st.sampled_from(["rating", "vote"]),
        "k": st.sampled_from([2, 40]),
        "min_support": st.sampled_from([1, 2]),
    }
)


METHODS = ("dense", "by_user", "sparse")
CALLS: collections.Counter[str] = collections.Counter()


@contextmanager
def small_tiles(size: int) -> Iterator[None]:
    """Tiles of ``size`` user slots in both stores (updates cross tile boundaries), and each
    block update forced to one of its three methods, the same in both stores (picked from the
    cells), so that each method is tested."""
    update_block = pairs.PairSums.update_block

    def forced(store: pairs.PairSums, **kwargs: Any) -> None:
        method = METHODS[int(kwargs["cell_users"].sum() + kwargs["cell_cols"].size) % 3]
        CALLS[f"{type(store).__name__} {method}"] += 1
        update_block(store, **{**kwargs, "method": method})

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pairs, "TILE", size)
        mp.setattr(owned, "TILE", size)
        mp.setattr(pairs.PairSums, "update_block", forced)
        yield


def to_event(raw: tuple[Any, ...], ratings: dict[tuple[str, str], float]) -> Event | None:
    """The event of a drawn tuple (an unrate picks one of the current ratings), and the
    ``ratings`` it leaves."""
    kind = raw[0]
    if kind == "rate":
        ratings[(raw[1], raw[2])] = raw[3]
        return RatingEvent(user_id=raw[1], item_id=raw[2], rating=raw[3])
    if kind == "unrate":
        if not ratings:
            return None
        key = sorted(ratings)[raw[1] % len(ratings)]
        del ratings[key]
        return UnrateEvent(user_id=key[0], item_id=key[1])
    for key in [key for key in ratings if key[0] == raw[1]]:
        del ratings[key]
    return ForgetUserEvent(user_id=raw[1])


class Pair:
    """A full model and an owned model fed the same events, and the owned set expected."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.full = UserKNN(**config)
        self.own = UserKNN(**config, pair_rows="owned")
        self.ratings: dict[tuple[str, str], float] = {}
        self.expected: set[str] = set()

    def events(self, raws: list[tuple[Any, ...]]) -> list[Event]:
        """The events of drawn tuples; a user left without ratings on the way (erased, or its
        last rating taken back) is no longer owned, even if it comes back later in the batch."""
        out = []
        for raw in raws:
            ev = to_event(raw, self.ratings)
            if ev is None:
                continue
            out.append(ev)
            if not any(user == ev.user_id for user, _item in self.ratings):
                self.expected.discard(ev.user_id)
        return out

    def apply(self, events: list[Event], *, batch: bool) -> None:
        for model in (self.full, self.own):
            if batch:
                model.apply_many(events)
            else:
                for ev in events:
                    model.apply(ev)

    def take(self, mask: int) -> None:
        """Own the USERS in the mask (those that exist)."""
        users = [u for k, u in enumerate(USERS) if mask >> k & 1]
        self.own.own(users)
        self.expected |= {u for u in users if self.own.has_user(u)}

    def step(self, raw: tuple[Any, ...]) -> None:
        kind = raw[0]
        if kind == "own":
            self.take(raw[1])
        elif kind == "disown":
            self.own.disown(raw[1])
            self.expected -= set(raw[1])
        elif kind == "batch":  # own, half the batch, own again (users it created), the rest
            half = len(raw[1]) // 2
            for part in (raw[1][:half], raw[1][half:]):
                self.take(raw[2])
                self.apply(self.events(part), batch=True)
        else:
            self.apply(self.events([raw]), batch=False)

    def check(self, *, exact_others: bool = True) -> None:
        own, full = self.own, self.full
        assert set(own.owned_users()) == self.expected
        assert own.owned_users() == [u for u in own.users() if u in self.expected]
        store = own.state.pairs
        assert isinstance(store, OwnedPairSums)
        high = own.state.users.high
        assert own.state.users.slot_of == full.state.users.slot_of
        assert full.state.pairs is not None
        kept = store.channels
        row_keep = [k for k, ch in enumerate((0, 1, 2, 3)) if ch in kept]
        # col(u): Σy, Σy² (its n and Σxy are row(u)'s: in float mode the full store's mirrored
        # Σxy may differ in the last bit, and no similarity reads it)
        col_keep = [k for k, ch in enumerate((0, 4, 5, 3)) if ch in kept and ch in (4, 5)]
        items = full.items()
        for user in own.users():
            u = own.state.users.slot_of[user]
            if user in self.expected:
                got_row = store.row(u, high)[:, row_keep]
                want_row = full.state.pairs.row(u, high)[:, row_keep]
                assert np.array_equal(got_row, want_row), (user, got_row, want_row)
                got_col = store.col(u, high)[:, col_keep]
                want_col = full.state.pairs.col(u, high)[:, col_keep]
                assert np.array_equal(got_col, want_col), (user, got_col, want_col)
                w_own = neighbours.similarity_row(own.state, own.settings, u)
                w_full = neighbours.similarity_row(full.state, full.settings, u)
                assert np.array_equal(w_own, w_full)
                assert own.predict_many(user, items) == full.predict_many(user, items)
                assert own.recommendations(user, 4) == full.recommendations(user, 4)
            elif exact_others:
                assert own.recommendations(user, 4) == full.recommendations(user, 4)
        # the free rows hold nothing, the owned rows hold nothing beyond the user slots
        for tile in store.cols:
            assert not tile[store.slot_at < 0].any()


@SETTINGS
@given(config=configs, plan=steps, tile=st.sampled_from([2, 3, 512]))
def test_owned_rows_equal_the_full_pair_sums(
    config: dict[str, Any], plan: list[tuple[Any, ...]], tile: int
) -> None:
    with small_tiles(tile):
        pair = Pair(config)
        for raw in plan:
            pair.step(raw)
            pair.check()


@SETTINGS
@given(
    config=configs,
    before=steps,
    after=st.lists(st.one_of(event, st.tuples(st.just("disown"), user_set)), max_size=15),
    tile=st.sampled_from([2, 3]),
    off=st.sampled_from(OFF_GRID),
)
def test_float_sums_equal_after_a_value_off_the_grid(
    config: dict[str, Any],
    before: list[tuple[Any, ...]],
    after: list[tuple[Any, ...]],
    tile: int,
    off: float,
) -> None:
    """Rows owned while the sums are int32 go on as the same float64 bits once a value off the
    half grid turns both stores to float (rows gained after that: see the next test)."""
    with small_tiles(tile):
        pair = Pair(config)
        for raw in before:
            pair.step(raw)
        pair.step(("rate", USERS[0], ITEMS[0], off))
        assert not pair.own.state.pairs.integer  # type: ignore[union-attr]
        for raw in after:
            # mostly off the grid now
            pair.step((*raw[:3], min(raw[3] + 0.1, 4.9)) if raw[0] == "rate" else raw)
            pair.check(exact_others=False)


def test_rows_gained_in_float_mode_are_rounded_sums() -> None:
    """own() after the switch to float: the rows are float sums in another order, equal to the
    full store's within rounding."""
    rng = np.random.default_rng(3)
    full = UserKNN(similarity="pearson")
    mine = UserKNN(similarity="pearson", pair_rows="owned")
    events: list[Event] = [
        RatingEvent(user_id=f"u{u}", item_id=f"i{i}", rating=float(rng.uniform(1, 5)))
        for u, i in zip(rng.integers(0, 30, 400), rng.integers(0, 40, 400), strict=True)
    ]
    for model in (full, mine):
        model.apply_many(events)
    assert mine.own(full.users()[::2]) == 15
    high = mine.state.users.high
    for user in mine.owned_users():
        u = mine.state.users.slot_of[user]
        np.testing.assert_allclose(
            mine.state.pairs.row(u, high),  # type: ignore[union-attr]
            full.state.pairs.row(u, high),  # type: ignore[union-attr]
            rtol=1e-12,
            atol=1e-12,
        )


def test_api_and_config() -> None:
    model = UserKNN(pair_rows="owned")
    assert model.config()["pair_rows"] == "owned"
    model.rate("a", "x", 4.0)
    model.rate("b", "x", 3.0)
    assert model.owned_users() == []
    assert model.own(["a", "nobody"]) == 1
    assert model.own(["a"]) == 0
    assert model.owns("a") and not model.owns("b") and not model.owns("nobody")
    model.rate("c", "x", 5.0)  # a new user is not owned until told
    assert model.owned_users() == ["a"]
    assert model.disown(["a", "b"]) == 1
    assert model.owned_users() == []
    full = UserKNN()
    full.rate("a", "x", 4.0)
    assert full.owns("a") and full.owned_users() == ["a"] and full.own(["a"]) == 0
    assert full.disown(["a"]) == 0
    with pytest.raises(ConfigError, match="pair_rows"):
        UserKNN(pair_rows="owned", pair_sums=False)
    with pytest.raises(ConfigError, match="pair_rows"):
        UserKNN(pair_rows="some")  # type: ignore[arg-type]


def test_channels_follow_the_similarity() -> None:
    assert channels_for("pearson", False) == (0, 1, 2, 3, 4, 5)
    assert channels_for("adjusted_cosine", False) == (0, 1, 2, 3, 4, 5)
    assert channels_for("msd", False) == (0, 2, 3, 5)
    assert channels_for("cosine", False) == (0, 2, 3, 5)
    assert channels_for("cosine", True) == (0, 3)
    assert UserKNN(pair_rows="owned", similarity="msd").state.pairs.cell_bytes == 16  # type: ignore[union-attr]
    assert UserKNN(pair_rows="owned").state.pairs.cell_bytes == 24  # type: ignore[union-attr]


def test_memory_grows_with_the_owned_users() -> None:
    rng = np.random.default_rng(0)
    n_users = 700  # two column tiles
    events: list[Event] = [
        RatingEvent(user_id=f"u{u}", item_id=f"i{i}", rating=float(rng.integers(1, 6)))
        for u, i in zip(
            rng.permutation(np.repeat(np.arange(n_users), 3)),
            rng.integers(0, 50, 3 * n_users),
            strict=True,
        )
    ]
    model = UserKNN(pair_rows="owned")
    model.apply_many(events)
    full = UserKNN()
    full.apply_many(events)
    store = model.state.pairs
    assert isinstance(store, OwnedPairSums)
    width = 2 * pairs.TILE
    # the full store: the lower triangle of 2 x 2 tiles (three), 24 B per unordered pair
    assert full.footprint()["pair_bytes"] == 3 * pairs.TILE * pairs.TILE * 24
    assert model.footprint()["pair_bytes"] == 0
    users = model.users()
    for k in (10, 64, 65, 200):
        model.disown(users)
        model.own(users[:k])
        # rows in steps of 64 (freed rows are reused, and given back a step of 64 at a time)
        assert store.owned().size == k
        assert model.footprint()["pairs"] == k * model.state.users.high
    model.disown(users)
    model.own(users[:200])
    assert model.footprint()["pair_bytes"] == 256 * width * 24
    # losing users gives their rows back (a scaled-out instance that owned everyone at first)
    model.disown(users[64:])
    assert model.footprint()["pair_bytes"] == 64 * width * 24
    assert model.owned_users() == users[:64]
    more: list[Event] = [
        RatingEvent(user_id=f"u{u}", item_id=f"i{i}", rating=float(rng.integers(1, 6)))
        for u, i in zip(rng.integers(0, n_users, 300), rng.integers(0, 50, 300), strict=True)
    ]
    model.apply_many(more)  # the moved rows go on being updated
    full.apply_many(more)
    for user in users[:64]:
        u = model.state.users.slot_of[user]
        high = model.state.users.high
        mine, theirs = store.row(u, high), full.state.pairs.row(u, high)  # type: ignore[union-attr]
        kept = ~np.isnan(mine)
        np.testing.assert_array_equal(mine[kept], theirs[kept])
        assert model.recommendations(user, 5) == full.recommendations(user, 5)
    model.disown(users)
    assert model.footprint()["pair_bytes"] == 0
    small = UserKNN(pair_rows="owned")
    small.apply_many(events)
    small.own(users[:10])
    assert small.footprint()["pair_bytes"] == 64 * width * 24


@pytest.mark.parametrize("off_grid", [False, True])
def test_checkpoint_round_trip(off_grid: bool) -> None:
    rng = np.random.default_rng(1)
    values = rng.uniform(1, 5, 300) if off_grid else rng.integers(1, 6, 300).astype(float)
    events: list[Event] = [
        RatingEvent(user_id=f"u{u}", item_id=f"i{i}", rating=float(v))
        for u, i, v in zip(rng.integers(0, 25, 300), rng.integers(0, 30, 300), values, strict=True)
    ]
    full = UserKNN(rank="rating")
    mine = UserKNN(rank="rating", pair_rows="owned")
    for model in (full, mine):
        model.apply_many(events[:200])
    mine.own(mine.users()[:12])
    buf = io.BytesIO()
    mine.save(buf)
    with np.load(io.BytesIO(buf.getvalue())) as saved:
        assert "pair_sums" not in saved.files  # ratings only, float or not
    buf.seek(0)
    loaded = UserKNN.load(buf)
    assert loaded.config() == mine.config()
    assert loaded.owned_users() == []
    assert loaded.state.pairs.integer == (not off_grid)  # type: ignore[union-attr]
    owners = loaded.users()[:12]
    loaded.own(owners)
    for model in (full, loaded):
        model.apply_many(events[200:250])
        for ev in events[250:]:
            model.apply(ev)
    for user in loaded.users():
        got, want = loaded.recommendations(user, 5), full.recommendations(user, 5)
        if off_grid:  # rebuilt float rows: the same within rounding
            assert [i for i, _s in got.items] == [i for i, _s in want.items]
            np.testing.assert_allclose([s for _i, s in got.items], [s for _i, s in want.items])
        else:
            assert got == want


@pytest.mark.parametrize("tile", [2, 3, 512])
def test_float_block_writes_add_in_the_full_stores_order(tile: int) -> None:
    """add_stored with arbitrary float deltas: an entry both of whose users changed gets its two
    terms in the full store's order (rows of the lower tile row first), so the sums are the same
    bits; update_cell likewise."""
    rng = np.random.default_rng(tile)
    n = 11
    with small_tiles(tile):
        full = pairs.PairSums()
        mine = OwnedPairSums()
        for store in (full, mine):
            store.to_float()
            store.ensure(n)
        mine.take_rows(np.array([0, 3, 4, 7, 10]))
        for _ in range(30):
            users = np.sort(rng.choice(n, size=int(rng.integers(1, n)), replace=False))
            rows = rng.normal(size=(users.size, n, 4)) * 10.0 ** rng.integers(-3, 4)
            cols = rng.normal(size=(n, users.size, 4)) * 10.0 ** rng.integers(-3, 4)
            for store in (full, mine):
                store.add_stored(users, n, rows, cols)
            x = int(rng.integers(n))
            others = np.setdiff1d(rng.choice(n, size=4, replace=False), [x])
            values = rng.normal(size=others.size)
            old, new = float(rng.normal()), float(rng.normal())
            for store in (full, mine):
                store.update_cell(x, others, values, old, new)
        for u in mine.owned().tolist():
            assert np.array_equal(mine.row(u, n), full.row(u, n))
            # col(u)'s n and Σxy are row(u)'s (the same in the engine, where they are symmetric)
            assert np.array_equal(mine.col(u, n)[:, 1:3], full.col(u, n)[:, 1:3])


@pytest.mark.parametrize("similarity", ["pearson", "msd"])
def test_own_builds_the_full_stores_rows(similarity: str) -> None:
    """own() on a stream with popular items (dense products) and a long tail (sparse ones): the
    rows are the full store's, bit for bit."""
    rng = np.random.default_rng(5)
    n = 300
    items = np.minimum(rng.zipf(1.3, 6000) - 1, 400)
    events: list[Event] = [
        RatingEvent(user_id=f"u{u}", item_id=f"i{i}", rating=float(v))
        for u, i, v in zip(
            rng.integers(0, n, 6000), items, rng.integers(2, 11, 6000) / 2, strict=True
        )
    ]
    full = UserKNN(similarity=similarity)  # type: ignore[arg-type]
    mine = UserKNN(similarity=similarity, pair_rows="owned")  # type: ignore[arg-type]
    for model in (full, mine):
        model.apply_many(events)
    store = mine.state.pairs
    assert isinstance(store, OwnedPairSums)
    assert mine.own(mine.users()[1::3]) == len(mine.users()[1::3])
    high = mine.state.users.high
    keep_row = [k for k, ch in enumerate((0, 1, 2, 3)) if ch in store.channels]
    keep_col = [k for k, ch in ((1, 4), (2, 5)) if ch in store.channels]
    assert full.state.pairs is not None
    for user in mine.owned_users():
        u = mine.state.users.slot_of[user]
        got, want = store.row(u, high), full.state.pairs.row(u, high)
        assert np.array_equal(got[:, keep_row], want[:, keep_row])
        got, want = store.col(u, high), full.state.pairs.col(u, high)
        assert np.array_equal(got[:, keep_col], want[:, keep_col])
        assert mine.recommendations(user, 10) == full.recommendations(user, 10)
