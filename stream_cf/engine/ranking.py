"""Ranking modes: how a user's list is ordered, computed from the ratings when a list is read.

Three modes (``UserKNN(rank=...)``); the first two read only who rated what and in which order,
so they need no pair sums and no rating values:

``vote`` (the default): a recency-weighted neighbour vote. Let I_u be u's items ordered by the
time of u's latest event on each (pos_j = 0 for the latest), x_j = 2^(−pos_j/h) with h the
history half-life (``rank_half_life``), n_v the number of items of v and n_i the raters of i::

    w_uv  = Σ_{j∈I_u, v rated j} x_j · n_j^(−b) / √n_v      (v ≠ u, b = ``rank_rarity``)
    N(u)  = the K users with the largest w_uv > 0          (K = ``rank_neighbours``)
    s_ui  = Σ_{v∈N(u), v rated i} w_uv^e · g_v(i) / n_i^d  (e = ``rank_exponent``,
                                                             d = ``rank_damping``)

b, the rarity exponent (IDF-like, 0 ≤ b ≤ 2): a shared item counts less the more users have it,
so sharing a staple that everybody buys says less about v than sharing a rare item (b = 0: every
shared item alike).

g_v(i), how much a neighbour's item counts (``rank_neighbour_recency``), with pos_v(i) the
position of i in v's own history (v's latest event on each item, 0 = the latest) and h_n the
neighbour half-life (``rank_neighbour_half_life``)::

    none     g_v(i) = 1                                               (every item of v alike)
    latest   g_v(i) = 2^(−pos_v(i)/h_n)                               (v's latest items first)
    shared   g_v(i) = max_{j∈I_u∩I_v} x_j · 2^(−|pos_v(i) − pos_v(j)|/h_n)

``shared`` anchors v's history at the items v shares with u, each as recent for u as x_j says:
what v bought around the time v bought what u bought lately (on groceries, the rest of those
baskets) counts most; an item far from every shared one in v's history counts little.

``item``: item-based kNN over the user's recent items, with the binary cosine between items
c_ij = n_ij / √(n_i·n_j) (n_ij = users who rated both, u included)::

    s_ui  = Σ_{j∈I_u} x_j · c_ij = (1/√n_i) Σ_v [v rated i] · y_v,
    y_v   = Σ_{j∈I_u, v rated j} x_j / √n_j

``rating``: by the predicted rating (:mod:`stream_cf.engine.predict`), the seed's rule.

Candidates are the items some neighbour rated (``vote``) or that share a rater with one of u's
items (``item``), minus u's own items unless ``include_seen`` (re-purchases in implicit lists).
Ties: neighbours by creation (the earlier created user first), items by first appearance.

Computed from the ratings' per-user and per-item indexes: a list costs Σ raters of u's items
plus Σ items of u's neighbours, nothing of size users × items.

Compiled: with the extension built, ``vote`` lists are computed by :mod:`rank_kernel` (C,
the same sums in the same order and the same selections, several times less CPU); the numpy
functions below are its reference (tests/engine/test_rank_kernel.py) and its fallback.

Exact by construction: every sum is taken in a fixed order (``vote``: w over I_u latest first,
s over N(u) best first; ``item``: y over I_u latest first, s over the users by slot), so the
same ratings in the same order give the same bits, whatever the batching; the reference in the
tests computes the same sums with plain loops. ``shared``'s maximum is taken in two passes along
each neighbour's history (c = min_j (a_j + |p − p_j|/h_n) with a_j = pos_u(j)/h, split at p_j ≤ p
and p_j ≥ p: running minima of a_j − p_j/h_n and a_j + p_j/h_n), g = 2^(−c): the reference's
max_j 2^(−(a_j + |p − p_j|/h_n)) within rounding, in O(Σ n_v) instead of O(Σ n_v·|I_u∩I_v|).

A list's dependencies, which the processor's refresh relies on (through
:meth:`UserKNN.co_raters` and the lists it shows): u's own data, the data of u's co-raters (g_v
reads only v's history and u's), and, under ``item`` or ``vote`` with d ≠ 0, the rater count n_i
of each candidate (with b ≠ 0 also n_j of u's own items j, but those change only through the
events of u's co-raters). With d > 0 (and under ``item``) s_ui falls when n_i grows through a
rater who is not a co-rater of u, so such an event can change u's list only where the list shows
i; it rises when n_i shrinks (a take-back), which can bring i into the list of any co-rater of i's
raters. With d < 0 it is the other way round: a new rater of i raises s_ui for every co-rater of
i's raters.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from stream_cf.engine import gather, knn, rank_kernel
from stream_cf.engine.config import RankConfig
from stream_cf.engine.state import EngineState
from stream_cf.engine.storage import FloatArray, IntArray


def history(st: EngineState, u: int) -> tuple[IntArray, FloatArray]:
    """u's item slots, latest first, and their recency weights' positions (0, 1, 2, ...)."""
    cells = st.ratings.by_user.row(u)
    seqs = st.ratings.cell_seq[cells]
    # latest first: the row backwards when it is in the order of its events, else sorted (the
    # sequence numbers are distinct within a user: one order, however it is found)
    in_order = bool(np.all(seqs[1:] > seqs[:-1]))
    cells = cells[::-1] if in_order else cells[np.argsort(-seqs, kind="stable")]
    return st.ratings.cell_item[cells].astype(np.int64), np.arange(cells.size, dtype=np.float64)


def recency(positions: FloatArray, half_life: float) -> FloatArray:
    """x_j = 2^(−pos_j/h)."""
    weights: FloatArray = np.power(2.0, -positions / half_life)
    return weights


def per_user(st: EngineState, items: IntArray, weights: FloatArray) -> FloatArray:
    """Σ_j weights[j]·[v rated items[j]] for every user slot v, each user's sum taken over the
    items in the given order (np.bincount adds in input order: the reference's plain loop)."""
    lengths, slots = gather.raters(st, items)
    out = np.bincount(slots, weights=np.repeat(weights, lengths), minlength=st.users.high)
    return out.astype(np.float64, copy=False)


def per_item(st: EngineState, users: IntArray, weights: FloatArray) -> tuple[IntArray, FloatArray]:
    """The items some of ``users`` rated (slots ascending) and Σ_v weights[v]·[v rated i],
    each item's sum taken over the users in the given order."""
    where, items, _values = st.ratings.users_rows(users)
    return gather.sum_by(items, weights[where], st.items.high)


def vote_weights(st: EngineState, cfg: RankConfig, u: int) -> tuple[IntArray, FloatArray]:
    """u's items latest first and their weights in w_uv: x_j (· n_j^(−b), as x_j / n_j^b)."""
    items, pos = history(st, u)
    x = recency(pos, cfg.half_life)
    if cfg.rarity:  # x_j / n_j^b
        x = x / st.item_count[items].astype(np.float64) ** cfg.rarity
    return items, x


def vote_neighbours(st: EngineState, cfg: RankConfig, u: int) -> tuple[IntArray, FloatArray]:
    """N(u) best first and w_uv (ties: the earlier created user)."""
    items, x = vote_weights(st, cfg, u)
    lengths, raters = gather.raters(st, items)
    x = np.repeat(x, lengths)  # per rater entry, I_u latest first
    total = np.bincount(raters, weights=x, minlength=st.users.high).astype(np.float64, copy=False)
    total[u] = 0.0
    floor = gather.ratio_floor(total, st.ratings.user_count, raters, cfg.neighbours)
    cand = np.flatnonzero(total >= floor) if floor > 0 else np.flatnonzero(total > 0)
    w = total[cand] / np.sqrt(st.counts(cand))
    if floor > 0:
        keep = np.flatnonzero(w >= floor)
        cand, w = cand[keep], w[keep]
    order = knn.top_n(w, st.user_since[cand], cfg.neighbours)
    return cand[order].astype(np.int64), w[order]


def nearest_shared(
    cfg: RankConfig, u_pos: FloatArray, where: IntArray, pos: IntArray
) -> FloatArray:
    """g_v(i) of ``shared`` per cell: max_j 2^(−(a_j + |p − p_j|/h_n)) over the cells of the same
    neighbour whose item u has (a_j = pos_u(j)/h; u_pos is pos_u per cell, NaN where u lacks the
    item), as 2^(−min(forward, backward)) along each neighbour's history (module doc). The cells
    come grouped by neighbour, each latest first (by (where, pos)): forward, the running minimum
    of a_j − p_j/h_n over the shared cells (anchors) at or before each cell, backward that of
    a_j + p_j/h_n at or after it, each read at the nearest anchor of the same neighbour."""
    step = pos.astype(np.float64) / cfg.neighbour_half_life
    anchor = np.flatnonzero(~np.isnan(u_pos))
    a = u_pos[anchor] / cfg.half_life
    groups = where[anchor]
    index = np.arange(where.size, dtype=np.int64)
    first = pos == 0  # each neighbour's first cell, a stop for the forward search
    last = np.ones(where.size, dtype=np.bool_)  # and its last, for the backward one
    last[:-1] = first[1:]
    forward = np.full(where.size, np.inf)
    forward[anchor] = gather.group_running_min(a - step[anchor], groups)
    stop = np.where(first, index, 0)
    stop[anchor] = anchor
    forward = forward[np.maximum.accumulate(stop)]  # at the nearest anchor at or before, if any
    backward = np.full(where.size, np.inf)
    backward[anchor] = gather.group_running_min(a + step[anchor], groups, backward=True)
    stop = np.where(last, index, where.size - 1)
    stop[anchor] = anchor
    backward = backward[np.minimum.accumulate(stop[::-1])[::-1]]  # at or after
    cost = np.minimum(forward + step, backward - step)
    weights: FloatArray = np.exp2(-cost)
    return weights


def vote_scores(
    st: EngineState, cfg: RankConfig, u: int, slots: IntArray, w: FloatArray
) -> tuple[IntArray, FloatArray]:
    """The candidates (item slots, ascending) and s_ui, summed over N(u) best first."""
    if cfg.neighbour_recency == "none":
        cand, scores = per_item(st, slots, w**cfg.exponent)
    else:
        where, items, pos = gather.histories(st, slots)
        if cfg.neighbour_recency == "latest":
            g = recency(pos.astype(np.float64), cfg.neighbour_half_life)
        else:
            mine, mine_pos = history(st, u)
            u_pos = np.full(st.items.high, np.nan)
            u_pos[mine] = mine_pos
            g = nearest_shared(cfg, u_pos[items], where, pos)
        cand, scores = gather.sum_by(items, (w**cfg.exponent)[where] * g, st.items.high)
    if cfg.damping:
        scores = scores / st.item_count[cand].astype(np.float64) ** cfg.damping
    return cand, scores


def item_scores(st: EngineState, cfg: RankConfig, u: int) -> tuple[IntArray, FloatArray]:
    """The candidates (item slots, ascending) and the item-based s_ui."""
    items, pos = history(st, u)
    x = recency(pos, cfg.half_life) / np.sqrt(st.item_count[items].astype(np.float64))
    y = per_user(st, items, x)
    raters = np.flatnonzero(y > 0)  # by v ascending
    cand, total = per_item(st, raters, y[raters])
    return cand, total / np.sqrt(st.item_count[cand].astype(np.float64))


def damping_power(counts: FloatArray, d: float) -> FloatArray:
    """n_i^d as :func:`vote_scores` computes it (0^d of a negative d is inf: never read)."""
    with np.errstate(divide="ignore"):
        out: FloatArray = counts**d
    return out


_RECENCY = rank_kernel.PowerTable()  # 2^(−p/h) by position p, numpy's recency
_LATEST = rank_kernel.PowerTable()  # 2^(−p/h_n) by position p, numpy's recency
_DAMP = rank_kernel.PowerTable()  # n^d by count n, numpy's power


def vote_compiled(
    kernel: ModuleType, st: EngineState, cfg: RankConfig, u: int, n: int
) -> list[tuple[str, float]] | None:
    """:func:`ranked` under ``vote`` through the compiled kernel (:mod:`rank_kernel`): the same
    list, scores to the last bit. numpy computes what libm could round otherwise (x_j, w^e, g,
    n_i^d; x_j and g of ``latest`` and n_i^d as tables by position or count, an elementwise
    ufunc's values whatever the array); the kernel the histories, sums, minima and selections
    in the numpy path's order."""
    items = rank_kernel.history(kernel, st, u)
    h = cfg.half_life
    x = _RECENCY.get(h, items.size, lambda p: recency(p, h))[: items.size]
    if cfg.rarity:  # x_j / n_j^b
        x = x / st.item_count[items].astype(np.float64) ** cfg.rarity
    slots, w = rank_kernel.neighbours(kernel, st, u, items=items, x=x, k=cfg.neighbours)
    if slots.size == 0:
        return None
    we = w**cfg.exponent
    mode, h_n, d = cfg.neighbour_recency, cfg.neighbour_half_life, cfg.damping
    cells: IntArray | None = None
    counts: IntArray | None = None
    if mode == "shared":
        cost, cells, counts = rank_kernel.shared_cost(
            kernel, st, slots=slots, mine=items, half_life=h, neighbour_half_life=h_n,
            skip_mine=not cfg.include_seen,
        )  # fmt: skip
        g = np.exp2(-cost)
    elif mode == "latest":
        longest = int(st.ratings.by_user.length[slots].max())
        g = _LATEST.get(h_n, longest, lambda p: recency(p, h_n))
    else:
        g = np.zeros(0, dtype=np.float64)
    damp = _DAMP.get(d, 2, lambda c: damping_power(c, d)) if d else None
    while True:
        n_cand, need_g, need_damp, best, values = rank_kernel.scores(
            kernel, st, n=n, mode=mode, include_seen=cfg.include_seen, slots=slots, we=we,
            mine=items, g=g, damp=damp, cells=cells, counts=counts,
        )  # fmt: skip
        if need_g:
            g = _LATEST.get(h_n, need_g, lambda p: recency(p, h_n))
        elif need_damp:
            damp = _DAMP.get(d, need_damp, lambda c: damping_power(c, d))
        else:
            break
    if n_cand == 0:
        return None
    id_of = st.items.id_of
    return [(str(id_of[i]), v) for i, v in zip(best.tolist(), values.tolist(), strict=True)]


def ranked(st: EngineState, cfg: RankConfig, u: int, n: int) -> list[tuple[str, float]] | None:
    """u's n best items under ``vote`` or ``item`` (best first, ties by first appearance);
    None when there is nothing to rank (no neighbour, no candidate): the caller falls back.
    ``vote`` through the compiled kernel when it is built (:func:`vote_compiled`)."""
    kernel = rank_kernel.KERNEL
    if cfg.mode == "vote" and kernel is not None:
        return vote_compiled(kernel, st, cfg, u, n)
    if cfg.mode == "vote":
        slots, w = vote_neighbours(st, cfg, u)
        if slots.size == 0:
            return None
        cand, scores = vote_scores(st, cfg, u, slots, w)
    else:
        cand, scores = item_scores(st, cfg, u)
    if not cfg.include_seen:
        seen = np.zeros(st.items.high, dtype=np.bool_)
        seen[st.ratings.cell_item[st.ratings.by_user.row(u)]] = True
        keep = ~seen[cand]
        cand, scores = cand[keep], scores[keep]
    if cand.size == 0:
        return None
    best = knn.top_n(scores, cand, n)
    return [(str(st.items.id_of[cand[b]]), float(scores[b])) for b in best]
