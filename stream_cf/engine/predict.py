"""Predictions and recommendations read from the engine's state (the kNN estimators).

Explicit feedback, ``predictor="knn_means"`` (Surprise's ``KNNWithMeans``), over N(i;u) the k
usable raters of i most similar to u (ties: the earlier rating of i)::

    r̂_ui = clip(r̄_u + Σ_{v∈N(i;u)} w_uv·(r_vi − r̄_v) / Σ_{v∈N(i;u)} |w_uv|)

``predictor="knn_baseline"``: the same N(i;u) around the baseline b_ui = μ + b_u + b_i, damped by
λ = ``damping`` (the baseline's formula and fallbacks: :mod:`stream_cf.engine.baseline`)::

    r̂_ui = clip(b_ui + Σ_{v∈N(i;u)} w_uv·(r_vi − b_vi) / (Σ_{v∈N(i;u)} |w_uv| + λ))

Implicit feedback (a weighted vote of the user's own neighbourhood): N_k(u) = the k usable users
most similar to u (cosine; ties: the earlier created user), and

    ŝ_ui = Σ_{v∈N_k(u), v has i} w_uv·r_vi / Σ_{v∈N_k(u)} |w_uv|

(r_vi the accumulated weight); the candidates are the items some v ∈ N_k(u) has and u has not.
Fallbacks, with the reason recorded: unknown user -> global mean (implicit 0), unknown item -> r̄_u
(implicit 0), fewer than ``min_k`` usable neighbours -> r̄_u (implicit 0; and a popularity list
for recommendations); implicit, no v ∈ N_k(u) has the item -> 0.

One item (:func:`predict`) is computed from that item's raters only; several or all items
(:func:`predict_many`, :func:`recommendations`) from the vectorized selection of
:mod:`stream_cf.engine.knn`; they sum in the same order, so a recommended score equals
:meth:`UserKNN.predict` bit for bit. ``knn_baseline`` lists are ranked by r̂_ui over every item
with one selection per user (:func:`baseline_recommendations`), without the float32 pre-filter of
:mod:`stream_cf.engine.recommend` that ``knn_means`` uses.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from stream_cf.engine import baseline, knn, ranking, recommend
from stream_cf.engine.results import BaselineTerms, Explanation, Neighbour, Recommendations
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
    if model.predictor == "knn_baseline" and not model.implicit:
        return baseline_predict(model, user, item, explain=explain)
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


def read_baseline(model: UserKNN) -> baseline.Baseline:
    return baseline.read(
        model.state, model.baseline_reg_items, model.baseline_reg_users, model.global_mean
    )


def baseline_predict(model: UserKNN, user: str, item: str, *, explain: bool) -> Explanation:
    """r̂_ui of ``knn_baseline`` for one item, with the baseline terms and the neighbours."""
    st = model.state
    base = read_baseline(model)
    u = st.users.slot_of.get(user)
    i = st.items.slot_of.get(item)
    known_item = i is not None and bool(st.item_count[i] > 0)
    b_i = float(base.items[i]) if i is not None and known_item else 0.0
    if u is None:
        terms = BaselineTerms(base.mu, 0.0, b_i)
        value = model.clip(terms.value)
        return Explanation(user, item, value, model.global_mean, [], "unknown user", terms)
    mu = st.mean_of(u)
    if i is None or not known_item:
        terms = BaselineTerms(base.mu, base.user(st, u), b_i)
        return Explanation(user, item, model.clip(terms.value), mu, [], "unknown item", terms)
    slots, w = neighbours_of(model, u, i)
    biases = base.users(st, np.concatenate(([u], slots)))  # b_u, then each b_v
    b_v = biases[1:]
    terms = BaselineTerms(base.mu, float(biases[0]), b_i)
    fallback_value = model.clip(terms.value)
    num, den = baseline.residual_sums(
        st,
        base,
        slots=slots,
        b_v=b_v,
        weights=w,
        item_slots=np.full(slots.size, i, dtype=np.int64),
        colpos=np.zeros(slots.size, dtype=np.int64),
        n_cols=1,
    )
    neighbours = []
    if explain:
        share = float(den[0]) + model.damping
        for slot, weight, bias in zip(slots.tolist(), w.tolist(), b_v.tolist(), strict=True):
            neighbours.append(
                Neighbour(
                    user=str(st.users.id_of[slot]),
                    similarity=weight,
                    rating=float(st.grid.values[slot, i]),
                    neighbour_mean=st.mean_of(slot),
                    weight=weight / share if share else 0.0,
                    neighbour_baseline=base.mu + bias + b_i,
                )
            )
    if slots.size == 0 or slots.size < model.min_k:
        return Explanation(user, item, fallback_value, mu, neighbours, "min_k not reached", terms)
    est = baseline.estimate(np.array([terms.value]), num, den, model.damping)
    return Explanation(user, item, model.clip(float(est[0])), mu, neighbours, None, terms)


def baseline_columns(
    model: UserKNN,
    base: baseline.Baseline,
    u: int,
    nb: knn.Neighbourhood,
    cols: IntArray | int,
) -> tuple[FloatArray, IntArray, FloatArray]:
    """``knn_baseline`` estimates (clipped; b_ui where fewer than min_k neighbours, or none),
    the neighbour counts and the estimates before clipping, for the item slots ``cols`` (an int
    n: the first n items)."""
    st = model.state
    selection = knn.select(nb, st.grid.mask, st.grid.seq, cols, model.k)
    n_cols = selection.raters.shape[1]
    rows, colpos = knn.selected_pairs(selection)
    slots = nb.slots[rows]
    item_slots = colpos if isinstance(cols, int) else cols[colpos]
    distinct, where = np.unique(np.concatenate(([u], slots)), return_inverse=True)
    biases = base.users(st, distinct)[where]  # b_u, then each pair's b_v
    num, den = baseline.residual_sums(
        st,
        base,
        slots=slots,
        b_v=biases[1:],
        weights=nb.weights[rows],
        item_slots=item_slots,
        colpos=colpos,
        n_cols=n_cols,
    )
    count: IntArray = np.bincount(colpos, minlength=n_cols).astype(np.int64)
    b_i = base.items[:cols] if isinstance(cols, int) else base.items[cols]
    b_ui = base.mu + float(biases[0]) + b_i
    est = baseline.estimate(b_ui, num, den, model.damping)
    used = (count > 0) & (count >= model.min_k)
    low, high = model.rating_scale
    raw: FloatArray = np.where(used, est, b_ui)
    return np.clip(raw, low, high), count, raw


def predict_many(model: UserKNN, user: str, items: Iterable[str]) -> list[float]:
    """:func:`predict` of every item (estimates only), with one neighbourhood and one selection
    for the known items: the same sums in the same order as item by item."""
    wanted = list(items)
    st = model.state
    u = st.users.slot_of.get(user)
    if model.implicit or u is None or not wanted:
        return [predict(model, user, item, explain=False).estimate for item in wanted]
    slot_of = st.items.slot_of
    found = [slot_of.get(item) for item in wanted]
    known = [p for p, i in enumerate(found) if i is not None and st.item_count[i] > 0]
    cols = np.array([found[p] for p in known], dtype=np.int64)
    if model.predictor == "knn_baseline":
        base = read_baseline(model)
        out = [model.clip(base.mu + base.user(st, u) + 0.0)] * len(wanted)  # unknown items
        if cols.size:
            values, _count, _raw = baseline_columns(model, base, u, model.neighbourhood(u), cols)
    else:
        mu = st.mean_of(u)
        out = [model.clip(mu)] * len(wanted)
        if cols.size:
            nb = model.neighbourhood(u)
            selection = knn.select(nb, st.grid.mask, st.grid.seq, cols, model.k)
            sc = knn.score(nb, selection, values=st.grid.values, cols=cols, means=st.means())
            used = (sc.count > 0) & (sc.count >= model.min_k)
            low, high = model.rating_scale
            with np.errstate(divide="ignore", invalid="ignore"):
                values = np.clip(np.where(used, mu + sc.num / sc.den, mu), low, high)
    for p, value in zip(known, values.tolist() if cols.size else [], strict=True):
        out[p] = value
    return out


def baseline_recommendations(model: UserKNN, u: int, n: int) -> Recommendations:
    """The n items the user has not rated with the best ``knn_baseline`` r̂_ui among those
    predicted from at least max(1, min_k) neighbours (ties: :func:`recommend.rating_order`)."""
    st = model.state
    high = st.items.high
    base = read_baseline(model)
    values, count, raw = baseline_columns(model, base, u, model.neighbourhood(u), high)
    pos = np.flatnonzero((count >= max(1, model.min_k)) & ~st.grid.mask[u, :high])
    if pos.size == 0:
        return Recommendations(popularity(model, u, n), "no neighbours: popularity")
    best = recommend.rating_order(values[pos], raw[pos], count[pos], pos, n)
    return Recommendations([(str(st.items.id_of[pos[b]]), float(values[pos[b]])) for b in best])


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
    if model.predictor == "knn_baseline":
        return baseline_recommendations(model, u, n)
    return recommend.recommend_slots(model, [user], n)[user]


def recommend_many(model: UserKNN, users: Iterable[str], n: int = 10) -> dict[str, Recommendations]:
    """:func:`recommendations` for every user; the known users of an explicit model are computed
    together (:mod:`stream_cf.engine.recommend`), with the same result as one by one."""
    wanted = list(dict.fromkeys(users))
    if model.implicit or model.ranking.mode != "rating" or model.predictor == "knn_baseline":
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
