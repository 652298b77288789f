"""Predictions and recommendations read from the engine's state (the kNN estimators).

Explicit feedback, ``predictor="knn_means"`` (Surprise's ``KNNWithMeans``), over N(i;u) the k
usable raters of i most similar to u (ties: the earlier rating of i)::

    r̂_ui = clip(r̄_u + Σ_{v∈N(i;u)} w_uv·(r_vi − r̄_v) / Σ_{v∈N(i;u)} |w_uv|)

``predictor="knn_baseline"``: the same N(i;u) around the baseline b_ui = μ + b_u + b_i, damped by
λ = ``damping`` (the baseline's formula and fallbacks: :mod:`stream_cf.engine.baseline`)::

    r̂_ui = clip(b_ui + Σ_{v∈N(i;u)} w_uv·(r_vi − b_vi) / (Σ_{v∈N(i;u)} |w_uv| + λ))

and, with ``item_residual`` = K > 0, pooled with an item-based residual over M(u;i), the K items
j of u most similar to i (s_ij: :mod:`stream_cf.engine.item_residual`), e_xy = r_xy − b_xy::

    r̂_ui = clip(b_ui + (Σ_{v∈N(i;u)} w_uv·e_vi + Σ_{j∈M(u;i)} s_ij·e_uj)
                      / (Σ_{v∈N(i;u)} |w_uv| + Σ_{j∈M(u;i)} s_ij + λ))

(min_k then counts |N(i;u)| + |M(u;i)|: b_ui when fewer, or none).

Implicit feedback (a weighted vote of the user's own neighbourhood): N_k(u) = the k usable users
most similar to u (cosine; ties: the earlier created user), and

    ŝ_ui = Σ_{v∈N_k(u), v has i} w_uv·r_vi / Σ_{v∈N_k(u)} |w_uv|

(r_vi the accumulated weight); the candidates are the items some v ∈ N_k(u) has and u has not.
Fallbacks, with the reason recorded: unknown user -> global mean (implicit 0), unknown item -> r̄_u
(implicit 0), fewer than ``min_k`` usable neighbours -> r̄_u (implicit 0; and a popularity list
for recommendations); implicit, no v ∈ N_k(u) has the item -> 0.

One item (:func:`predict`) is computed from that item's raters only; several or all items
(:func:`predict_many`, :func:`recommendations`) from the selection of :mod:`stream_cf.engine.knn`
over the neighbours' own ratings — but ``knn_baseline``'s user-neighbour terms of several items
(:func:`predict_many`), which come from the wanted items' raters in one compiled call where it
applies (:func:`user_columns`, :mod:`stream_cf.engine.user_kernel`); they sum in the same order,
so a recommended score equals :meth:`UserKNN.predict` bit for bit. Every function reads an
:class:`~stream_cf.engine.state.EngineState` with an :class:`~stream_cf.engine.config.EngineConfig`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from stream_cf.engine import baseline, item_residual, knn, ranking, user_kernel
from stream_cf.engine.config import EngineConfig
from stream_cf.engine.neighbours import (
    neighbourhood_of,
    similarities,
    similarity_row,
)
from stream_cf.engine.results import (
    BaselineTerms,
    Explanation,
    ItemNeighbour,
    Neighbour,
    Recommendations,
)
from stream_cf.engine.state import EngineState
from stream_cf.engine.storage import FloatArray, IntArray

_NO_SLOTS: IntArray = np.zeros(0, dtype=np.int64)
_NO_FLOATS: FloatArray = np.zeros(0, dtype=np.float64)


def global_mean(st: EngineState, cfg: EngineConfig) -> float:
    """The mean of every rating (weight); the middle of the scale (0 implicit) when empty."""
    if st.n_ratings == 0:
        return 0.0 if cfg.implicit else sum(cfg.rating_scale) / 2.0
    return st.total / st.n_ratings


def neighbours_of(
    st: EngineState, cfg: EngineConfig, u: int, i: int
) -> tuple[IntArray, FloatArray, FloatArray]:
    """N(i;u) for one item: the selected neighbour slots, similarities and ratings of i, in the
    order :func:`knn.select` sums them (similarity descending, then slot)."""
    ratings = st.ratings
    cells = ratings.by_item.row(i)  # in no particular order: the sorts below fix the order
    raters = ratings.item_users.row(i).astype(np.int64)  # cell_user of the cells, entry for entry
    w = similarities(st, cfg, u, raters, means_of(st, raters))  # raters have ratings
    usable = cfg.usable(w)
    usable &= raters != u
    keep = usable.nonzero()[0]
    raters, w, cells = raters[keep], w[keep], cells[keep]
    if raters.size > cfg.k:
        first = np.lexsort((ratings.cell_seq.take(cells), -w))[: cfg.k]
        raters, w, cells = raters[first], w[first], cells[first]
    order = np.lexsort((raters, -w))
    return raters[order], w[order], ratings.cell_value.take(cells[order])


def _sum(weights: FloatArray) -> float:
    """Σ in order (as np.bincount adds: the sums of :func:`knn.select`'s columns)."""
    return sequential_sum(weights.tolist())


def sequential_sum(values: list[float]) -> float:
    """0.0 + v_0 + v_1 + ... in float64, left to right: what np.bincount adds into one bin
    (the same bits; the builtin sum may round differently)."""
    total = 0.0
    for value in values:
        total += value
    return total


def means_of(st: EngineState, slots: IntArray) -> FloatArray:
    """r̄_v of the given user slots, each with ratings (the same division as
    :meth:`EngineState.means`)."""
    out: FloatArray = st.ratings.user_sum[slots] / st.ratings.user_count[slots]
    return out


def predict(
    st: EngineState, cfg: EngineConfig, user: str, item: str, *, explain: bool
) -> Explanation:
    if cfg.predictor == "knn_baseline" and not cfg.implicit:
        return baseline_predict(st, cfg, user, item, explain=explain)
    mean_all = global_mean(st, cfg)
    u = st.users.slot_of.get(user)
    if u is None:
        value = 0.0 if cfg.implicit else cfg.clip(mean_all)
        return Explanation(user, item, value, mean_all, [], "unknown user")
    mu = st.mean_of(u)
    fallback_value = 0.0 if cfg.implicit else cfg.clip(mu)
    i = st.items.slot_of.get(item)
    if i is None or st.item_count[i] == 0:
        return Explanation(user, item, fallback_value, mu, [], "unknown item")
    if cfg.implicit:
        return implicit_predict(st, cfg, (user, item), (u, i))
    slots, w, r = neighbours_of(st, cfg, u, i)
    means = means_of(st, slots)
    num = _sum(w * (r - means))
    den = _sum(np.abs(w))
    neighbours = []
    if explain:
        for slot, weight, rating, mean in zip(
            slots.tolist(), w.tolist(), r.tolist(), means.tolist(), strict=True
        ):
            neighbours.append(
                Neighbour(
                    user=str(st.users.id_of[slot]),
                    similarity=weight,
                    rating=rating,
                    neighbour_mean=mean,
                    weight=weight / den if den else 0.0,
                )
            )
    if slots.size == 0 or slots.size < cfg.min_k:
        return Explanation(user, item, fallback_value, mu, neighbours, "min_k not reached")
    return Explanation(user, item, cfg.clip(mu + num / den), mu, neighbours, None)


def read_baseline(st: EngineState, cfg: EngineConfig) -> baseline.Baseline:
    return baseline.read(st, cfg.baseline_reg_items, cfg.baseline_reg_users, global_mean(st, cfg))


def item_terms_of(
    st: EngineState,
    cfg: EngineConfig,
    base: baseline.Baseline,
    cell: tuple[int, float],
    cols: IntArray,
) -> item_residual.ItemTerms | None:
    """The item-based residual's terms of the item slots ``cols`` for ``cell`` = (user slot u,
    its b_u) (None when ``item_residual`` is 0)."""
    if not cfg.item_residual:
        return None
    u, b_u = cell
    return item_residual.item_terms(
        st,
        u,
        cols,
        neighbours=cfg.item_residual,
        shrinkage=cfg.item_shrinkage,
        mu=base.mu,
        user_bias=b_u,
        item_bias=base.items,
    )


def baseline_predict(
    st: EngineState, cfg: EngineConfig, user: str, item: str, *, explain: bool
) -> Explanation:
    """r̂_ui of ``knn_baseline`` for one item, with the baseline terms and the neighbours (and
    the item neighbours of the item-based residual). Without ``explain``, b_u and the user
    neighbours' sums Σ w·(r − b_vi), Σ|w| come from the compiled kernel where it applies
    (:mod:`~stream_cf.engine.user_kernel`: the same bits), else from the numpy path below."""
    base = read_baseline(st, cfg)
    mean_all = global_mean(st, cfg)
    u = st.users.slot_of.get(user)
    i = st.items.slot_of.get(item)
    known_item = i is not None and bool(st.item_count[i] > 0)
    b_i = float(base.items[i]) if i is not None and known_item else 0.0
    if u is None:
        terms = BaselineTerms(base.mu, 0.0, b_i)
        return Explanation(user, item, cfg.clip(terms.value), mean_all, [], "unknown user", terms)
    mu = st.mean_of(u)
    if i is None or not known_item:
        terms = BaselineTerms(base.mu, base.user(st, u), b_i)
        return Explanation(user, item, cfg.clip(terms.value), mu, [], "unknown item", terms)
    compiled = None if explain else user_kernel.user_terms(st, cfg, base, u, i)
    if compiled is not None:  # the same four figures as below, from one compiled pass
        num, den, count, b_u = compiled
        slots, w, r, b_v = _NO_SLOTS, _NO_FLOATS, _NO_FLOATS, _NO_FLOATS
    else:
        slots, w, r = neighbours_of(st, cfg, u, i)
        biases = base.users(st, np.concatenate(([u], slots)), distinct=True)  # b_u, each b_v
        b_u, b_v = float(biases[0]), biases[1:]
        # baseline.residual_sums for one column: Σ w·(r − (μ + b_v + b_i)), Σ|w| in neighbour
        # order
        dev = base.mu + b_v
        dev += b_i
        np.subtract(r, dev, out=dev)
        dev *= w
        num = sequential_sum(dev.tolist())
        den = sequential_sum([abs(weight) for weight in w.tolist()])
        count = slots.size
    terms = BaselineTerms(base.mu, b_u, b_i)
    fallback_value = cfg.clip(terms.value)
    by_items = None
    if cfg.item_residual and explain:  # the item neighbours too
        by_items = item_terms_of(st, cfg, base, (u, terms.user_bias), np.array([i], dtype=np.int64))
        assert by_items is not None
        num, den = num + float(by_items.num[0]), den + float(by_items.den[0])
        count += int(by_items.count[0])
    elif cfg.item_residual:  # the same three figures without the arrays
        item_num, item_den, item_count = item_residual.item_sums(
            st,
            u,
            i,
            neighbours=cfg.item_residual,
            shrinkage=cfg.item_shrinkage,
            mu=base.mu,
            user_bias=terms.user_bias,
            item_bias=base.items,
        )
        num, den = num + item_num, den + item_den
        count += item_count
    neighbours = []
    items = []
    if explain:
        share = den + cfg.damping
        means = means_of(st, slots)
        for slot, weight, rating, mean, bias in zip(
            slots.tolist(), w.tolist(), r.tolist(), means.tolist(), b_v.tolist(), strict=True
        ):
            neighbours.append(
                Neighbour(
                    user=str(st.users.id_of[slot]),
                    similarity=weight,
                    rating=rating,
                    neighbour_mean=mean,
                    weight=weight / share if share else 0.0,
                    neighbour_baseline=base.mu + bias + b_i,
                )
            )
        if by_items is not None:
            for j, sim, rating, b_uj in zip(
                by_items.items.tolist(),
                by_items.sims.tolist(),
                by_items.ratings.tolist(),
                by_items.baselines.tolist(),
                strict=True,
            ):
                items.append(
                    ItemNeighbour(
                        item=str(st.items.id_of[j]),
                        similarity=sim,
                        rating=rating,
                        baseline=b_uj,
                        weight=sim / share if share else 0.0,
                    )
                )
    if count == 0 or count < cfg.min_k:
        reason = "min_k not reached"
        return Explanation(user, item, fallback_value, mu, neighbours, reason, terms, items)
    share = den + cfg.damping
    if share == 0.0:  # λ = 0 and no weight: baseline.estimate's inf/nan, as in rating_columns
        sums = np.array([num]), np.array([den])
        value = float(baseline.estimate(np.array([terms.value]), *sums, cfg.damping)[0])
    else:  # the same operations on the same float64 values, as Python floats
        value = terms.value + num / share
    return Explanation(user, item, cfg.clip(value), mu, neighbours, None, terms, items)


def user_columns(
    st: EngineState,
    cfg: EngineConfig,
    base: baseline.Baseline,
    u: int,
    cols: IntArray | None,
) -> tuple[FloatArray, FloatArray, IntArray, float]:
    """``knn_baseline``'s user-neighbour terms of the distinct item slots ``cols`` (None: every
    item slot) for user slot u: per column Σ_{v∈N(i;u)} w_uv·(r_vi − b_vi) and
    Σ_{v∈N(i;u)} |w_uv| (each summed in neighbour order) and |N(i;u)|, then b_u. From the
    compiled kernel where it applies (:func:`~stream_cf.engine.user_kernel.user_terms_many`: the
    same bits), else from :func:`knn.select` over u's neighbourhood."""
    compiled = None if cols is None else user_kernel.user_terms_many(st, cfg, base, u, cols)
    if compiled is not None:
        return compiled
    nb = neighbourhood_of(st, cfg, u)
    picked = knn.select(st, nb, cols, cfg.k)
    slots = nb.slots[picked.rows]
    distinct, where = np.unique(np.concatenate(([u], slots)), return_inverse=True)
    biases = base.users(st, distinct)[where]  # b_u, then each pair's b_v
    num, den = baseline.residual_sums(
        base,
        r=picked.values,
        b_v=biases[1:],
        weights=nb.weights[picked.rows],
        item_slots=picked.items,
        colpos=picked.colpos,
        n_cols=picked.n_cols,
    )
    return num, den, picked.count(), float(biases[0])


def rating_columns(
    st: EngineState, cfg: EngineConfig, u: int, cols: IntArray | None
) -> tuple[FloatArray, IntArray, FloatArray]:
    """Explicit estimates of the distinct item slots ``cols`` (None: every item slot) for user
    slot u:
    (clipped estimates, neighbour counts, estimates before clipping); the fallback (r̄_u for
    ``knn_means``, b_ui for ``knn_baseline``) where fewer than min_k neighbours, or none."""
    if cfg.predictor == "knn_baseline":
        base = read_baseline(st, cfg)
        num, den, count, b_u = user_columns(st, cfg, base, u, cols)
        b_i = base.items[: st.items.high] if cols is None else base.items[cols]
        fallback = base.mu + b_u + b_i
        wanted = np.arange(st.items.high, dtype=np.int64) if cols is None else cols
        by_items = item_terms_of(st, cfg, base, (u, b_u), wanted)
        if by_items is not None:
            num, den = num + by_items.num, den + by_items.den
            count = count + by_items.count
        used = (count > 0) & (count >= cfg.min_k)
        est = baseline.estimate(fallback, num, den, cfg.damping)
    else:
        nb = neighbourhood_of(st, cfg, u)
        picked = knn.select(st, nb, cols, cfg.k)
        n_cols = picked.n_cols
        weights = nb.weights[picked.rows]
        count = picked.count()
        used = (count > 0) & (count >= cfg.min_k)
        dev = picked.values - means_of(st, nb.slots[picked.rows])
        num = np.bincount(picked.colpos, weights=weights * dev, minlength=n_cols).astype(np.float64)
        den = np.bincount(picked.colpos, weights=np.abs(weights), minlength=n_cols).astype(
            np.float64
        )
        mu = st.mean_of(u)
        fallback = np.full(n_cols, mu)
        with np.errstate(divide="ignore", invalid="ignore"):
            est = mu + num / den
    low, high = cfg.rating_scale
    raw: FloatArray = np.where(used, est, fallback)
    return np.clip(raw, low, high), count, raw


def predict_many(
    st: EngineState, cfg: EngineConfig, user: str, items: Iterable[str]
) -> list[float]:
    """:func:`predict` of every item (estimates only), with one read for the known items (for
    ``knn_baseline``, the compiled :func:`user_columns` where it applies; else one
    neighbourhood and one selection): the same sums in the same order as item by item."""
    wanted = list(items)
    u = st.users.slot_of.get(user)
    if cfg.implicit or u is None or not wanted:
        return [predict(st, cfg, user, item, explain=False).estimate for item in wanted]
    slot_of = st.items.slot_of
    found = slot_of.lookup(wanted)
    known = [p for p, i in enumerate(found) if i >= 0 and st.item_count[i] > 0]
    cols = np.array([found[p] for p in known], dtype=np.int64)
    out = [0.0] * len(wanted)
    if len(known) < len(wanted):  # unknown items: μ + b_u + 0 (knn_baseline), else r̄_u
        if cfg.predictor == "knn_baseline":
            base = read_baseline(st, cfg)
            out = [cfg.clip(base.mu + base.user(st, u) + 0.0)] * len(wanted)
        else:
            out = [cfg.clip(st.mean_of(u))] * len(wanted)
    if cols.size:
        distinct, back = np.unique(cols, return_inverse=True)
        values, _count, _raw = rating_columns(st, cfg, u, distinct)
        for p, value in zip(known, values[back].tolist(), strict=True):
            out[p] = value
    return out


def rating_recommendations(st: EngineState, cfg: EngineConfig, u: int, n: int) -> Recommendations:
    """The n items the user has not rated with the best r̂_ui among those predicted from at
    least max(1, min_k) neighbours (ties: :func:`knn.rating_order`)."""
    values, count, raw = rating_columns(st, cfg, u, None)
    pos = np.flatnonzero(count >= max(1, cfg.min_k))
    pos = pos[~st.ratings.has(u, pos)]
    if pos.size == 0:
        return Recommendations(popularity(st, u, n), "no neighbours: popularity")
    best = knn.rating_order(values[pos], raw[pos], count[pos], pos, n)
    return Recommendations([(str(st.items.id_of[pos[b]]), float(values[pos[b]])) for b in best])


def popularity(st: EngineState, exclude: int | None, n: int) -> list[tuple[str, float]]:
    """Items by number of raters (ties by first appearance), without ``exclude``'s items."""
    high = st.items.high
    counts = st.item_count[:high].astype(np.float64)
    ok = counts > 0
    if exclude is not None:
        ok[st.user_items(exclude)] = False
    pos = np.flatnonzero(ok)
    best = knn.top_n(counts[pos], pos, n)
    return [(str(st.items.id_of[pos[b]]), float(counts[pos[b]])) for b in best]


def recommendations(st: EngineState, cfg: EngineConfig, user: str, n: int = 10) -> Recommendations:
    """The n best items the user has not rated/bought, best first (ties by first
    appearance); a popularity list flagged as fallback for an unknown or cold user."""
    u = st.users.slot_of.get(user)
    if u is None:
        return Recommendations(popularity(st, None, n), "unknown user: popularity")
    if cfg.ranking.mode != "rating":
        items = ranking.ranked(st, cfg.ranking, u, n)
        if items is None:
            return Recommendations(popularity(st, u, n), "no neighbours: popularity")
        return Recommendations(items, None)
    if cfg.implicit:
        return implicit_recommendations(st, cfg, u, n)
    return rating_recommendations(st, cfg, u, n)


def implicit_neighbours(st: EngineState, cfg: EngineConfig, u: int) -> tuple[IntArray, FloatArray]:
    """N_k(u): the k usable users most similar to u, best first (ties: the earlier created)."""
    w = similarity_row(st, cfg, u)
    slots = np.flatnonzero(cfg.usable(w))
    order = knn.top_n(w[slots], st.user_since[slots], cfg.k)
    return slots[order].astype(np.int64), w[slots[order]]


def _implicit_sums(
    st: EngineState, slots: IntArray, w: FloatArray
) -> tuple[IntArray, FloatArray, IntArray, float]:
    """The items some v ∈ N_k(u) has (slots ascending), Σ_{v∈N_k(u), v has i} w_uv·r_vi
    (summed in N_k order), how many v have it, and Σ_{v∈N_k(u)} |w_uv|."""
    rows, items, r = st.ratings.users_rows(slots)
    high = st.items.high
    num = np.bincount(items, weights=w[rows] * r, minlength=high).astype(np.float64)
    count = np.bincount(items, minlength=high).astype(np.int64)
    cand = np.flatnonzero(count)
    return cand.astype(np.int64), num[cand], count[cand], _sum(np.abs(w))


def implicit_predict(
    st: EngineState, cfg: EngineConfig, ids: tuple[str, str], cell: tuple[int, int]
) -> Explanation:
    """ŝ_ui for one item (see the module docstring), with the neighbours who have it."""
    (user, item), (u, i) = ids, cell
    mu = st.mean_of(u)
    slots, w = implicit_neighbours(st, cfg, u)
    if slots.size == 0 or slots.size < cfg.min_k:
        return Explanation(user, item, 0.0, mu, [], "min_k not reached")
    den = _sum(np.abs(w))
    raters, values, _seqs = st.ratings.item_row(i)
    value_of = dict(zip(raters.tolist(), values.tolist(), strict=True))
    has = np.array([slot in value_of for slot in slots.tolist()], dtype=np.bool_)
    r = np.array([value_of.get(slot, 0.0) for slot in slots.tolist()], dtype=np.float64)
    num = _sum((w * r)[has])
    neighbours = [
        Neighbour(
            user=str(st.users.id_of[slot]),
            similarity=float(weight),
            rating=value_of[slot],
            neighbour_mean=0.0,
            weight=float(weight) / den,
        )
        for slot, weight in zip(slots.tolist(), w.tolist(), strict=True)
        if slot in value_of
    ]
    fallback = None if has.any() else "no neighbour has the item"
    return Explanation(user, item, num / den, mu, neighbours, fallback)


def implicit_recommendations(st: EngineState, cfg: EngineConfig, u: int, n: int) -> Recommendations:
    """The n items with the best ŝ_ui among those some v ∈ N_k(u) has and u has not."""
    slots, w = implicit_neighbours(st, cfg, u)
    if slots.size == 0 or slots.size < cfg.min_k:
        return Recommendations(popularity(st, u, n), "no neighbours: popularity")
    cand, num, _count, den = _implicit_sums(st, slots, w)
    keep = ~st.ratings.has(u, cand)
    cand, num = cand[keep], num[keep]
    if cand.size == 0:
        return Recommendations(popularity(st, u, n), "no neighbours: popularity")
    values = num / den
    best = knn.top_n(values, cand, n)
    return Recommendations([(str(st.items.id_of[cand[b]]), float(values[b])) for b in best], None)
