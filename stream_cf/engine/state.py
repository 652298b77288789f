"""The engine's state: id maps, the rating grid, the pair sums and the running counters.

:class:`EngineState` owns the arrays and the exact single-cell update; it knows no similarity
formula. :class:`~stream_cf.engine.model.UserKNN` validates events and reads predictions from it,
:mod:`stream_cf.engine.batch` applies micro-batches to it and :mod:`stream_cf.engine.persist`
saves it.
"""

from __future__ import annotations

import numpy as np

from stream_cf.engine.pairs import PairSums
from stream_cf.engine.storage import TWICE_LIMIT, FloatArray, IdMap, IntArray, RatingGrid


class EngineState:
    """Users and items as dense slots, their ratings and every pair's additive sums.

    A user exists while they have at least one rating (or purchase); when the last one goes, or on
    ``forget_user``, the user's slot is erased and released. Items keep their slot for ever (the
    slot order is the first appearance in the stream) but an item without raters is not listed.
    """

    def __init__(self) -> None:
        self.users = IdMap()
        self.items = IdMap()
        self.grid = RatingGrid()
        self.pairs = PairSums()
        self.item_count: IntArray = np.zeros(0, dtype=np.int64)  # raters per item slot
        self.item_sum: FloatArray = np.zeros(0, dtype=np.float64)  # Σ of the item's ratings
        self.user_since: IntArray = np.zeros(0, dtype=np.int64)  # seq of the user's creation
        self.seq = 0  # the global event counter (the next event gets this number)
        self.n_ratings = 0
        self.total = 0.0  # Σ of every rating (or weight), for the global mean
        # max |value| ever stored while every value was a multiple of 0.5 (inf after any other
        # value): products and sums of such values are exact in float32 up to a size (batch.py)
        self.value_bound = 0.0
        # user slots whose row (ratings, mean) changed since a reader last took them (the
        # batched recommendations keep derived per-user arrays and refresh only these rows)
        self.changed_rows: set[int] = set()

    # ------------------------------------------------------------------ capacity and slots
    def ensure(self, n_users: int, n_items: int) -> None:
        """Make room for ``n_users`` user slots and ``n_items`` item slots."""
        if n_users <= self.user_since.size and n_items <= self.item_count.size:
            return
        self.grid.ensure(n_users, n_items)
        self.pairs.ensure(self.grid.shape[0])
        rows, cols = self.grid.shape
        if self.item_count.size < cols:
            grown_count = np.zeros(cols, dtype=np.int64)
            grown_count[: self.item_count.size] = self.item_count
            self.item_count = grown_count
            grown_sum = np.zeros(cols, dtype=np.float64)
            grown_sum[: self.item_sum.size] = self.item_sum
            self.item_sum = grown_sum
        if self.user_since.size < rows:
            grown_since = np.zeros(rows, dtype=np.int64)
            grown_since[: self.user_since.size] = self.user_since
            self.user_since = grown_since

    def add_user(self, user: str, seq: int) -> int:
        slot = self.users.add(user)
        self.ensure(self.users.high, self.items.high)
        self.user_since[slot] = seq
        return slot

    def add_item(self, item: str) -> int:
        slot = self.items.add(item)
        self.ensure(self.users.high, self.items.high)
        return slot

    def release_user(self, user: str) -> int:
        """Erase the user's row and column everywhere and free the slot (privacy erasure)."""
        slot = self.users.remove(user)
        self.changed_rows.add(slot)
        self.pairs.clear(slot)
        self.grid.clear_row(slot)
        self.user_since[slot] = 0
        return slot

    # ------------------------------------------------------------------ reads
    @property
    def twice_ok(self) -> bool:
        """Every value stored so far has an exact int8 2·value (a multiple of 0.5 with
        |value| <= 63.5): the grid keeps its int8 copy and the recommendations theirs."""
        return self.value_bound <= TWICE_LIMIT

    def user_count(self, slot: int) -> int:
        return round(float(self.pairs.sums[slot, slot, 0]))

    def means(self) -> FloatArray:
        """r̄_v = Σ_v / n_v for every user slot in use (0 for a free slot)."""
        high = self.users.high
        idx = np.arange(high)
        diag = self.pairs.sums[idx, idx]
        out = np.zeros(high, dtype=np.float64)
        np.divide(diag[:, 1], diag[:, 0], out=out, where=diag[:, 0] > 0)
        return out

    def mean_of(self, slot: int) -> float:
        n = self.pairs.sums[slot, slot, 0]
        return float(self.pairs.sums[slot, slot, 1] / n) if n > 0 else 0.0

    def raters_of(self, item_slot: int) -> IntArray:
        return np.flatnonzero(self.grid.mask_t[item_slot, : self.users.high]).astype(np.int64)

    def note_values(self, values: FloatArray) -> None:
        """Keep :attr:`value_bound` up to date with newly stored values (it never decreases)."""
        if values.size == 0 or self.value_bound == np.inf:
            return
        twice = values * 2.0
        if not np.array_equal(twice, np.rint(twice)):
            self.value_bound = np.inf
        else:
            self.value_bound = max(self.value_bound, float(np.max(np.abs(values))))

    # ------------------------------------------------------------------ one cell
    def set_cell(self, user: str, item: str, new: float | None, seq: int) -> tuple[bool, bool]:
        """Set (or, with ``new=None``, remove) one rating, updating every sum exactly.

        Returns ``(created, vanished)``: whether the user was created, or erased because their
        last rating went. The caller has validated everything: a removal names an existing cell.
        """
        created = False
        u = self.users.slot_of.get(user)
        if u is None:
            u = self.add_user(user, seq)
            created = True
        i = self.items.slot_of.get(item)
        if i is None:
            i = self.add_item(item)
        grid = self.grid
        self.changed_rows.add(u)
        had = bool(grid.mask[u, i])
        old = float(grid.values[u, i]) if had else None
        others = self.raters_of(i)
        if had:
            others = others[others != u]
        self.pairs.update_cell(u, others, grid.values[others, i], old, new)
        if new is not None and self.value_bound != np.inf:
            twice = new * 2.0
            exact = twice == round(twice)
            self.value_bound = max(self.value_bound, abs(new)) if exact else np.inf
        grid.write_one(u, i, new, seq, twice=self.twice_ok)
        delta = (new is not None) - had
        self.item_count[i] += delta
        # Σ of the item's ratings; reset exactly when the last one goes (no rounding residue)
        change = (0.0 if new is None else new) - (0.0 if old is None else old)
        self.item_sum[i] = self.item_sum[i] + change if self.item_count[i] else 0.0
        self.n_ratings += delta
        self.total += change
        if self.n_ratings == 0:
            self.total = 0.0
        vanished = new is None and self.user_count(u) == 0
        if vanished:
            self.release_user(user)
        return created, vanished
