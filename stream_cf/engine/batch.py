"""Micro-batches: reduce events to the net change per (user, item), then update in blocks.

The pair sums depend only on the final ratings, so a batch is applied as: (1) a cheap pass in
event order that validates each event against the simulated state and records, per
(user slot, item slot), the last value (or removal) and the sequence number of that change;
(2) one vectorized block update of the pair sums for all changed cells
(:meth:`~stream_cf.engine.pairs.PairSums.update_block`). This equals applying the events one by
one, slot assignment included: users are created and released in the same order, and when a
slot released inside the batch would be reused the batch is cut into segments there, each
segment committed in turn.

A bad event stops the batch: the events before it are committed (as they would be one by one)
and its exception is raised with a note giving its position.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np
import numpy.typing as npt

from stream_cf.engine.results import BatchEffect
from stream_cf.engine.storage import FloatArray, IntArray
from stream_cf.events import Event, PurchaseEvent, RatingEvent
from stream_cf.exceptions import InvalidEvent, StreamCFError, UnknownRating

if TYPE_CHECKING:
    from stream_cf.engine.model import UserKNN


@dataclass
class Segment:
    """Changes committed together: id-map operations in order, new items, changed cells."""

    ops: list[tuple[str, str, int, int]] = field(default_factory=list)  # (op, user, slot, seq)
    new_items: list[str] = field(default_factory=list)
    cells: dict[tuple[int, int], tuple[float | None, int]] = field(default_factory=dict)


class Simulation:
    """The state as the batch goes, as overlays over the engine's arrays."""

    def __init__(self, model: UserKNN) -> None:
        self.model = model
        st = model.state
        self.st = st
        self.seq = st.seq
        self.user_slot: dict[str, int | None] = {}
        self.free = list(st.users.free)
        self.high = st.users.high
        self.freed_here: set[int] = set()
        self.new_items: dict[str, int] = {}
        self.item_high = st.items.high
        self.cur: dict[int, dict[int, float | None]] = {}
        self.count: dict[int, int] = {}
        self.segments: list[Segment] = []
        self.seg = Segment()
        self.acted: set[str] = set()
        self.changed_items: set[int] = set()
        self.vanished: set[str] = set()

    # ------------------------------------------------------------------ lookups
    def lookup_user(self, user: str) -> int | None:
        if user in self.user_slot:
            return self.user_slot[user]
        return self.st.users.slot_of.get(user)

    def lookup_item(self, item: str) -> int | None:
        slot = self.st.items.slot_of.get(item)
        return self.new_items.get(item) if slot is None else slot

    def get(self, u: int, i: int) -> float | None:
        row = self.cur.get(u)
        if row is not None and i in row:
            return row[i]
        st = self.st
        if u < st.users.high and i < st.items.high and st.grid.mask[u, i]:
            return float(st.grid.values[u, i])
        return None

    def user_count(self, u: int) -> int:
        n = self.count.get(u)
        if n is None:
            n = self.st.user_count(u) if u < self.st.users.high else 0
            self.count[u] = n
        return n

    # ------------------------------------------------------------------ writes
    def put(self, u: int, i: int, value: float | None) -> None:
        row = self.cur.get(u)
        if row is None:
            row = self.cur[u] = {}
        row[i] = value
        self.seg.cells[(u, i)] = (value, self.seq)
        self.changed_items.add(i)

    def user_for_write(self, user: str) -> int:
        slot = self.lookup_user(user)
        if slot is not None:
            return slot
        slot = self.free[0] if self.free else self.high
        if slot in self.freed_here:  # reuse of a slot released in this segment: cut here
            self.segments.append(self.seg)
            self.seg = Segment()
            self.freed_here = set()
        if self.free:
            heapq.heappop(self.free)
        else:
            self.high += 1
        self.user_slot[user] = slot
        self.count[slot] = 0
        self.seg.ops.append(("add", user, slot, self.seq))
        return slot

    def item_for_write(self, item: str) -> int:
        slot = self.lookup_item(item)
        if slot is None:
            slot = self.item_high
            self.item_high += 1
            self.new_items[item] = slot
            self.seg.new_items.append(item)
        return slot

    def vanish(self, user: str, u: int) -> None:
        self.user_slot[user] = None
        heapq.heappush(self.free, u)
        self.freed_here.add(u)
        self.seg.ops.append(("remove", user, u, self.seq))
        self.vanished.add(user)

    # ------------------------------------------------------------------ events
    def step(self, event: Event) -> None:
        model = self.model
        kind = event.type
        user = event.user_id
        if kind == "forget_user":
            model.check_ids(user)
            self.forget(user)
            return
        item = event.item_id  # type: ignore[union-attr]
        model.check_ids(user, item)
        if kind == "unrate":
            u = self.lookup_user(user)
            i = self.lookup_item(item)
            if u is None or i is None or self.get(u, i) is None:
                raise UnknownRating(f"user {user!r} has no rating of item {item!r}")
            self.put(u, i, None)
            self.acted.add(user)
            self.count[u] = self.user_count(u) - 1
            if self.count[u] == 0:
                self.vanish(user, u)
            self.seq += 1
            return
        if kind == "rating":
            value = model.rating_value(event.rating)  # type: ignore[union-attr]
            amount = value * model.implicit_weights["rating"]
        elif kind == "purchase":
            amount = model.quantity_value(event.quantity)  # type: ignore[union-attr]
            if not model.implicit:
                raise InvalidEvent("unsupported_event", "a purchase needs feedback='implicit'")
            amount *= model.implicit_weights["purchase"]
        else:
            raise InvalidEvent("unknown_type", f"unknown event type {kind!r}")
        u = self.user_for_write(user)
        i = self.item_for_write(item)
        old = self.get(u, i)
        if model.implicit:
            value = model.accumulate(old, amount)
        self.put(u, i, value)
        self.acted.add(user)
        if old is None:
            self.count[u] = self.user_count(u) + 1
        self.seq += 1

    def forget(self, user: str) -> None:
        u = self.lookup_user(user)
        if u is None:
            return  # documented no-op: not even the counter moves
        st = self.st
        items: set[int] = set()
        if u < st.users.high:
            items.update(int(i) for i in np.flatnonzero(st.grid.mask[u, : st.items.high]))
        items.update(self.cur.get(u, {}))
        for i in sorted(items):
            if self.get(u, i) is not None:
                self.put(u, i, None)
        self.count[u] = 0
        self.vanish(user, u)
        self.seq += 1

    # ------------------------------------------------------------------ commit
    def commit(self) -> None:
        for segment in [*self.segments, self.seg]:
            commit_segment(self.model, segment)
        self.segments = []
        self.seg = Segment()
        self.st.seq = self.seq

    def effect(self, n_events: int) -> BatchEffect:
        st = self.st
        alive = st.users.slot_of
        return BatchEffect(
            users=frozenset(u for u in self.acted if u in alive),
            items=frozenset(str(st.items.id_of[i]) for i in self.changed_items),
            forgotten=frozenset(u for u in self.vanished if u not in alive),
            events=n_events,
        )


def commit_segment(model: UserKNN, seg: Segment) -> None:
    """Apply one segment's id-map operations and cells to the arrays, exactly."""
    st = model.state
    for item in seg.new_items:
        st.add_item(item)
    removed: list[int] = []
    for op, user, slot, seq in seg.ops:
        if op == "add":
            got = st.add_user(user, seq)
        else:
            got = st.users.remove(user)
            removed.append(slot)
        assert got == slot, "batch slot simulation diverged"
    if seg.cells:
        keys = list(seg.cells)
        n = len(keys)
        cu = np.fromiter((key[0] for key in keys), dtype=np.int64, count=n)
        ci = np.fromiter((key[1] for key in keys), dtype=np.int64, count=n)
        cells = list(seg.cells.values())
        raw = np.fromiter((np.nan if v is None else v for v, _s in cells), np.float64, count=n)
        seqs = np.fromiter((s for _v, s in cells), dtype=np.int64, count=n)
        commit_cells(model, cu, ci, raw, seqs)
    for slot in removed:
        st.changed_rows.add(slot)
        st.pairs.clear(slot)
        st.grid.clear_row(slot)
        st.user_since[slot] = 0


def commit_cells(
    model: UserKNN,
    cu: IntArray,
    ci: IntArray,
    raw: FloatArray,
    seqs: IntArray,
) -> None:
    """Write changed cells (user slot, item slot) -> value (NaN: removed) with their sequence
    numbers, and update the pair sums in one block. Each cell appears once."""
    st = model.state
    grid = st.grid
    n_users = st.users.high
    present = ~np.isnan(raw)
    vals = np.where(present, raw, 0.0)
    st.changed_rows.update(_distinct(cu, n_users).tolist())
    touched, tl = _distinct(ci, st.items.high, inverse=True)
    st.note_values(vals[present])
    # every product and partial sum is a multiple of 0.25 below 2**22: exact in float32
    exact32 = 16.0 * st.value_bound**2 * touched.size <= 2.0**24
    # the touched items' rows of the item-major mask and values (one contiguous read each; a
    # column gather of the user-major grid costs ~10x more)
    mask_t = grid.mask_t[touched, :n_users]
    values_t: npt.NDArray[Any]
    if exact32 and grid.twice_ok:  # the int8 2·value copy (the old state: written below)
        values_t = grid.twice_t[touched, :n_users]
        scale = 2.0
    else:
        # values are 0 where the mask is off: gather only the ~6% present cells
        at = np.flatnonzero(mask_t)
        t, r = np.divmod(at, n_users)
        values_t = np.zeros(mask_t.shape, dtype=np.float32 if exact32 else np.float64)
        values_t.ravel()[at] = grid.values.ravel().take(r * grid.values.shape[1] + touched[t])
        scale = 1.0
    was = mask_t[tl, cu]
    old_total = float(values_t[tl, cu][was].sum(dtype=np.float64)) / scale
    raters = st.item_count[touched] + np.bincount(tl, weights=present, minlength=touched.size)
    st.pairs.update_block(
        n_users=n_users,
        cell_users=cu,
        cell_cols=tl,
        mask_t=mask_t,
        values_t=values_t,
        new_values=vals,
        new_present=present,
        scale=scale,
        exact32=exact32,
        raters=raters.astype(np.int64),
    )
    grid.write(cu, ci, raw, seqs)
    delta = present.astype(np.int64) - was.astype(np.int64)
    np.add.at(st.item_count, ci, delta)
    st.n_ratings += int(delta.sum())
    st.total += float(vals.sum()) - old_total
    if st.n_ratings == 0:
        st.total = 0.0


@overload
def _distinct(slots: IntArray, high: int) -> IntArray: ...
@overload
def _distinct(
    slots: IntArray, high: int, *, inverse: Literal[True]
) -> tuple[IntArray, IntArray]: ...
def _distinct(
    slots: IntArray, high: int, *, inverse: bool = False
) -> IntArray | tuple[IntArray, IntArray]:
    """The distinct slots (below ``high``) in increasing order, and with ``inverse`` each
    slot's index among them: np.unique by a flag array (the slots are dense and bounded)."""
    seen = np.zeros(high, dtype=np.bool_)
    seen[slots] = True
    distinct = np.flatnonzero(seen)
    if not inverse:
        return distinct
    rank = np.cumsum(seen) - 1
    return distinct, rank[slots]


_TYPE = attrgetter("type")
_USER = attrgetter("user_id")
_ITEM = attrgetter("item_id")
_RATING = attrgetter("rating")


def fast_batch(model: UserKNN, events: list[Event]) -> BatchEffect | None:
    """The common batch, vectorized end to end: only ratings (and purchases in implicit mode),
    every event valid. Returns None when the batch is not of that kind (the caller then
    simulates it event by event)."""
    # (map with attrgetter: the per-event Python of a batch at about half a list comprehension's)
    kinds = set(map(_TYPE, events))
    allowed = {"rating", "purchase"} if model.implicit else {"rating"}
    if not kinds <= allowed:
        return None
    users: list[str] = list(map(_USER, events))
    items: list[str] = list(map(_ITEM, events))
    # the distinct ids in order of first appearance (checked once each, not once per event)
    distinct_users = dict.fromkeys(users)
    distinct_items = dict.fromkeys(items)
    if not (_plain_ids(distinct_users) and _plain_ids(distinct_items)):
        return None
    n = len(events)
    if kinds == {"rating"}:
        given = np.fromiter(map(_RATING, events), dtype=np.float64, count=n)
        if not np.all(np.isfinite(given)):
            return None
        low, high = model.rating_scale
        if np.any(given < low) or np.any(given > high):
            return None
        amounts = given if not model.implicit else given * model.implicit_weights["rating"]
    else:
        amounts = np.empty(n, dtype=np.float64)
        weights = model.implicit_weights
        for pos, event in enumerate(events):
            if isinstance(event, RatingEvent):
                low, high = model.rating_scale
                if not low <= event.rating <= high:
                    return None
                amounts[pos] = float(event.rating) * weights["rating"]
            elif isinstance(event, PurchaseEvent):
                amounts[pos] = float(event.quantity) * weights["purchase"]
        if not np.all(np.isfinite(amounts)) or np.any(amounts <= 0):
            return None
    st = model.state
    seq0 = st.seq
    slot_of = st.users.slot_of
    # new ids in order of first appearance (a set difference first: usually none are new)
    new_users = _new_ids(distinct_users, slot_of)
    item_slot = st.items.slot_of
    new_items = _new_ids(distinct_items, item_slot)
    # grow the arrays once for the whole batch (the same capacities as growing id by id, without
    # the intermediate copies); new ids take fresh slots or the lowest free ones
    st.ensure(
        st.users.high + max(0, len(new_users) - len(st.users.free)),
        st.items.high + max(0, len(new_items) - len(st.items.free)),
    )
    for user in new_users:
        st.add_user(user, seq0 + users.index(user))
    for item in new_items:
        st.add_item(item)
    cu = np.fromiter(map(slot_of.__getitem__, users), dtype=np.int64, count=n)
    ci = np.fromiter(map(item_slot.__getitem__, items), dtype=np.int64, count=n)
    key = cu * st.items.high + ci
    _uniq, rev_first, hits = np.unique(key[::-1], return_index=True, return_counts=True)
    last = n - 1 - rev_first  # the last event of each cell
    cell_u = cu[last]
    cell_i = ci[last]
    if not model.implicit:
        raw = amounts[last]
    else:
        old = np.where(st.grid.mask[cell_u, cell_i], st.grid.values[cell_u, cell_i], 0.0)
        raw = _accumulate(model, key=key, amounts=amounts, last=last, hits=hits, old=old)
    commit_cells(model, cell_u, cell_i, raw, seq0 + last)
    st.seq = seq0 + n
    return BatchEffect(
        users=frozenset(distinct_users),
        items=frozenset(distinct_items),
        forgotten=frozenset(),
        events=n,
    )


def _new_ids(distinct: dict[str, None], known: dict[str, int]) -> list[str]:
    """The ids of ``distinct`` (in its order) that ``known`` lacks."""
    new = distinct.keys() - known.keys()
    return [key for key in distinct if key in new] if new else []


def _plain_ids(ids: dict[str, None]) -> bool:
    """Every id a non-empty ``str`` (what the event models guarantee unless bypassed)."""
    return "" not in ids and set(map(type, ids)) == {str}


def _accumulate(
    model: UserKNN,
    *,
    key: IntArray,
    amounts: FloatArray,
    last: IntArray,
    hits: IntArray,
    old: FloatArray,
) -> FloatArray:
    """Implicit weights after the batch: old + each amount in event order, capped after each
    addition (as one by one). ``hits`` is how many events each cell has."""
    cap = model.implicit_cap
    out = old + amounts[last]
    if cap is not None:
        out = np.minimum(out, cap)
    several = np.flatnonzero(hits > 1)
    if several.size:
        cell_of = {int(key[last[c]]): int(c) for c in several}
        value = {c: float(old[c]) for c in cell_of.values()}
        for pos, k in enumerate(key.tolist()):
            c = cell_of.get(k)
            if c is not None:
                v = value[c] + float(amounts[pos])
                value[c] = v if cap is None else min(v, cap)
        for c, v in value.items():
            out[c] = v
    return out


def apply_batch(model: UserKNN, events: Iterable[Event]) -> BatchEffect:
    """Apply ``events`` in order as one micro-batch (see the module docstring)."""
    events = list(events)
    if events:
        effect = fast_batch(model, events)
        if effect is not None:
            return effect
    sim = Simulation(model)
    n_events = 0
    error: StreamCFError | None = None
    for event in events:
        try:
            sim.step(event)
        except StreamCFError as exc:
            exc.add_note(
                f"apply_many: event {n_events} of the batch was refused; "
                f"the {n_events} events before it were applied"
            )
            error = exc
            break
        n_events += 1
    sim.commit()
    if error is not None:
        raise error
    return sim.effect(n_events)
