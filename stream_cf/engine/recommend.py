"""Explicit-feedback recommendations for many users at once, exact.

For a batch B of users, with W[B, :] their similarity rows and M the users x items rating mask:

1. One float32 product over every user and item at once gives, per (user, item), the number of
   usable raters T = usable @ M (integers, exact in float32) and approximate sums
   num ≈ (W⊙usable) @ Dev, den ≈ |W⊙usable| @ M, Dev[v, i] = r_vi − r̄_v.
2. An item with T ≤ k usable raters ("light") takes them all: N(i;u) needs no selection and the
   approximate score r̄_u + num/den differs from the exact one by at most a rounding bound
   (:func:`margin`). An item with T > k ("heavy") needs the top-k selection: its exact sums come
   from :func:`knn.select` and :func:`knn.score`, restricted to those columns.
3. With c the n-th best of the exact heavy and approximate light scores, only the light items
   whose approximate score is within the margin of c can be in the exact top n; they are
   recomputed exactly (knn.score on those columns). The final list is then the exact top n:
   values bit for bit those of :meth:`UserKNN.predict`, order score descending then first
   appearance, whatever the other users of the batch.

The per-state arrays (Dev and M in float32) are kept between calls and refreshed only for the
users whose ratings changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from stream_cf.engine import knn
from stream_cf.engine.results import Recommendations
from stream_cf.engine.storage import BoolArray, FloatArray, IntArray

if TYPE_CHECKING:
    from stream_cf.engine.model import UserKNN

F32Array = npt.NDArray[np.float32]

CHUNK = 128  # users per float32 product (bounds the batch's temporary arrays)
SMALL = 8  # fewer users than this: matrix-vector products (see :func:`products`)
_U32 = float(np.finfo(np.float32).eps) / 2  # unit roundoff of float32
_UNRATED = -128  # twice_t of an unrated cell (2·value of a rating is in [-127, 127])
_TINY = 1e-20  # below this a usable |w| may lose its float32 precision: compute all exactly


class Dense:
    """The per-state arrays of a batch: Dev and M in float32 (users x items), the item-major
    rating mask (items x users) and the users' means.

    Built once, then kept up to date row by row: only the users whose ratings changed since
    (``EngineState.changed_rows``) are recomputed; a new user or item slot rebuilds it all.
    """

    def __init__(self, model: UserKNN) -> None:
        st = model.state
        self.shape = (st.users.high, st.items.high)
        st.changed_rows.clear()
        high, items = self.shape
        self.means = st.means()
        mask = st.grid.mask[:high, :items]
        self.dev32: F32Array = np.empty((high, items), dtype=np.float32)
        for lo in range(0, high, 256):  # by blocks of rows: no full-size float64 temporaries
            rows = slice(lo, min(lo + 256, high))
            dev = st.grid.values[rows, :items] - self.means[rows, None]
            self.dev32[rows] = np.where(mask[rows], dev, 0.0)
        self.mask32: F32Array = mask.astype(np.float32)
        self.mask_t: BoolArray = np.ascontiguousarray(mask.T)
        # the mask as 64-user words (words x items; bit v % 64 of word v // 64: user slot v),
        # for the counts of a few users' usable raters by popcount (:func:`products`)
        self.bits: npt.NDArray[np.uint64] = np.ascontiguousarray(pack(self.mask_t).T)
        # item-major 2·value as int8 while EngineState.twice_ok (every value a multiple of 0.5
        # with |value| <= 63.5; unrated cells hold _UNRATED): an exact, 8x smaller copy of the
        # grid that also serves as the mask in :func:`exact_values`, so that one gather gives the
        # raters and their ratings
        self.twice_t: npt.NDArray[np.int8] | None = None
        if st.twice_ok:
            user, item = np.nonzero(mask)  # only the ratings: no full-size temporaries
            self.twice_t = np.full((items, high), _UNRATED, dtype=np.int8)
            self.twice_t[item, user] = np.rint(2.0 * st.grid.values[user, item])

    def refresh(self, model: UserKNN) -> None:
        """Recompute the rows of the users whose ratings changed since the last refresh."""
        st = model.state
        rows = np.array(sorted(st.changed_rows), dtype=np.int64)
        st.changed_rows.clear()
        if rows.size == 0:
            return
        items = self.shape[1]
        diag = st.pairs.sums[rows, rows]
        means = np.zeros(rows.size, dtype=np.float64)
        np.divide(diag[:, 1], diag[:, 0], out=means, where=diag[:, 0] > 0)
        self.means[rows] = means
        mask = st.grid.mask[rows, :items]
        dev = st.grid.values[rows, :items]  # a copy: computed in place (one temporary)
        dev -= means[:, None]
        dev[~mask] = 0.0
        self.dev32[rows] = dev
        del dev
        self.mask32[rows] = mask
        self.mask_t[:, rows] = mask.T
        touched = np.unique(rows // 64)
        # the 64-user words holding a changed user, repacked from the item-major mask
        lanes = (touched[:, None] * 64 + np.arange(64)).ravel()
        block = np.zeros((items, lanes.size), dtype=np.bool_)
        inside = lanes < self.shape[0]
        block[:, inside] = self.mask_t[:, lanes[inside]]
        self.bits[touched] = pack(block).T
        if self.twice_t is not None:
            if st.twice_ok:
                twice = st.grid.values[rows, :items]  # a copy: computed in place
                twice *= 2.0
                np.rint(twice, out=twice)
                twice[~mask] = _UNRATED
                self.twice_t[:, rows] = twice.T.astype(np.int8)
            else:
                self.twice_t = None


def pack(mask: BoolArray) -> npt.NDArray[np.uint64]:
    """Rows of a boolean matrix as 64-bit words, little-endian bit order (column c is bit c % 64
    of word c // 64; missing columns of the last word are 0)."""
    rows, width = mask.shape
    words = (width + 63) // 64
    packed = np.zeros((rows, words * 8), dtype=np.uint8)
    packed[:, : (width + 7) // 8] = np.packbits(mask, axis=1, bitorder="little")
    return packed.view("<u8").astype(np.uint64, copy=False)


def dense_inputs(model: UserKNN) -> Dense:
    """:class:`Dense` for the current state (kept on the model, refreshed incrementally)."""
    st = model.state
    dense: Dense | None = getattr(model, "_dense", None)
    if dense is None or dense.shape != (st.users.high, st.items.high):
        dense = Dense(model)
        model._dense = dense  # type: ignore[attr-defined]
    else:
        dense.refresh(model)
    return dense


def margin(model: UserKNN, n_users: int) -> float:
    """A bound (x2) on |approximate − exact| score of a light item.

    With K = n_users terms, |dev| ≤ high − low and float32 inputs and sums, the numerator's error
    is at most (K + 3)·u·Σ|w|·|dev| ≤ (K + 3)·u·(high − low)·den and the denominator's
    (K + 2)·u·den, so the quotient's is at most about 2·(K + 3)·u·(high − low); the exact
    float64 sums add ~1e-13. Twice that, plus 1e-12, keeps the filter strict.
    """
    low, high = model.rating_scale
    return 4.0 * (n_users + 3) * _U32 * max(high - low, 1.0) * 1.01 + 1e-12


def exact_values(
    model: UserKNN,
    u: int,
    *,
    nb: knn.Neighbourhood,
    cols: IntArray,
    raters: IntArray,
    dense: Dense,
    clip: bool = True,
) -> FloatArray:
    """Exact clipped scores of the item slots ``cols`` for user slot u, bit for bit as predict
    (``clip=False``: the estimates before clipping).

    ``raters`` is each column's number of usable raters. N(i;u) is the first min(raters, k) usable
    raters of the column in neighbour order (found by one scan of the item-major mask), except
    where a run of equal similarity crosses the k-th rater (:func:`_tied`: ties by sequence, as
    :func:`knn.select`). Sums run in neighbour order, as :func:`knn.score`.
    """
    st = model.state
    k = model.k
    h = int(cols.size)
    m = int(nb.slots.size)
    low, high = model.rating_scale
    if h == 0:
        return np.zeros(0, dtype=np.float64)
    # column-major (rows ascending); np.take keeps the result C-ordered, a[:, idx] would not
    twice = None if dense.twice_t is None else np.take(dense.twice_t[cols], nb.slots, axis=1)
    if twice is not None:
        flat = np.flatnonzero(twice != _UNRATED)
    else:
        flat = np.flatnonzero(np.take(dense.mask_t[cols], nb.slots, axis=1))
    take = np.minimum(raters, k)
    starts = np.cumsum(raters) - raters
    idx = _ranges(starts, take)  # positions in flat of the first min(raters, k) of each column
    colpos = np.repeat(np.arange(h), take)
    heavy = np.flatnonzero(raters > k)
    if heavy.size:
        base = heavy * m
        kth = flat[starts[heavy] + k - 1] - base
        nxt = flat[starts[heavy] + k] - base
        tied = nb.group[kth] == nb.group[nxt]
        if np.any(tied):
            crossing = heavy[tied]
            extra_idx, extra_col = _tied(
                model,
                nb=nb,
                flat=flat,
                m=m,
                cols=cols,
                columns=(crossing, starts, raters),
                run=nb.group[kth[tied]],
            )
            other = np.ones(h, dtype=np.bool_)
            other[crossing] = False
            keep = other[colpos]
            idx = np.concatenate((idx[keep], extra_idx))
            colpos = np.concatenate((colpos[keep], extra_col))
    picked = flat[idx]
    rows = picked - colpos * m
    slots = nb.slots[rows]
    if twice is not None:
        r = twice.ravel().take(picked) * 0.5
    else:
        values = st.grid.values
        r = values.ravel().take(slots * values.shape[1] + cols[colpos])
    w = nb.weights[rows]
    dev = r - dense.means[slots]
    num = np.bincount(colpos, weights=w * dev, minlength=h)
    den = np.bincount(colpos, weights=np.abs(w), minlength=h)
    with np.errstate(divide="ignore", invalid="ignore"):
        out: FloatArray = st.mean_of(u) + num / den
    return np.clip(out, low, high) if clip else out


def _ranges(starts: IntArray, lengths: IntArray) -> IntArray:
    """The concatenated ranges [start, start + length) (np.arange per pair, vectorized)."""
    total = int(lengths.sum())
    shift = starts - (np.cumsum(lengths) - lengths)
    return np.repeat(shift, lengths) + np.arange(total)


def _tied(
    model: UserKNN,
    *,
    nb: knn.Neighbourhood,
    flat: IntArray,
    m: int,
    cols: IntArray,
    columns: tuple[IntArray, IntArray, IntArray],
    run: IntArray,
) -> tuple[IntArray, IntArray]:
    """N(i;u) of the columns whose run of equal similarity crosses the k-th rater: every rater
    before the run, then the run's raters with the earliest ratings (as :func:`knn.select`).
    Returns (positions in flat, column) of the selected raters, rows ascending per column."""
    crossing, starts, raters = columns
    count = raters[crossing]
    e_idx = _ranges(starts[crossing], count)
    local = np.repeat(np.arange(crossing.size), count)
    e_col = crossing[local]
    e_rows = flat[e_idx] - e_col * m
    group = nb.group[e_rows]
    run_e = run[local]
    before = group < run_e
    in_run = np.flatnonzero(group == run_e)
    need = model.k - np.bincount(local, weights=before, minlength=crossing.size).astype(np.int64)
    seq = model.state.grid.seq[nb.slots[e_rows[in_run]], cols[e_col[in_run]]]
    order = np.lexsort((seq, local[in_run]))
    sorted_local = local[in_run][order]
    rank = np.empty(in_run.size, dtype=np.int64)
    rank[order] = np.arange(in_run.size) - np.searchsorted(sorted_local, sorted_local)
    chosen = before.copy()
    chosen[in_run] = rank < need[local[in_run]]
    return e_idx[chosen], e_col[chosen]


def rating_order(
    values: FloatArray, raw: FloatArray, count: IntArray, cand: IntArray, n: int
) -> IntArray:
    """Positions of the n best, best first: by the (clipped) prediction, ties at the clip by the
    unclipped estimate, then by the number of neighbours, then by first appearance (slot)."""
    if n <= 0 or values.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((cand, -count, -raw, -values))
    return order[:n].astype(np.int64)


def recommend_slots(model: UserKNN, users: list[str], n: int) -> dict[str, Recommendations]:
    """Recommendations of known users (explicit feedback), ``CHUNK`` users per product."""
    out: dict[str, Recommendations] = {}
    for start in range(0, len(users), CHUNK):
        out.update(_chunk(model, users[start : start + CHUNK], n))
    return out


def products(
    weights: F32Array, usable: BoolArray, dense: Dense
) -> tuple[F32Array, F32Array, IntArray]:
    """(W⊙usable) @ Dev, |W⊙usable| @ M and usable @ M for the batch's rows (float32).

    Below ``SMALL`` rows, one matrix-vector product per row: OpenBLAS' matrix products with a
    few rows cost ~0.2 ms per row (packing), a matrix-vector product ~0.08 ms."""
    b = weights.shape[0]
    if b < SMALL:
        num = np.stack([row @ dense.dev32 for row in weights])
        den = np.stack([np.abs(row) @ dense.mask32 for row in weights])
        # the counts by popcount of the bit mask (~30x less memory than a product); word-major,
        # so that the sum over words adds whole rows
        count = np.stack(
            [
                np.add.reduce(
                    np.bitwise_count(dense.bits & pack(row[None, :]).T), axis=0, dtype=np.int64
                )
                for row in usable
            ]
        )
        return num, den, count
    flags = usable.astype(np.float32)
    num = weights @ dense.dev32
    both = np.concatenate((np.abs(weights), flags)) @ dense.mask32
    den, count = both[:b], both[b:]
    return num, den, count.astype(np.int64)  # counts of 0/1 terms: exact in float32


def _chunk(model: UserKNN, users: list[str], n: int) -> dict[str, Recommendations]:
    from stream_cf.engine.predict import popularity  # noqa: PLC0415 - predict imports us

    st = model.state
    slots = [st.users.slot_of[user] for user in users]
    dense = dense_inputs(model)
    n_users, n_items = dense.mask32.shape
    rows = np.stack([model.similarity_row(u) for u in slots])
    usable = model.usable(rows)
    weights = np.where(usable, rows, 0.0).astype(np.float32)
    num, den, raters = products(weights, usable, dense)
    k = model.k
    need = max(1, model.min_k)
    low, high = model.rating_scale
    gap = margin(model, n_users)
    out: dict[str, Recommendations] = {}
    for row, (user, u) in enumerate(zip(users, slots, strict=True)):
        count = np.minimum(raters[row], k)
        ok = (count >= need) & ~st.grid.mask[u, :n_items]
        pos = np.flatnonzero(ok)
        if pos.size == 0:
            out[user] = Recommendations(popularity(model, u, n), "no neighbours: popularity")
            continue
        nb = knn.neighbourhood(rows[row], usable[row])
        heavy_here = raters[row, pos] > k
        heavy = pos[heavy_here]
        light = pos[~heavy_here]
        mu = st.mean_of(u)
        with np.errstate(divide="ignore", invalid="ignore"):
            approx = np.clip(mu + num[row, light].astype(np.float64) / den[row, light], low, high)
        tiny = nb.weights.size and float(np.min(np.abs(nb.weights))) < _TINY
        raw_h = exact_values(
            model, u, nb=nb, cols=heavy, raters=raters[row, heavy], dense=dense, clip=False
        )
        exact_h = np.clip(raw_h, low, high)
        if tiny or not np.all(np.isfinite(approx)):
            redo = light
        elif n <= 0:
            redo = light[:0]
        else:
            mixed = np.concatenate((exact_h, approx))
            if mixed.size > n:
                cut = float(np.partition(mixed, mixed.size - n)[mixed.size - n])
            else:
                cut = -np.inf
            redo = light[approx >= cut - gap]
        raw_l = exact_values(
            model, u, nb=nb, cols=redo, raters=raters[row, redo], dense=dense, clip=False
        )
        cand = np.concatenate((heavy, redo))
        raw = np.concatenate((raw_h, raw_l))
        values = np.clip(raw, low, high)
        best = rating_order(values, raw, count[cand], cand, n)
        out[user] = Recommendations(
            [(str(st.items.id_of[cand[i]]), float(values[i])) for i in best], None
        )
    return out
