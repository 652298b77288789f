"""The compact storage stays consistent: after every event of random streams (ratings, re-ratings,
take-backs, erasures and slot reuse, one by one or in micro-batches, save/load) the cell table,
the per-user and per-item indexes and the running statistics describe exactly the current ratings,
and the pair sums equal a recomputation from them (integers while every value stored is a
multiple of 0.5, float64 for good after any other value). And :class:`RowPool` against plain
lists under random appends and removals."""

from __future__ import annotations

import io
import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_cf.engine import UserKNN, storage
from stream_cf.engine.pairs import SCALE
from stream_cf.engine.rebuild import pair_sum_blocks
from stream_cf.engine.storage import RowPool
from stream_cf.events import Event, RatingEvent, UnrateEvent
from tests.engine.strategies import event_lists

USERS = [f"u{n}" for n in range(5)]
ITEMS = [f"i{n}" for n in range(5)]
HALVES = [-60.0, -1.5, 0.0, 0.5, 3.0, 63.5, 90.0]
OTHERS = [1.3, -0.1]  # not a multiple of 0.5

events = event_lists(USERS, ITEMS, st.sampled_from(HALVES) | st.sampled_from(OTHERS))


def valid(stream: list[Event]) -> list[Event]:
    """The stream without the take-backs of ratings that do not exist at that point."""
    current: set[tuple[str, str]] = set()
    kept: list[Event] = []
    for event in stream:
        if isinstance(event, RatingEvent):
            current.add((event.user_id, event.item_id))
        elif isinstance(event, UnrateEvent):
            if (event.user_id, event.item_id) not in current:
                continue
            current.discard((event.user_id, event.item_id))
        else:
            current = {cell for cell in current if cell[0] != event.user_id}
        kept.append(event)
    return kept


def check_storage(model: UserKNN, truth: dict[tuple[str, str], float], off_grid: bool) -> None:
    """``truth``: the current ratings; ``off_grid``: a value off the half-step grid was in the
    stream (since the load); the pair sums are float64 if a current value is off the grid, and
    integers if no such value was ever seen."""
    state = model.state
    ratings = state.ratings
    nu, ni = state.users.high, state.items.high
    live = ratings.live_cells(nu)
    assert live.size == len(truth) == state.n_ratings == ratings.n_cells
    seen = {
        (
            state.users.id_of[int(ratings.cell_user[c])],
            state.items.id_of[int(ratings.cell_item[c])],
        ): float(ratings.cell_value[c])
        for c in live.tolist()
    }
    assert seen == truth
    assert not set(live.tolist()) & set(ratings.free_cells)
    for u in range(nu):
        cells = ratings.by_user.row(u)
        assert np.all(ratings.cell_user[cells] == u)
        assert ratings.user_count[u] == cells.size
        values = ratings.cell_value[cells]
        assert math.isclose(ratings.user_sum[u], float(values.sum()), abs_tol=1e-9)
        assert math.isclose(ratings.user_sumsq[u], float((values * values).sum()), abs_tol=1e-9)
        if state.users.id_of[u] is None:
            assert cells.size == 0
    # each user's item slots ascending, as kept between reads (knn_baseline's b_u sums in that
    # order): twice, so that the second read comes from what the first one kept
    for _ in range(2):
        where, items = ratings.sorted_items(np.arange(nu, dtype=np.int64))
        for u in range(nu):
            mine = sorted(ratings.cell_item[ratings.by_user.row(u)].tolist())
            assert items[where == u].tolist() == mine
    for i in range(ni):
        cells = ratings.by_item.row(i)
        assert np.all(ratings.cell_item[cells] == i)
        assert np.array_equal(ratings.item_users.row(i), ratings.cell_user[cells])
        assert ratings.cell_pos[cells].tolist() == list(range(cells.size))  # kept positions
        assert ratings.item_values.row(i).tolist() == ratings.cell_value[cells].tolist()
        assert ratings.item_count[i] == cells.size
        assert math.isclose(
            ratings.item_sum[i], float(ratings.cell_value[cells].sum()), abs_tol=1e-9
        )
    pairs = state.pairs
    assert pairs is not None
    if any(value * 2 != round(value * 2) for value in truth.values()):
        assert not pairs.integer
    if not off_grid:
        assert pairs.integer
    users = ratings.cell_user[live].astype(np.int64)
    items = ratings.cell_item[live].astype(np.int64)
    values = ratings.cell_value[live]
    scale = SCALE if pairs.integer else None
    for lo, hi, block in pair_sum_blocks(users, items, values, nu, scale=scale, block_rows=3):
        held = pairs.block(lo, hi, nu) if lo // 512 == (hi - 1) // 512 else None
        assert held is not None
        if pairs.integer:
            assert np.array_equal(held.astype(np.int64), block)
        else:
            assert np.allclose(held, block, rtol=0, atol=1e-9)


def apply_to_truth(truth: dict[tuple[str, str], float], event: Event) -> None:
    if isinstance(event, RatingEvent):
        truth[(event.user_id, event.item_id)] = event.rating
    elif isinstance(event, UnrateEvent):
        del truth[(event.user_id, event.item_id)]
    else:
        for cell in [c for c in truth if c[0] == event.user_id]:
            del truth[cell]


def replay_and_check(stream: list[Event], cuts: list[int], reload_at: int = 0) -> None:
    """Feed ``stream`` in batches of the sizes ``cuts`` (then one by one), checking the storage
    against the plain dict after every batch; reload from a checkpoint once past ``reload_at``."""
    stream = valid(stream)
    model = UserKNN(rating_scale=(-100.0, 100.0))
    truth: dict[tuple[str, str], float] = {}
    off_grid = False
    pos = 0
    sizes = iter(cuts)
    while pos < len(stream):
        batch = stream[pos : pos + next(sizes, 1)]
        pos += len(batch)
        if len(batch) == 1:
            model.apply(batch[0])
        else:
            model.apply_many(batch)
        for event in batch:
            apply_to_truth(truth, event)
        off_grid |= any(isinstance(e, RatingEvent) and e.rating in OTHERS for e in batch)
        check_storage(model, truth, off_grid)
        if reload_at and pos >= reload_at:
            reload_at = 0
            buf = io.BytesIO()
            model.save(buf)
            buf.seek(0)
            model = UserKNN.load(buf)
            off_grid = not model.state.pairs.integer  # type: ignore[union-attr]
            check_storage(model, truth, off_grid)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=events, cuts=st.lists(st.integers(1, 8), max_size=10), reload_at=st.integers(0, 40))
def test_storage_follows_every_event(stream: list[Event], cuts: list[int], reload_at: int) -> None:
    replay_and_check(stream, cuts, reload_at)


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.booleans(), st.lists(st.integers(0, 6), min_size=1, max_size=12)),
        max_size=40,
    )
)
def test_row_pool_matches_plain_lists(ops: list[tuple[bool, list[int]]]) -> None:
    pool = RowPool()
    pool.ensure(7)
    plain: list[list[int]] = [[] for _ in range(7)]
    counter = 0
    for remove, rows in ops:
        if remove:
            picked = [(r, plain[r][0]) for r in sorted(set(rows)) if plain[r]]
            if not picked:
                continue
            if len(picked) == 1:
                pool.remove_one(*picked[0])
            else:
                pool.remove(
                    np.array([r for r, _ in picked], dtype=np.int64),
                    np.array([e for _, e in picked], dtype=np.int64),
                )
            for r, e in picked:
                plain[r].remove(e)
        else:
            entries = list(range(counter, counter + len(rows)))
            counter += len(rows)
            pool.append(np.array(rows, dtype=np.int64), np.array(entries, dtype=np.int64))
            for r, e in zip(rows, entries, strict=True):
                plain[r].append(e)
        for r in range(7):
            assert pool.row(r).tolist() == plain[r]
        if len(rows) == 1 and not remove:  # a row emptied: its stretch to a free list
            pool.remove(np.array([rows[0]]), np.array([plain[rows[0]][-1]]))
            plain[rows[0]].pop()
            if not plain[rows[0]]:
                pool.clear(rows[0])
            assert pool.row(rows[0]).tolist() == plain[rows[0]]
        caps = pool.cap[:7]
        assert np.all((caps == 0) | (caps & (caps - 1) == 0))  # stretches of 2^k entries
        free = [(s, 1 << k) for k, starts in pool.free.items() for s in starts]
        spans = sorted([*free, *((int(pool.start[r]), int(caps[r])) for r in range(7) if caps[r])])
        assert all(a + n <= b for (a, n), (b, _m) in itertools.pairwise(spans))
        if counter % 3 == 0:  # the stretches left behind by moved rows are dropped
            pool._compact()
            assert pool.used == pool.reserved == int(pool.cap.sum())
            assert [pool.row(r).tolist() for r in range(7)] == plain
        lengths, flat = pool.to_arrays(7)
        again = RowPool.from_arrays(lengths, flat)
        assert [again.row(r).tolist() for r in range(7)] == plain


@settings(max_examples=150, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(("insert", "remove", "set", "clear")),
            st.integers(0, 4),
            st.lists(st.integers(0, 30), max_size=20),
        ),
        max_size=80,
    )
)
def test_row_pool_sorted_rows_match_plain_lists(ops: list[tuple[str, int, list[int]]]) -> None:
    """Rows kept ascending (the ratings' sorted item slots): insert_sorted_one puts an entry in
    its place, remove_one takes it out, set_row_one replaces the row; the rows equal plain
    sorted lists and the stretches never overlap."""
    pool = RowPool()
    pool.ensure(5)
    plain: list[list[int]] = [[] for _ in range(5)]
    for op, r, values in ops:
        if op == "insert":
            fresh = [v for v in values if v not in plain[r]][:1]
            for v in fresh:
                pool.insert_sorted_one(r, v)
                plain[r] = sorted([*plain[r], v])
        elif op == "remove" and plain[r]:
            v = plain[r][len(values) % len(plain[r])]
            pool.remove_one(r, v)
            plain[r].remove(v)
        elif op == "set":
            plain[r] = sorted(set(values))
            pool.set_row_one(r, np.array(plain[r], dtype=np.int32))
        elif op == "clear":
            pool.clear(r)
            plain[r] = []
        assert [pool.row(k).tolist() for k in range(5)] == plain
        caps = pool.cap[:5]
        assert np.all(pool.length[:5] <= caps)
        free = [(s, 1 << k) for k, starts in pool.free.items() for s in starts]
        spans = sorted([*free, *((int(pool.start[k]), int(caps[k])) for k in range(5) if caps[k])])
        assert all(a + n <= b for (a, n), (b, _m) in itertools.pairwise(spans))


@settings(max_examples=100, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(("append", "remove", "clear")), st.integers(0, 4)),
        max_size=120,
    )
)
def test_row_pool_one_entry_paths_match_the_batch_paths(ops: list[tuple[str, int]]) -> None:
    """append_one / remove_one (the single-event path, its row moves in scalar arithmetic) leave
    the pool exactly as append / remove of one entry: the same rows, stretches and free lists."""
    one, batch = RowPool(), RowPool()
    one.ensure(5)
    batch.ensure(5)
    counter = 0
    for op, r in ops:
        rows = np.array([r], dtype=np.int64)
        if op == "append":
            one.append_one(r, counter)
            batch.append(rows, np.array([counter], dtype=np.int64))
            counter += 1
        elif op == "remove" and one.length[r]:
            entry = int(one.row(r)[0])
            one.remove_one(r, entry)
            batch.remove(rows, np.array([entry], dtype=np.int64))
        elif op == "clear":
            one.clear(r)
            batch.clear(r)
        for name in ("start", "length", "cap"):
            assert np.array_equal(getattr(one, name), getattr(batch, name))
        assert (one.used, one.reserved, one.free) == (batch.used, batch.reserved, batch.free)
        assert all(one.row(k).tolist() == batch.row(k).tolist() for k in range(5))


def test_grow_array_inside_a_reservation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past RESERVE_FROM bytes an array grows as a longer view of one mapping: no copy, the old
    entries kept, the new ones zero (or the fill), earlier views still valid; a growth from a
    stale, shorter view clears what lies past it."""
    monkeypatch.setattr(storage, "RESERVE_FROM", 256)
    monkeypatch.setattr(storage, "RESERVE_BYTES", 1 << 20)
    small = np.arange(10, dtype=np.int64)
    a = storage.grow_array(small, 40)  # 64 x 8 bytes: into a new reservation (the one copy)
    reserve = storage.reservation_of(a)
    if reserve is None:
        pytest.skip("no anonymous mappings here: growth by copying")
    assert a.tolist()[:10] == list(range(10)) and not a[10:].any()
    a[10:] = 7
    b = storage.grow_array(a, a.size + 1)
    assert storage.reservation_of(b) is reserve
    assert np.shares_memory(a, b) and b.ctypes.data == a.ctypes.data
    assert b[: a.size].tolist() == a.tolist() and not b[a.size :].any()
    b[a.size :] = 5
    c = storage.grow_array(a, b.size + 1)  # from the stale view a: b's extra rows cleared
    assert c[: a.size].tolist() == a.tolist() and not c[a.size :].any()
    d = storage.grow_array(c, c.size + 1, fill=-1)
    assert (d[c.size :] == -1).all()
    two = storage.grow_array(np.ones((3, 2), dtype=np.int32), 50)
    assert two.shape[1] == 2 and two[:3].all() and not two[3:].any()
    huge = storage.grow_array(d, (1 << 20) // 8 + 1)  # past the reservation: a new one
    assert storage.reservation_of(huge) is not reserve
    assert huge[: d.size].tolist() == d.tolist() and not huge[d.size :].any()


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=events, cuts=st.lists(st.integers(1, 8), max_size=10))
def test_storage_in_reservations(stream: list[Event], cuts: list[int]) -> None:
    """The same checks with every array grown inside reservations from 64 bytes on."""
    saved = storage.RESERVE_FROM, storage.RESERVE_BYTES
    storage.RESERVE_FROM, storage.RESERVE_BYTES = 64, 1 << 16
    try:
        replay_and_check(stream, cuts)
    finally:
        storage.RESERVE_FROM, storage.RESERVE_BYTES = saved


@settings(max_examples=150, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(("append", "append_one", "remove", "remove_one", "put")),
            st.lists(st.integers(0, 4), min_size=1, max_size=8),
        ),
        max_size=60,
    )
)
def test_a_pool_kept_beside_another_follows_it(ops: list[tuple[str, list[int]]]) -> None:
    """A float64 pool kept beside an int32 one (appends with ``beside``, removals by what
    ``remove``/``remove_one`` return, entries set at ``positions``) holds, row by row and in
    the same order, the values of the other pool's entries."""
    keys, values = RowPool(), RowPool(np.float64)
    keys.ensure(5)
    values.ensure(5)
    plain: list[list[tuple[int, float]]] = [[] for _ in range(5)]
    counter = 0
    for op, drawn in ops:
        rows = drawn[:1] if op == "append_one" else drawn
        if op in ("append", "append_one"):
            entries = list(range(counter, counter + len(rows)))
            vals = [0.5 * e - 3.25 for e in entries]
            counter += len(rows)
            if op == "append_one":
                keys.append_one(rows[0], entries[0])
                values.append_one(rows[0], vals[0])
            else:
                at = keys.append(
                    np.array(rows, dtype=np.int64),
                    np.array(entries, dtype=np.int64),
                    beside=((values, np.array(vals)),),
                )
            for r, e, v in zip(rows, entries, vals, strict=True):
                plain[r].append((e, v))
            if op == "append":  # each new entry's place in its row, as returned
                assert at.tolist() == [
                    plain[r].index((e, v)) for r, e, v in zip(rows, entries, vals, strict=True)
                ]
            continue
        picked = [(r, plain[r][len(plain[r]) // 2]) for r in sorted(set(rows)) if plain[r]]
        if not picked:
            continue
        if op == "remove_one":
            r, (e, _v) = picked[0]
            values.remove_at(r, keys.remove_one(r, e))
            plain[r].remove((e, _v))
        elif op == "remove":
            values.keep(
                *keys.remove(
                    np.array([r for r, _ in picked], dtype=np.int64),
                    np.array([e for _, (e, _v) in picked], dtype=np.int64),
                )
            )
            for r, pair in picked:
                plain[r].remove(pair)
        else:  # put: a new value for each picked entry
            at_rows = np.array([r for r, _ in picked], dtype=np.int64)
            at = np.array([plain[r].index(pair) for r, pair in picked], dtype=np.int64)
            values.put(at_rows, at, np.array([v + 100.0 for _, (_e, v) in picked]))
            for r, (e, v) in picked:
                plain[r][plain[r].index((e, v))] = (e, v + 100.0)
        for r in range(5):
            assert keys.row(r).tolist() == [e for e, _ in plain[r]]
            assert values.row(r).tolist() == [v for _, v in plain[r]]
