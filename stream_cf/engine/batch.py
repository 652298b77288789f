"""Micro-batches: reduce events to the net change per (user, item), then update in blocks.

The pair sums depend only on the final ratings, so a batch is applied as: (1) a cheap pass in
event order that validates each event against the simulated state and records, per
(user slot, item slot), the last value (or removal) and the sequence number of that change;
(2) one vectorized block update of the pair sums for all changed cells
(:meth:`~stream_cf.engine.pairs.PairSums.update_block`). This equals applying the events one by
one, slot assignment included: users are created and released in the same order, and when a
slot released inside the batch would be reused the batch is cut into segments there, each
segment committed in turn.

The common batch (ratings only, all valid) skips the event-by-event pass
(:func:`stream_cf.engine.fast.fast_batch`); both end in
:func:`stream_cf.engine.commit.commit_cells`. A bad event stops the batch: the events before it
are committed (as they would be one by one) and its exception is raised with a note giving its
position.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from stream_cf.engine import validation
from stream_cf.engine.commit import commit_cells, commit_one
from stream_cf.engine.config import EngineConfig
from stream_cf.engine.fast import fast_batch
from stream_cf.engine.results import BatchEffect
from stream_cf.engine.state import EngineState
from stream_cf.events import Event
from stream_cf.exceptions import InvalidEvent, StreamCFError, UnknownRating


@dataclass
class Segment:
    """Changes committed together: id-map operations in order, new items, changed cells."""

    ops: list[tuple[str, str, int, int]] = field(default_factory=list)  # (op, user, slot, seq)
    new_items: list[str] = field(default_factory=list)
    cells: dict[tuple[int, int], tuple[float | None, int]] = field(default_factory=dict)


class Simulation:
    """The state as the batch goes, as overlays over the engine's arrays."""

    def __init__(self, st: EngineState, cfg: EngineConfig) -> None:
        self.cfg = cfg
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
        if u < st.users.high and i < st.items.high:
            return st.ratings.get(u, i)
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
        cfg = self.cfg
        kind = event.type
        user = event.user_id
        if kind == "forget_user":
            validation.check_ids(user)
            self.forget(user)
            return
        item = event.item_id  # type: ignore[union-attr]
        validation.check_ids(user, item)
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
            value = validation.rating_value(event.rating, cfg.rating_scale)  # type: ignore[union-attr]
            amount = value * cfg.implicit_weights["rating"]
        elif kind == "purchase":
            amount = validation.quantity_value(event.quantity)  # type: ignore[union-attr]
            if not cfg.implicit:
                raise InvalidEvent("unsupported_event", "a purchase needs feedback='implicit'")
            amount *= cfg.implicit_weights["purchase"]
        else:
            raise InvalidEvent("unknown_type", f"unknown event type {kind!r}")
        u = self.user_for_write(user)
        i = self.item_for_write(item)
        old = self.get(u, i)
        if cfg.implicit:
            value = validation.accumulated(old, amount, cfg.implicit_cap)
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
            items.update(st.user_items(u).tolist())
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
            commit_segment(self.st, segment)
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


def commit_segment(st: EngineState, seg: Segment) -> None:
    """Apply one segment's id-map operations and cells to the arrays, exactly."""
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
        commit_cells(st, cu, ci, raw, seqs)
    for slot in removed:
        st.release_slot(slot)


def apply_batch(
    st: EngineState, cfg: EngineConfig, events: Iterable[Event], *, note: bool = True
) -> BatchEffect:
    """Apply ``events`` in order as one micro-batch (see the module docstring); ``note``: a
    refused event's exception says where in the batch it was."""
    events = list(events)
    if len(events) == 1 and not note:
        one = apply_one(st, cfg, events[0])
        if one is not None:
            return one
    if events:
        effect = fast_batch(st, cfg, events)
        if effect is not None:
            return effect
    sim = Simulation(st, cfg)
    n_events = 0
    error: StreamCFError | None = None
    for event in events:
        try:
            sim.step(event)
        except StreamCFError as exc:
            if note:
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


def apply_one(st: EngineState, cfg: EngineConfig, event: Event) -> BatchEffect | None:
    """One rating, purchase or unrate, validated and written as a single cell (the same result
    as a batch of one, without its block temporaries); None for any other event."""
    kind = event.type
    if kind not in ("rating", "purchase", "unrate"):
        return None
    user = event.user_id
    item = event.item_id  # type: ignore[union-attr]
    validation.check_ids(user, item)
    if kind == "rating":
        value = validation.rating_value(event.rating, cfg.rating_scale)  # type: ignore[union-attr]
        amount = value * cfg.implicit_weights["rating"]
    elif kind == "purchase":
        amount = validation.quantity_value(event.quantity)  # type: ignore[union-attr]
        if not cfg.implicit:
            raise InvalidEvent("unsupported_event", "a purchase needs feedback='implicit'")
        amount *= cfg.implicit_weights["purchase"]
    u = st.users.slot_of.get(user)
    i = st.items.slot_of.get(item)
    cell = -1 if u is None or i is None else st.ratings.cell_of(u, i)
    old = None if cell < 0 else float(st.ratings.cell_value[cell])
    seq = st.seq
    if kind == "unrate":
        if old is None or u is None or i is None:
            raise UnknownRating(f"user {user!r} has no rating of item {item!r}")
        commit_one(st, u, i, None, seq, cell=cell)
        st.seq += 1
        if st.user_count(u):
            return BatchEffect(frozenset((user,)), frozenset((item,)), frozenset(), 1)
        st.users.remove(user)
        st.release_slot(u)
        return BatchEffect(frozenset(), frozenset((item,)), frozenset((user,)), 1)
    if cfg.implicit:
        value = validation.accumulated(old, amount, cfg.implicit_cap)
    if u is None:
        u = st.add_user(user, seq)
    if i is None:
        i = st.add_item(item)
    commit_one(st, u, i, value, seq, cell=cell)
    st.seq += 1
    return BatchEffect(frozenset((user,)), frozenset((item,)), frozenset(), 1)
