"""Predictions and recommendations read from the engine's state (the kNN estimators).

Explicit feedback (Surprise's ``KNNWithMeans``), over N(i;u) the k usable raters of i most similar
to u (ties: the earlier rating of i)::

    r̂_ui = clip(r̄_u + Σ_{v∈N(i;u)} w_uv·(r_vi − r̄_v) / Σ_{v∈N(i;u)} |w_uv|)

Implicit feedback (a weighted vote of the user's own neighbourhood): N_k(u) = the k usable users
most similar to u (cosine; ties: the earlier created user), and

    ŝ_ui = Σ_{v∈N_k(u), v has i} w_uv·r_vi / Σ_{v∈N_k(u)} |w_uv|

(r_vi the accumulated weight); the candidates are the items some v ∈ N_k(u) has and u has not.
Fallbacks, with the reason recorded: unknown user -> global mean (implicit 0), unknown item -> r̄_u
(implicit 0), fewer than ``min_k`` usable neighbours -> r̄_u (implicit 0; and a popularity list
for recommendations); implicit, no v ∈ N_k(u) has the item -> 0.

One item (:func:`predict`) is computed from that item's raters only; all items
(:func:`recommendations`) from the vectorized selection of :mod:`stream_cf.engine.knn`; both
sum in the same order, so a recommended score equals :meth:`UserKNN.predict` bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from stream_cf.engine import knn, ranking, recommend
from stream_cf.engine.results import Explanation, Neighbour, Recommendations
from stream_cf.engine.storage import FloatArray, IntArray

if TYPE_CHECKING:
    from stream_cf.engine.model import UserKNN


def neighbours_of(model: UserKNN, u: int, i: int) -> tuple[IntArray, FloatArray]:
    """N(i;u) for one item: the selected neighbour slots and similarities, in the order
    :func:`recommendations` sums them (similarity descending, then slot), so that predict and
    recommend give bit-identical values."""
    st = model.state
    raters = st.raters_of(i)
    raters = raters[raters != u]
    w = model.similarity_row(u)[raters]
    keep = model.usable(w)
    raters = raters[keep]
    w = w[keep]
    if raters.size > model.k:
        first = np.lexsort((st.grid.seq[raters, i], -w))[: model.k]
        raters = raters[first]
        w = w[first]
    order = np.lexsort((raters, -w))
    return raters[order], w[order]


def estimate(model: UserKNN, u: int, i: int) -> tuple[float, float, int, IntArray, FloatArray]:
    """(Σ w·dev, Σ |w|, count, neighbour slots, similarities) for one item, summed in the
    same order as :func:`knn.score` (sequential accumulation, as np.bincount)."""
    slots, w = neighbours_of(model, u, i)
    r = model.state.grid.values[slots, i]
    if model.implicit:
        dev = r
    else:
        diag = model.state.pairs.sums[slots, slots]
        dev = r - diag[:, 1] / diag[:, 0]
    zeros = np.zeros(slots.size, dtype=np.int64)
    num = float(np.bincount(zeros, weights=w * dev, minlength=1)[0])
    den = float(np.bincount(zeros, weights=np.abs(w), minlength=1)[0])
    return num, den, int(slots.size), slots, w


def predict(model: UserKNN, user: str, item: str, *, explain: bool) -> Explanation:
    st = model.state
    u = st.users.slot_of.get(user)
    if u is None:
        value = 0.0 if model.implicit else model.clip(model.global_mean)
        return Explanation(user, item, value, model.global_mean, [], "unknown user")
    mu = st.mean_of(u)
    fallback_value = 0.0 if model.implicit else model.clip(mu)
    i = st.items.slot_of.get(item)
    if i is None or st.item_count[i] == 0:
        return Explanation(user, item, fallback_value, mu, [], "unknown item")
    if model.implicit:
        return implicit_predict(model, user, item, u, i)
    num, den, count, slots, weights = estimate(model, u, i)
    neighbours = []
    if explain:
        sums = st.pairs.sums
        for slot, w in zip(slots.tolist(), weights.tolist(), strict=True):
            neighbours.append(
                Neighbour(
                    user=str(st.users.id_of[slot]),
                    similarity=w,
                    rating=float(st.grid.values[slot, i]),
                    neighbour_mean=(
                        0.0 if model.implicit else float(sums[slot, slot, 1] / sums[slot, slot, 0])
                    ),
                    weight=w / den if den else 0.0,
                )
            )
    if count == 0 or count < model.min_k:
        return Explanation(user, item, fallback_value, mu, neighbours, "min_k not reached")
    est = num / den if model.implicit else model.clip(mu + num / den)
    return Explanation(user, item, est, mu, neighbours, None)


def popularity(model: UserKNN, exclude: int | None, n: int) -> list[tuple[str, float]]:
    """Items by number of raters (ties by first appearance), without ``exclude``'s items."""
    st = model.state
    high = st.items.high
    counts = st.item_count[:high].astype(np.float64)
    ok = counts > 0
    if exclude is not None:
        ok &= ~st.grid.mask[exclude, :high]
    pos = np.flatnonzero(ok)
    best = knn.top_n(counts[pos], pos, n)
    return [(str(st.items.id_of[pos[b]]), float(counts[pos[b]])) for b in best]


def recommendations(model: UserKNN, user: str, n: int = 10) -> Recommendations:
    """The n best items the user has not rated/bought, best first (ties by first
    appearance); a popularity list flagged as fallback for an unknown or cold user."""
    st = model.state
    u = st.users.slot_of.get(user)
    if u is None:
        return Recommendations(popularity(model, None, n), "unknown user: popularity")
    if model.ranking.mode != "rating":
        items = ranking.ranked(st, model.ranking, u, n)
        if items is None:
            return Recommendations(popularity(model, u, n), "no neighbours: popularity")
        return Recommendations(items, None)
    if model.implicit:
        return implicit_recommendations(model, u, n)
    return recommend.recommend_slots(model, [user], n)[user]


def recommend_many(model: UserKNN, users: Iterable[str], n: int = 10) -> dict[str, Recommendations]:
    """:func:`recommendations` for every user; the known users of an explicit model are computed
    together (:mod:`stream_cf.engine.recommend`), with the same result as one by one."""
    wanted = list(dict.fromkeys(users))
    if model.implicit or model.ranking.mode != "rating":
        return {user: recommendations(model, user, n) for user in wanted}
    slot_of = model.state.users.slot_of
    known = recommend.recommend_slots(model, [user for user in wanted if user in slot_of], n)
    return {
        user: known[user] if user in known else recommendations(model, user, n) for user in wanted
    }


def implicit_neighbours(model: UserKNN, u: int) -> tuple[IntArray, FloatArray]:
    """N_k(u): the k usable users most similar to u, best first (ties: the earlier created)."""
    st = model.state
    w = model.similarity_row(u)
    slots = np.flatnonzero(model.usable(w))
    order = np.lexsort((st.user_since[slots], -w[slots]))[: model.k]
    return slots[order].astype(np.int64), w[slots[order]]


def _implicit_sums(
    model: UserKNN, slots: IntArray, w: FloatArray, cols: IntArray | int
) -> tuple[FloatArray, IntArray, float]:
    """Per column Σ_{v∈N_k(u), v has i} w_uv·r_vi (summed in N_k order), how many v have it,
    and Σ_{v∈N_k(u)} |w_uv|."""
    st = model.state
    has = knn.gather(st.grid.mask, slots, cols)
    n_cols = has.shape[1]
    rows, colpos = np.nonzero(has)
    item_slots = colpos if isinstance(cols, int) else cols[colpos]
    r = st.grid.values[slots[rows], item_slots]
    num = np.bincount(colpos, weights=w[rows] * r, minlength=n_cols).astype(np.float64)
    count = np.bincount(colpos, minlength=n_cols).astype(np.int64)
    den = float(np.bincount(np.zeros(w.size, dtype=np.int64), weights=np.abs(w), minlength=1)[0])
    return num, count, den


def implicit_predict(model: UserKNN, user: str, item: str, u: int, i: int) -> Explanation:
    """ŝ_ui for one item (see the module docstring), with the neighbours who have it."""
    st = model.state
    mu = st.mean_of(u)
    slots, w = implicit_neighbours(model, u)
    if slots.size == 0 or slots.size < model.min_k:
        return Explanation(user, item, 0.0, mu, [], "min_k not reached")
    num, count, den = _implicit_sums(model, slots, w, np.array([i], dtype=np.int64))
    neighbours = [
        Neighbour(
            user=str(st.users.id_of[slot]),
            similarity=float(weight),
            rating=float(st.grid.values[slot, i]),
            neighbour_mean=0.0,
            weight=float(weight) / den,
        )
        for slot, weight in zip(slots.tolist(), w.tolist(), strict=True)
        if st.grid.mask[slot, i]
    ]
    fallback = None if count[0] else "no neighbour has the item"
    return Explanation(user, item, float(num[0]) / den, mu, neighbours, fallback)


def implicit_recommendations(model: UserKNN, u: int, n: int) -> Recommendations:
    """The n items with the best ŝ_ui among those some v ∈ N_k(u) has and u has not."""
    st = model.state
    slots, w = implicit_neighbours(model, u)
    high = st.items.high
    if slots.size == 0 or slots.size < model.min_k:
        return Recommendations(popularity(model, u, n), "no neighbours: popularity")
    num, count, den = _implicit_sums(model, slots, w, high)
    pos = np.flatnonzero((count > 0) & ~st.grid.mask[u, :high])
    if pos.size == 0:
        return Recommendations(popularity(model, u, n), "no neighbours: popularity")
    values = num[pos] / den
    best = knn.top_n(values, pos, n)
    return Recommendations([(str(st.items.id_of[pos[b]]), float(values[b])) for b in best], None)
