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

from typing import Any

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
        exact32: bool = False,
        raters: IntArray | None = None,
    ) -> None:
        """Exact update for many changed cells at once (a micro-batch), vectorized over items.

        ``old_values``/``old_mask`` are the grid's columns of the touched items before the batch
        (shape n_users x n_touched, values 0 where absent) and ``new_values``/``new_mask`` after
        it; ``cell_users``/``cell_cols`` list the changed cells (each once), ``cell_cols``
        indexing the touched columns. For a changed cell (x, t) and every y in the union of t's
        old and new raters the row of x gains Δ[x, y] = f(b_x,b_y)q_xq_y − f(a_x,a_y)p_xp_y; for
        every such y whose cell in t did not change the column of x gains Δ[y, x]. Each
        (item, ordered pair) is thus counted once, which equals applying the cells one by one.
        With ``exact32`` (every value a multiple of 0.5, small enough that all products and
        partial sums are exact in float32) the dense products run in float32. ``raters`` (per
        touched column, about how many users rated it before or after) only feeds the choice
        between the dense and the pair-by-pair update; by default it is counted.
        """
        if cell_users.size == 0:
            return
        changed_users, x_local = np.unique(cell_users, return_inverse=True)
        n_cols = int(old_mask.shape[1])
        any_old = bool(old_mask[cell_users, cell_cols].any())
        # cost model (measured): dense products ~0.4 ns per multiply-add (float64; float32
        # about half), pairs ~400 ns each
        dense_rows = changed_users.size * (12 if any_old else 8)
        dense_cost = (0.2 if exact32 else 0.4) * dense_rows * n_cols * n_users
        if raters is None:
            raters = np.count_nonzero(old_mask | new_mask, axis=0)
        sparse_cost = 400.0 * float(raters[cell_cols].sum())
        if dense_cost < sparse_cost:
            self._update_dense(
                n_users=n_users,
                changed_users=changed_users,
                x_local=x_local,
                cell_users=cell_users,
                cell_cols=cell_cols,
                grids=(old_values, old_mask, new_values, new_mask),
                any_old=any_old,
                dtype=np.float32 if exact32 else np.float64,
            )
        else:
            self._update_sparse(
                n_users=n_users,
                changed_users=changed_users,
                x_local=x_local,
                cell_users=cell_users,
                cell_cols=cell_cols,
                grids=(
                    old_values.astype(np.float64, copy=False),
                    old_mask,
                    new_values.astype(np.float64, copy=False),
                    new_mask,
                ),
            )

    def _update_dense(
        self,
        *,
        n_users: int,
        changed_users: IntArray,
        x_local: IntArray,
        cell_users: IntArray,
        cell_cols: IntArray,
        grids: tuple[FloatArray, BoolArray, FloatArray, BoolArray],
        any_old: bool,
        dtype: type[np.floating[Any]] = np.float64,
    ) -> None:
        """The block update as matrix products over the touched columns (in ``dtype``).

        With G·[x, t] holding the changed cells' factors (q, b·q, b²·q, b; p, a·p, a²·p, a) and
        zero elsewhere, the rows of the changed users gain G_new @ Q_newᵀ − G_old @ P_oldᵀ (and
        b @ V_newᵀ − a @ V_oldᵀ for Σxy); the columns gain, from the raters whose cell did not
        change (U, values v), [U, U∘v, U∘v², U∘v] @ [d0, d0, d0, d1]ᵀ with d0 = q − p and
        d1 = b − a; for the users who changed nothing the n and Σxy channels of that equal the rows'
        (both are symmetric), so only the changed users' own columns are multiplied out. Integer
        or half ratings keep every product and sum exact.
        """
        old_values, old_mask, new_values, new_mask = grids
        c = int(changed_users.size)
        n_cols = int(old_mask.shape[1])
        a = old_values[cell_users, cell_cols]
        b = new_values[cell_users, cell_cols]
        p = old_mask[cell_users, cell_cols].astype(np.float64)
        q = new_mask[cell_users, cell_cols].astype(np.float64)
        g_new = np.zeros((4, c, n_cols), dtype=dtype)
        g_new[0, x_local, cell_cols] = q
        g_new[1, x_local, cell_cols] = b * q
        g_new[2, x_local, cell_cols] = b * b * q
        g_new[3, x_local, cell_cols] = b
        counts = g_new[:3].reshape(3 * c, n_cols) @ new_mask.T.astype(dtype)
        cross = g_new[3] @ new_values.T.astype(dtype, copy=False)
        if any_old:
            g_old = np.zeros((4, c, n_cols), dtype=dtype)
            g_old[0, x_local, cell_cols] = p
            g_old[1, x_local, cell_cols] = a * p
            g_old[2, x_local, cell_cols] = a * a * p
            g_old[3, x_local, cell_cols] = a
            counts -= g_old[:3].reshape(3 * c, n_cols) @ old_mask.T.astype(dtype)
            cross -= g_old[3] @ old_values.T.astype(dtype, copy=False)
        rows = np.empty((c, n_users, 4), dtype=np.float64)
        rows[:, :, :3] = counts.reshape(3, c, n_users).transpose(1, 2, 0)
        rows[:, :, 3] = cross
        self.sums[changed_users, :n_users] += rows

        # the values of the cells that did not change (0 elsewhere)
        u_v = old_values.astype(dtype)
        u_v[cell_users, cell_cols] = 0.0
        d0 = np.zeros((n_cols, c), dtype=dtype)
        d1 = np.zeros((n_cols, c), dtype=dtype)
        d0[cell_cols, x_local] = q - p
        d1[cell_cols, x_local] = b - a
        cols = np.empty((n_users, c, 4), dtype=np.float64)
        # n and Σxy are symmetric: for a user y who changed nothing, Δ[y, x] = Δ[x, y] there
        cols[:, :, 0] = rows[:, :, 0].T
        cols[:, :, 3] = rows[:, :, 3].T
        cols[:, :, 1] = u_v @ d0
        cols[:, :, 2] = (u_v * u_v) @ d0
        # a user who changed cells too gets, on the column side, only the items they kept
        kept = old_mask[changed_users].astype(dtype)
        kept[x_local, cell_cols] = 0.0
        cols[changed_users, :, 0] = kept @ d0
        cols[changed_users, :, 3] = u_v[changed_users] @ d1
        self._add_columns(n_users, changed_users, cols)

    def _add_columns(self, n_users: int, users: IntArray, cols: FloatArray) -> None:
        """``sums[:n_users, users] += cols`` (cols: n_users x len(users) x 4), the same additions.

        The 4 sums of a cell are one 32-byte record: gathered, added to and written back as
        records (a ``take`` along the columns of a void view, ~3x cheaper than numpy's mixed
        slice/fancy ``+=`` over the 4-float cells).
        """
        sums = self.sums
        cap = sums.shape[0]
        cells = sums.reshape(cap, 4 * cap).view(np.dtype((np.void, 32)))  # shares sums' memory
        block = cells[:n_users].take(users, axis=1)
        values = block.view(np.float64).reshape(n_users, users.size, 4)
        values += cols
        cells[:n_users, users] = block

    def _update_sparse(
        self,
        *,
        n_users: int,
        changed_users: IntArray,
        x_local: IntArray,
        cell_users: IntArray,
        cell_cols: IntArray,
        grids: tuple[FloatArray, BoolArray, FloatArray, BoolArray],
    ) -> None:
        """The block update pair by pair (few changed cells per touched column's raters)."""
        old_values, old_mask, new_values, new_mask = grids
        n_changed = int(changed_users.size)
        n_cols = int(old_mask.shape[1])
        union_t = np.ascontiguousarray((old_mask | new_mask).T)  # touched x users
        t_of, y_of = np.nonzero(union_t)
        per_col = np.bincount(t_of, minlength=n_cols)
        starts = np.zeros(n_cols, dtype=np.int64)
        np.cumsum(per_col[:-1], out=starts[1:])
        counts = per_col[cell_cols]
        total = int(counts.sum())
        cell = np.repeat(np.arange(cell_users.size), counts)
        offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        y = y_of[np.repeat(starts[cell_cols], counts) + offsets]
        t = cell_cols[cell]
        xl = x_local[cell]

        # values of the changed cells, gathered per cell then spread to their pairs
        c_a = old_values[cell_users, cell_cols]
        c_b = new_values[cell_users, cell_cols]
        c_p = old_mask[cell_users, cell_cols].astype(np.float64)
        c_q = new_mask[cell_users, cell_cols].astype(np.float64)
        a_x = c_a[cell]
        b_x = c_b[cell]
        p_x = c_p[cell]
        q_x = c_q[cell]
        # values of the other side, by flat index into the touched columns
        flat = y * n_cols + t
        a_y = old_values.ravel().take(flat)
        b_y = new_values.ravel().take(flat)
        p_y = old_mask.ravel().take(flat)
        q_y = new_mask.ravel().take(flat)

        # rows of the changed users: Δ[x, y] for every y in the union
        qq = q_x * q_y
        pp = p_x * p_y
        size = n_changed * n_users
        index = xl * n_users + y
        rows = np.empty((4, size), dtype=np.float64)
        rows[0] = np.bincount(index, weights=qq - pp, minlength=size)
        rows[1] = np.bincount(index, weights=b_x * qq - a_x * pp, minlength=size)
        rows[2] = np.bincount(index, weights=(b_x * b_x) * qq - (a_x * a_x) * pp, minlength=size)
        rows[3] = np.bincount(index, weights=b_x * b_y - a_x * a_y, minlength=size)
        self.sums[changed_users, :n_users] += rows.T.reshape(n_changed, n_users, 4)

        # columns of the changed users: Δ[y, x] for every y whose cell did not change
        changed = np.zeros(old_mask.shape, dtype=np.bool_)
        changed[cell_users, cell_cols] = True
        same = ~changed.ravel().take(flat)
        y_s = y[same]
        v_s = a_y[same]
        d0 = (q_x - p_x)[same]
        d1 = (b_x - a_x)[same]
        v_d0 = v_s * d0
        index = y_s * n_changed + xl[same]
        cols = np.empty((4, size), dtype=np.float64)
        cols[0] = np.bincount(index, weights=d0, minlength=size)
        cols[1] = np.bincount(index, weights=v_d0, minlength=size)
        cols[2] = np.bincount(index, weights=v_s * v_d0, minlength=size)
        cols[3] = np.bincount(index, weights=v_s * d1, minlength=size)
        self.sums[:n_users, changed_users] += cols.T.reshape(n_users, n_changed, 4)
