"""The ``knn_baseline`` predictor: a baseline b_ui = μ + b_u + b_i and a damped kNN residual.

The baseline is read from running sums the state keeps exactly — per item n_i and S_i (Σ of its
ratings: ``item_count``, ``item_sum``), per user n_u and S_u (``user_count``, ``user_sum``), and the
global count and total — with λ_i = ``baseline_reg_items`` and λ_u = ``baseline_reg_users``::

    μ   = Σ r / n                                          (the global mean)
    b_i = (S_i − n_i·μ) / (λ_i + n_i)                        (0 for an item without ratings)
    b_u = Σ_{j∈I_u} (r_uj − μ − b_j) / (λ_u + n_u)
        = (S_u − n_u·μ − Σ_{j∈I_u} b_j) / (λ_u + n_u)

(the first pass of Koren's regularised baseline estimates, in closed form). Everything is computed
when read from the current ratings alone: no learning rate, no order, so rate, re-rate, unrate and
forget_user are reflected exactly and taking an event back returns every term to its prior value,
bit for bit while the sums are exact (e.g. half-step ratings). Σ_{j∈I_u} b_j is accumulated over
u's items in item-slot order (the ratings keep each user's items sorted between changes of that
user's items: :meth:`~stream_cf.engine.ratings.Ratings.sorted_segments`; the sums:
:mod:`~stream_cf.engine.rowsums`), so b_u does not depend on which other users are read with it,
nor on the order u's ratings arrived in.

The estimate, over the same neighbourhood N(i;u) as ``knn_means`` (the k usable raters of i most
similar to u, ties by the earlier rating of i), with λ = ``damping``::

    b_vi = μ + b_v + b_i
    r̂_ui = clip(b_ui + Σ_{v∈N(i;u)} w_uv·(r_vi − b_vi) / (Σ_{v∈N(i;u)} |w_uv| + λ))

λ > 0 pulls an estimate from few or weak neighbours towards the baseline. Fallbacks: unknown user
-> μ + b_i, unknown item -> μ + b_u, both -> μ, fewer than ``min_k`` usable neighbours -> b_ui.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from stream_cf.engine.rowsums import segment_sums
from stream_cf.engine.state import EngineState
from stream_cf.engine.storage import FloatArray, IntArray


@dataclass(frozen=True)
class Baseline:
    """μ, every item's b_i (by item slot) and λ_u, for one read of the state; the b_u read so
    far are kept beside them (``known``), since they hold until the ratings change."""

    mu: float
    items: FloatArray
    reg_users: float
    user_bias: FloatArray = field(default_factory=lambda: np.zeros(0))
    known: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=np.bool_))

    def users(self, st: EngineState, slots: IntArray, *, distinct: bool = False) -> FloatArray:
        """b_u of the given (existing) user slots: (S_u − n_u·μ − Σ_{j∈I_u} b_j) / (λ_u + n_u);
        those not read before in this read of the state are computed (the same sums: each b_u
        depends on u's own ratings only), the others looked up. ``distinct``: the caller
        knows the slots to be distinct (no deduplication needed)."""
        if self.known.size < st.users.high:
            return self.compute(st, slots)
        missing = slots[~self.known[slots]]
        if missing.size == slots.size and distinct:
            fresh = self.compute(st, slots)
            self.user_bias[slots] = fresh
            self.known[slots] = True
            return fresh
        if missing.size:
            if missing.size > 1:
                missing = np.unique(missing)
            self.user_bias[missing] = self.compute(st, missing)
            self.known[missing] = True
        out: FloatArray = self.user_bias[slots]
        return out

    def compute(self, st: EngineState, slots: IntArray) -> FloatArray:
        """b_u of the given user slots from their ratings (no lookup)."""
        # each user's items ascending (kept by the ratings between changes of the user's items)
        starts, lengths, pool = st.ratings.sorted_segments(slots)
        # sequential per user, in item-slot order: independent of the other rows
        item_part = segment_sums(starts, lengths, pool, self.items)
        n = st.ratings.user_count[slots]  # int64: each n·μ and λ_u + n as of float(n)
        out = st.ratings.user_sum[slots] - n * self.mu
        out -= item_part
        den = self.reg_users + n
        if self.reg_users > 0:  # den > 0 everywhere
            out /= den
            return out
        kept: FloatArray = np.divide(out, den, out=np.zeros(slots.size), where=den > 0)
        return kept

    def user(self, st: EngineState, slot: int) -> float:
        return float(self.users(st, np.array([slot], dtype=np.int64))[0])


def read(st: EngineState, reg_items: float, reg_users: float, empty_mean: float) -> Baseline:
    """The baseline of the current state; μ is ``empty_mean`` while there is no rating. Kept in
    ``st.memo`` until the ratings change (``ratings.version``) or other parameters are asked
    for: a read of an unchanged state is a lookup, with the b_u read before."""
    ratings = st.ratings
    key: tuple[float, ...] = (ratings.version, id(ratings), st.items.high, st.users.high)
    key = (*key, st.n_ratings, st.total, reg_items, reg_users, empty_mean)
    held = st.memo.get("baseline")
    if held is not None and held[0] == key:
        kept: Baseline = held[1]
        return kept
    out = _read(st, reg_items, reg_users, empty_mean)
    st.memo["baseline"] = (key, out)
    return out


def _read(st: EngineState, reg_items: float, reg_users: float, empty_mean: float) -> Baseline:
    high = st.items.high
    n = st.item_count[:high]  # int64: each n·μ and λ_i + n as of float(n)
    item_sum = st.ratings.item_sum
    mu = st.total / st.n_ratings if st.n_ratings else empty_mean
    items = item_sum[:high] - n * mu
    den = reg_items + n
    if reg_items > 0:  # an item without ratings has S_i = 0 exactly: (0 − 0·μ) / λ_i = 0
        items /= den
    else:
        items = np.divide(items, den, out=np.zeros(high), where=n > 0)
    users = st.users.high
    return Baseline(
        mu=mu,
        items=items,
        reg_users=reg_users,
        user_bias=np.zeros(users, dtype=np.float64),
        known=np.zeros(users, dtype=np.bool_),
    )


def estimate(b_ui: FloatArray, num: FloatArray, den: FloatArray, damping: float) -> FloatArray:
    """b_ui + Σ w·(r − b) / (Σ|w| + λ), element-wise (before clipping)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out: FloatArray = b_ui + num / (den + damping)
    return out


def residual_sums(
    base: Baseline,
    *,
    r: FloatArray,
    b_v: FloatArray,
    weights: FloatArray,
    item_slots: IntArray,
    colpos: IntArray,
    n_cols: int,
) -> tuple[FloatArray, FloatArray]:
    """Per column, Σ w_uv·(r_vi − b_vi) and Σ |w_uv| over the selected (neighbour, item) pairs
    (``r``: the neighbour's rating, ``b_v``: each pair's neighbour bias), summed sequentially in
    the order given (the neighbour order: np.bincount)."""
    dev = r - (base.mu + b_v + base.items[item_slots])
    num = np.bincount(colpos, weights=weights * dev, minlength=n_cols).astype(np.float64)
    den = np.bincount(colpos, weights=np.abs(weights), minlength=n_cols).astype(np.float64)
    return num, den
