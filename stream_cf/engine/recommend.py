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
        dev = st.grid.values[:high, :items] - self.means[:, None]
        self.dev32: F32Array = np.where(mask, dev, 0.0).astype(np.float32)
        self.mask32: F32Array = mask.astype(np.float32)
        self.mask_t: BoolArray = np.ascontiguousarray(mask.T)

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
        dev = st.grid.values[rows, :items] - means[:, None]
        self.dev32[rows] = np.where(mask, dev, 0.0)
        self.mask32[rows] = mask
        self.mask_t[:, rows] = mask.T


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
) -> FloatArray:
    """Exact clipped scores of the item slots ``cols`` for user slot u, bit for bit as predict.

    ``raters`` is each column's number of usable raters. N(i;u) is the first min(raters, k) usable
    raters of the column in neighbour order (found by one scan of the item-major mask), except
    where a run of equal similarity crosses the k-th rater: those columns go through
    :func:`knn.select` (ties by sequence). Sums run in neighbour order, as :func:`knn.score`.
    """
    st = model.state
    k = model.k
    h = int(cols.size)
    m = int(nb.slots.size)
    low, high = model.rating_scale
    if h == 0:
        return np.zeros(0, dtype=np.float64)
    flat = np.flatnonzero(dense.mask_t[cols][:, nb.slots])  # column-major: rows ascending
    take = np.minimum(raters, k)
    starts = np.cumsum(raters) - raters
    total = int(take.sum())
    colpos = np.repeat(np.arange(h), take)
    offsets = np.arange(total) - np.repeat(np.cumsum(take) - take, take)
    rows = flat[np.repeat(starts, take) + offsets] - colpos * m
    slots = nb.slots[rows]
    values = st.grid.values
    r = values.ravel().take(slots * values.shape[1] + cols[colpos])
    w = nb.weights[rows]
    dev = r - dense.means[slots]
    num = np.bincount(colpos, weights=w * dev, minlength=h)
    den = np.bincount(colpos, weights=np.abs(w), minlength=h)
    with np.errstate(divide="ignore", invalid="ignore"):
        out: FloatArray = np.clip(st.mean_of(u) + num / den, low, high)
    heavy = np.flatnonzero(raters > k)
    if heavy.size:
        base = heavy * m
        kth = flat[starts[heavy] + k - 1] - base
        nxt = flat[starts[heavy] + k] - base
        for j in heavy[nb.group[kth] == nb.group[nxt]].tolist():
            rows_j = flat[starts[j] : starts[j] + raters[j]] - j * m
            out[j] = _tied_value(model, u, nb, col=int(cols[j]), rows=rows_j, dense=dense)
    return out


def _tied_value(
    model: UserKNN, u: int, nb: knn.Neighbourhood, *, col: int, rows: IntArray, dense: Dense
) -> float:
    """The exact score of one column whose run of equal similarity crosses the k-th rater:
    the raters before the run, then the run's raters with the earliest ratings (as
    :func:`knn.select`), summed in neighbour order."""
    st = model.state
    group = nb.group[rows]
    run = group[model.k - 1]
    before = rows[group < run]
    in_run = rows[group == run]
    seq = st.grid.seq[nb.slots[in_run], col]
    chosen = np.sort(in_run[np.argsort(seq, kind="stable")[: model.k - before.size]])
    rows = np.concatenate((before, chosen))
    slots = nb.slots[rows]
    w = nb.weights[rows]
    dev = st.grid.values[slots, col] - dense.means[slots]
    zeros = np.zeros(rows.size, dtype=np.int64)
    num = np.bincount(zeros, weights=w * dev, minlength=1)[0]
    den = np.bincount(zeros, weights=np.abs(w), minlength=1)[0]
    return model.clip(float(st.mean_of(u) + num / den))


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
    flags = usable.astype(np.float32)
    if b < SMALL:
        num = np.stack([row @ dense.dev32 for row in weights])
        den = np.stack([np.abs(row) @ dense.mask32 for row in weights])
        count = np.stack([row @ dense.mask32 for row in flags])
    else:
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
        exact_h = exact_values(model, u, nb=nb, cols=heavy, raters=raters[row, heavy], dense=dense)
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
        exact_l = exact_values(model, u, nb=nb, cols=redo, raters=raters[row, redo], dense=dense)
        cand = np.concatenate((heavy, redo))
        values = np.concatenate((exact_h, exact_l))
        best = knn.top_n(values, cand, n)
        out[user] = Recommendations(
            [(str(st.items.id_of[cand[i]]), float(values[i])) for i in best], None
        )
    return out
