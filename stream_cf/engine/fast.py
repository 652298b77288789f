"""The common micro-batch, vectorized end to end: ratings (and purchases in implicit mode) only,
every event valid. Anything else goes through :class:`stream_cf.engine.batch.Simulation`."""

from __future__ import annotations

from operator import attrgetter

import numpy as np

from stream_cf.engine.commit import commit_cells
from stream_cf.engine.config import EngineConfig
from stream_cf.engine.results import BatchEffect
from stream_cf.engine.state import EngineState
from stream_cf.engine.storage import FloatArray, IntArray
from stream_cf.engine.validation import VALUE_LIMIT
from stream_cf.events import Event, PurchaseEvent, RatingEvent

_TYPE = attrgetter("type")
_USER = attrgetter("user_id")
_ITEM = attrgetter("item_id")
_RATING = attrgetter("rating")


def fast_batch(st: EngineState, cfg: EngineConfig, events: list[Event]) -> BatchEffect | None:
    """The common batch, vectorized end to end: only ratings (and purchases in implicit mode),
    every event valid. Returns None when the batch is not of that kind (the caller then
    simulates it event by event)."""
    # (map with attrgetter: the per-event Python of a batch at about half a list comprehension's)
    kinds = set(map(_TYPE, events))
    allowed = {"rating", "purchase"} if cfg.implicit else {"rating"}
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
        low, high = cfg.rating_scale
        if np.any(given < low) or np.any(given > high):
            return None
        amounts = given if not cfg.implicit else given * cfg.implicit_weights["rating"]
    else:
        amounts = np.empty(n, dtype=np.float64)
        weights = cfg.implicit_weights
        for pos, event in enumerate(events):
            if isinstance(event, RatingEvent):
                low, high = cfg.rating_scale
                if not low <= event.rating <= high:
                    return None
                amounts[pos] = float(event.rating) * weights["rating"]
            elif isinstance(event, PurchaseEvent):
                amounts[pos] = float(event.quantity) * weights["purchase"]
        if not np.all(np.isfinite(amounts)) or np.any(amounts <= 0):
            return None
    if cfg.implicit and not float(np.sum(amounts)) + st.ratings.max_value <= VALUE_LIMIT:
        return None  # a weight might pass the limit: the event-by-event path finds which
    seq0 = st.seq
    # one probe of the id tables per distinct id; the new ids in order of first appearance
    user_keys, item_keys = list(distinct_users), list(distinct_items)
    user_found = np.array(st.users.slot_of.lookup(user_keys), dtype=np.int64)
    item_found = np.array(st.items.slot_of.lookup(item_keys), dtype=np.int64)
    new_users = [user_keys[p] for p in np.flatnonzero(user_found < 0).tolist()]
    new_items = [item_keys[p] for p in np.flatnonzero(item_found < 0).tolist()]
    # grow the arrays once for the whole batch (the same capacities as growing id by id, without
    # the intermediate copies); new ids take fresh slots or the lowest free ones
    st.ensure(
        st.users.high + max(0, len(new_users) - len(st.users.free)),
        st.items.high + max(0, len(new_items) - len(st.items.free)),
    )
    new_slots = np.fromiter(map(st.users.add, new_users), np.int64, count=len(new_users))
    new_item_slots = np.fromiter(map(st.items.add, new_items), np.int64, count=len(new_items))
    cu = _slots(users, user_keys, user_found, new_slots)
    if new_slots.size:  # a new user's creation is its first event: seq0 + that position
        first = np.full(st.users.high, n, dtype=np.int64)
        np.minimum.at(first, cu, np.arange(n))
        st.user_since[new_slots] = seq0 + first[new_slots]
    ci = _slots(items, item_keys, item_found, new_item_slots)
    key = cu * st.items.high + ci
    _uniq, rev_first, hits = np.unique(key[::-1], return_index=True, return_counts=True)
    last = n - 1 - rev_first  # the last event of each cell
    cell_u = cu[last]
    cell_i = ci[last]
    if not cfg.implicit:
        commit_cells(st, cell_u, cell_i, amounts[last], seq0 + last)
    else:
        found = st.ratings.find(cell_u, cell_i)
        old = np.zeros(found.size)
        old[found >= 0] = st.ratings.cell_value[found[found >= 0]]
        raw = _accumulate(cfg.implicit_cap, key=key, amounts=amounts, last=last, hits=hits, old=old)
        commit_cells(st, cell_u, cell_i, raw, seq0 + last, cells=found)
    st.seq = seq0 + n
    return BatchEffect(
        users=frozenset(distinct_users),
        items=frozenset(distinct_items),
        forgotten=frozenset(),
        events=n,
    )


def _plain_ids(ids: dict[str, None]) -> bool:
    """Every id a non-empty ``str`` (what the event models guarantee unless bypassed)."""
    return "" not in ids and set(map(type, ids)) == {str}


def _accumulate(
    cap: float | None,
    *,
    key: IntArray,
    amounts: FloatArray,
    last: IntArray,
    hits: IntArray,
    old: FloatArray,
) -> FloatArray:
    """Implicit weights after the batch: old + each amount in event order, capped after each
    addition (as one by one). ``hits`` is how many events each cell has."""
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


def _slots(keys: list[str], distinct: list[str], found: IntArray, added: IntArray) -> IntArray:
    """The slot of each of ``keys``, from the slots ``found`` for the ``distinct`` keys (-1 for
    the new ones, which were ``added`` in that order): each event's key is looked up in a dict
    of the batch's distinct keys, small enough to stay in cache, not in the id table itself."""
    found[found < 0] = added
    rank = dict(zip(distinct, range(len(distinct)), strict=True))
    out: IntArray = found[np.fromiter(map(rank.__getitem__, keys), np.int64, count=len(keys))]
    return out
