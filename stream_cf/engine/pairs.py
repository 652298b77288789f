"""Additive pair sums over co-rated items and their exact per-item update.

For every ordered pair of user slots (a, b) the array ``sums`` of shape (cap, cap, 4) holds,
over the items both a and b rated::

    sums[a, b] = [n, Σ r_a, Σ r_a², Σ r_a·r_b]

so that for the pair (u, v): n = sums[u,v,0], Σx = sums[u,v,1], Σy = sums[v,u,1],
Σx² = sums[u,v,2], Σy² = sums[v,u,2], Σxy = sums[u,v,3]. The diagonal holds each user's own
count, sum and sum of squares (the running mean is sums[u,u,1] / sums[u,u,0]).

Every sum is additive over items, so a change of one item's column is an exact block update: with
old values a (mask p) and new values b (mask q) over the union U of old and new raters, and
C ⊆ U the users whose cell changed, the change f(b_x,b_y)·q_x·q_y − f(a_x,a_y)·p_x·p_y (f the
4-vector above) is non-zero only on rows or columns in C. Integer or half ratings keep every sum
exact in float64, so taking a rating back restores the sums bit for bit.
"""

from __future__ import annotations

import numpy as np

from stream_cf.engine.storage import BoolArray, FloatArray, IntArray, grown


class PairSums:
    """The (cap, cap, 4) array of pair sums, grown as users appear."""

    def __init__(self) -> None:
        self.sums: FloatArray = np.zeros((0, 0, 4), dtype=np.float64)

    @property
    def capacity(self) -> int:
        return int(self.sums.shape[0])

    def ensure(self, n_users: int) -> None:
        """Grow (never shrink) so that ``n_users`` slots fit; new cells are zero."""
        cap = self.capacity
        if n_users <= cap:
            return
        new_cap = grown(cap, n_users)
        sums = np.zeros((new_cap, new_cap, 4), dtype=np.float64)
        sums[:cap, :cap] = self.sums
        self.sums = sums

    def clear(self, slot: int) -> None:
        """Zero a released slot's row and column (no residue may survive a user's erasure)."""
        self.sums[slot, :, :] = 0.0
        self.sums[:, slot, :] = 0.0

    def update_cell(
        self,
        x: int,
        others: IntArray,
        other_values: FloatArray,
        old: float | None,
        new: float | None,
    ) -> None:
        """Exact update for one changed cell (user ``x``, one item).

        ``others`` are the item's other current raters and ``other_values`` their values (they do
        not change). With d0 = q − p, d1 = b·q − a·p, d2 = b²·q − a²·p (p, q: old/new presence,
        a, b: old/new value of x), the row of x gains [d0, d1, d2, d1·y] and the column of x
        gains [d0, y·d0, y²·d0, y·d1] for each other rater with value y; the diagonal gains
        [d0, d1, d2, d2].
        """
        p = 0.0 if old is None else 1.0
        q = 0.0 if new is None else 1.0
        a = 0.0 if old is None else old
        b = 0.0 if new is None else new
        d0 = q - p
        d1 = b * q - a * p
        d2 = b * b * q - a * a * p
        sums = self.sums
        sums[x, x, 0] += d0
        sums[x, x, 1] += d1
        sums[x, x, 2] += d2
        sums[x, x, 3] += d2
        if others.size == 0:
            return
        row = np.empty((others.size, 4), dtype=np.float64)
        row[:, 0] = d0
        row[:, 1] = d1
        row[:, 2] = d2
        np.multiply(other_values, d1, out=row[:, 3])
        sums[x, others] += row
        col = np.empty((others.size, 4), dtype=np.float64)
        col[:, 0] = d0
        np.multiply(other_values, d0, out=col[:, 1])
        np.multiply(col[:, 1], other_values, out=col[:, 2])
        np.multiply(other_values, d1, out=col[:, 3])
        sums[others, x] += col

    def update_block(
        self,
        *,
        n_users: int,
        cell_users: IntArray,
        cell_cols: IntArray,
        old_values: FloatArray,
        old_mask: BoolArray,
        new_values: FloatArray,
        new_mask: BoolArray,
    ) -> None:
        """Exact update for many changed cells at once (a micro-batch), vectorized over items.

        ``old_values``/``old_mask`` are the grid's columns of the touched items before the batch
        (shape n_users x n_touched, values 0 where absent) and ``new_values``/``new_mask`` after
        it; ``cell_users``/``cell_cols`` list the changed cells (each once), ``cell_cols``
        indexing the touched columns. For a changed cell (x, t) and every y in the union of t's
        old and new raters the row of x gains Δ[x, y] = f(b_x,b_y)q_xq_y − f(a_x,a_y)p_xp_y; for
        every such y whose cell in t did not change the column of x gains Δ[y, x]. Each
        (item, ordered pair) is thus counted once, which equals applying the cells one by one.
        """
        if cell_users.size == 0:
            return
        changed_users, x_local = np.unique(cell_users, return_inverse=True)
        n_changed = int(changed_users.size)
        union_t = np.ascontiguousarray((old_mask | new_mask).T)  # touched x users
        t_of, y_of = np.nonzero(union_t)
        per_col = np.bincount(t_of, minlength=union_t.shape[0])
        starts = np.concatenate(([0], np.cumsum(per_col)[:-1]))
        counts = per_col[cell_cols]
        total = int(counts.sum())
        cell = np.repeat(np.arange(cell_users.size), counts)
        offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        y = y_of[starts[cell_cols[cell]] + offsets]
        t = cell_cols[cell]
        x = cell_users[cell]
        xl = x_local[cell]

        a_x = old_values[x, t]
        b_x = new_values[x, t]
        p_x = old_mask[x, t].astype(np.float64)
        q_x = new_mask[x, t].astype(np.float64)
        a_y = old_values[y, t]
        b_y = new_values[y, t]
        p_y = old_mask[y, t].astype(np.float64)
        q_y = new_mask[y, t].astype(np.float64)

        # rows of the changed users: Δ[x, y] for every y in the union
        qq = q_x * q_y
        pp = p_x * p_y
        rows = np.empty((4, n_changed * n_users), dtype=np.float64)
        index = xl * n_users + y
        size = n_changed * n_users
        rows[0] = np.bincount(index, weights=qq - pp, minlength=size)
        rows[1] = np.bincount(index, weights=b_x * qq - a_x * pp, minlength=size)
        rows[2] = np.bincount(index, weights=b_x * b_x * qq - a_x * a_x * pp, minlength=size)
        rows[3] = np.bincount(index, weights=b_x * b_y - a_x * a_y, minlength=size)
        self.sums[changed_users, :n_users] += rows.T.reshape(n_changed, n_users, 4)

        # columns of the changed users: Δ[y, x] for every y whose cell did not change
        same = (p_y == q_y) & (a_y == b_y)
        same &= ~_changed_lookup(cell_users, cell_cols, y, t, n_users)
        y_s = y[same]
        xl_s = xl[same]
        v_s = a_y[same]
        d0 = (q_x - p_x)[same]
        d1 = (b_x - a_x)[same]
        cols = np.empty((4, n_users * n_changed), dtype=np.float64)
        index = y_s * n_changed + xl_s
        size = n_users * n_changed
        cols[0] = np.bincount(index, weights=d0, minlength=size)
        cols[1] = np.bincount(index, weights=v_s * d0, minlength=size)
        cols[2] = np.bincount(index, weights=v_s * v_s * d0, minlength=size)
        cols[3] = np.bincount(index, weights=v_s * d1, minlength=size)
        self.sums[:n_users, changed_users] += cols.T.reshape(n_users, n_changed, 4)


def _changed_lookup(
    cell_users: IntArray, cell_cols: IntArray, y: IntArray, t: IntArray, n_users: int
) -> BoolArray:
    """Whether each (y, t) is one of the changed cells (keys compared as y·cols + t)."""
    n_cols = int(cell_cols.max()) + 1
    keys = np.sort(cell_users * n_cols + cell_cols)
    probe = y * n_cols + t
    pos = np.searchsorted(keys, probe)
    pos[pos == keys.size] = 0
    hit: BoolArray = keys[pos] == probe
    return hit
