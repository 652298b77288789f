"""The engine's state: id maps, the ratings, the optional pair sums and the running counters.

:class:`EngineState` owns the data and knows no formula; the functions above it
(:mod:`~stream_cf.engine.commit` writes, :mod:`~stream_cf.engine.neighbours`,
:mod:`~stream_cf.engine.ranking`, :mod:`~stream_cf.engine.predict` read) take it with an
:class:`~stream_cf.engine.config.EngineConfig`. Memory: the ratings in proportion to their number
(:mod:`~stream_cf.engine.ratings`), plus 12 bytes per ordered pair of user slots (24 per
unordered pair) when the configuration keeps pair sums (:mod:`~stream_cf.engine.pairs`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stream_cf.engine.ids import IdMap
from stream_cf.engine.owned import OwnedPairSums
from stream_cf.engine.pairs import PairSums
from stream_cf.engine.ratings import Ratings
from stream_cf.engine.storage import TWICE_LIMIT, FloatArray, IntArray, grow_array


class EngineState:
    """Users and items as dense slots, their ratings and (optionally) every pair's sums.

    A user exists while they have at least one rating (or purchase); when the last one goes, or on
    ``forget_user``, the user's slot is erased and released. Items keep their slot for ever (the
    slot order is the first appearance in the stream) but an item without raters is not listed.
    """

    def __init__(
        self, *, pair_sums: bool = True, owned_channels: tuple[int, ...] | None = None
    ) -> None:
        """``owned_channels``: keep pair sums for owned users only, these channels
        (:mod:`~stream_cf.engine.owned`); None: every pair (when ``pair_sums``)."""
        self.users = IdMap()
        self.items = IdMap()
        self.ratings = Ratings()
        self.pairs: PairSums | None = None
        if pair_sums:
            self.pairs = PairSums() if owned_channels is None else OwnedPairSums(owned_channels)
        self.user_since: IntArray = np.zeros(0, dtype=np.int64)  # seq of the user's creation
        self.seq = 0  # the global event counter (the next event gets this number)
        self.n_ratings = 0
        self.total = 0.0  # Σ of every rating (or weight), for the global mean
        # max |value| ever stored while every value was a multiple of 0.5 (inf after any other
        # value): products and sums of such values are exact in float32 up to a size (commit.py)
        # and the pair sums stay integers (pairs.py)
        self.value_bound = 0.0
        # reads derived from the ratings, kept by the functions above for as long as the ratings
        # do not change (each entry records the ratings.version it was computed at)
        self.memo: dict[str, Any] = {}

    # ------------------------------------------------------------------ capacity and slots
    def ensure(self, n_users: int, n_items: int) -> None:
        """Make room for ``n_users`` user slots and ``n_items`` item slots."""
        self.ratings.ensure(n_users, n_items)
        if self.pairs is not None:
            self.pairs.ensure(n_users)
        self.user_since = grow_array(self.user_since, n_users)

    def add_user(self, user: str, seq: int) -> int:
        slot = self.users.add(user)
        self.ensure(self.users.high, self.items.high)
        self.user_since[slot] = seq
        return slot

    def add_item(self, item: str) -> int:
        slot = self.items.add(item)
        self.ensure(self.users.high, self.items.high)
        return slot

    def release_slot(self, slot: int) -> None:
        """Erase a released user slot everywhere (privacy erasure; its ratings are gone)."""
        if self.pairs is not None:
            self.pairs.clear(slot)
        self.ratings.clear_user(slot)
        self.user_since[slot] = 0

    # ------------------------------------------------------------------ reads
    def pairs_of(self, slot: int) -> PairSums | None:
        """The pair sums that hold the user's row and column (None: compute from the
        ratings): every user's with full pair sums, only an owned user's with owned rows."""
        pairs = self.pairs
        if isinstance(pairs, OwnedPairSums) and not pairs.owns(slot):
            return None
        return pairs

    @property
    def item_count(self) -> IntArray:
        return self.ratings.item_count

    @property
    def twice_ok(self) -> bool:
        """Every value stored so far has an exact int8 2·value (a multiple of 0.5 with
        |value| <= 63.5)."""
        return self.value_bound <= TWICE_LIMIT

    def user_count(self, slot: int) -> int:
        return int(self.ratings.user_count[slot])

    def counts(self, slots: IntArray) -> FloatArray:
        """n_v, the number of items of each user slot, as floats."""
        counts: FloatArray = self.ratings.user_count[slots].astype(np.float64)
        return counts

    def means(self) -> FloatArray:
        """r̄_v = Σ_v / n_v for every user slot in use (0 for a free slot)."""
        high = self.users.high
        n = self.ratings.user_count[:high]
        out = np.zeros(high, dtype=np.float64)
        np.divide(self.ratings.user_sum[:high], n, out=out, where=n > 0)
        return out

    def means_at(self, slots: IntArray) -> FloatArray:
        """:meth:`means` at the given user slots (the same division)."""
        n = self.ratings.user_count[slots]
        out = np.zeros(slots.size, dtype=np.float64)
        np.divide(self.ratings.user_sum[slots], n, out=out, where=n > 0)
        return out

    def mean_of(self, slot: int) -> float:
        n = self.ratings.user_count[slot]
        return float(self.ratings.user_sum[slot] / n) if n > 0 else 0.0

    def raters_of(self, item_slot: int) -> IntArray:
        """The item's rater slots, ascending."""
        return self.ratings.item_row(item_slot)[0]

    def user_items(self, slot: int) -> IntArray:
        """The user's item slots, ascending."""
        return self.ratings.user_row(slot)[0]

    def note_values(self, values: FloatArray) -> None:
        """Keep :attr:`value_bound` up to date with newly stored values (it never decreases)."""
        if values.size == 0 or self.value_bound == np.inf:
            return
        twice = values * 2.0
        if not np.array_equal(twice, np.rint(twice)):
            self.value_bound = np.inf
        else:
            self.value_bound = max(self.value_bound, float(np.max(np.abs(values))))

    def note_value(self, value: float) -> None:
        """:meth:`note_values` of one value (scalar arithmetic, the same bound)."""
        if self.value_bound == np.inf:
            return
        twice = value * 2.0
        if twice != round(twice):
            self.value_bound = np.inf
        else:
            self.value_bound = max(self.value_bound, abs(value))

    @property
    def nbytes(self) -> dict[str, int]:
        """Bytes held: the ratings and id maps' arrays, and the pair sums (allocated tiles)."""
        pairs = 0 if self.pairs is None else self.pairs.nbytes
        return {"ratings_bytes": self.ratings.nbytes + self.user_since.nbytes, "pair_bytes": pairs}
