"""Many ranking rules on Instacart's new items in one replay (an exploration tool).

    python benchmarks/instacart_rules.py [--samples 0.05:0 0.05:1] [--rules NAME ...]
    python benchmarks/instacart_rules.py --samples 0.05:0 --rules base none --dump /tmp/lists_
    python benchmarks/instacart_fuse.py /tmp/lists_0.05:0.pkl       # fuse the dumped lists

The engine's ``benchmarks/ranking.py`` replays the stream once per configuration; this script
replays it once per sample and, at every ranked event (the prequential protocol of
``stream-cf evaluate``: the same ``random.Random(seed)`` draws, new items only), computes every
rule of :data:`RULES` from plain users × items arrays (593 × 14,190), sharing the user's history
between the rules. It reproduces the engine's figures where the engine has the rule (``base`` =
the implicit default, ``none``, popularity: the same hit@10 to the last digit on 0.05:0) and
tries rules the engine does not have. It is not the engine: ties are broken the same way but the
sums are not bit-for-bit the engine's.

Rule families (each documented where it is built): variants of the engine's ``vote``
(:func:`vote_scores`: half-lives, K, exponents, rarity, popularity boosts, BM25-like saturation
of repeated purchases, both users' recency in w_uv, the √n_v normalisation, an asymmetric
``shared``), item × item co-occurrence from every user's stream (:func:`cooc_scores`: events
close in a user's stream, the same basket, consecutive first purchases) alone and fused with the
vote, stage-matched popularity (:func:`stage_scores`) and the cart position (:func:`carted`).
Several need more than what the engine keeps (each cell's value and latest sequence number):
the raw event stream (``prox``), the order (``basket``, the cart position: the events' hour,
from ``ts``), the order of first purchases (``adopt``, the stage rules).
"""

from __future__ import annotations

import argparse
import pickle
import random
import sys
import time
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np

from stream_cf.datasets import dataset_events
from stream_cf.engine.ranking import nearest_shared

Top = list[int] | None
Rule = Callable[["Replay", int], Top]
#: the co-occurrence matrix (kind, h_n) a rule reads, kept by the replay only when asked for
NEEDS: dict[Rule, tuple[str, float]] = {}


class Replay:
    """The purchases so far as dense arrays: last sequence number and a bought mask per cell."""

    def __init__(self, n_users: int, n_items: int) -> None:
        self.seq = np.full((n_users, n_items), -1, dtype=np.int64)
        self.bought = np.zeros((n_users, n_items), dtype=np.float64)
        self.count = np.zeros((n_users, n_items), dtype=np.float64)  # purchases per cell
        self.pos = np.full((n_users, n_items), np.inf)  # pos_v(i), 0 = v's latest; inf: none
        self.n_item = np.zeros(n_items, dtype=np.float64)  # n_i, distinct buyers
        self.n_user = np.zeros(n_users, dtype=np.float64)  # n_v, distinct items
        self.cache: dict[int, np.ndarray] = {}
        self.decayed = {h: np.zeros(n_items) for h in (3000.0, 10000.0, 30000.0)}
        self.now = 0
        self.n_items = n_items
        self.raw: list[list[tuple[int, int]]] = [[] for _ in range(n_users)]  # (item, basket)
        self.adopted: list[list[int]] = [[] for _ in range(n_users)]  # first purchases in order
        self.cooc: dict[tuple[str, float], np.ndarray] = {}  # see :func:`cooc`
        # adoptions by stage: A[i, b] = first purchases of i by a user then in stage bin b
        # (b = ⌊4·log2(1 + n_v)⌋, n_v = the buyer's distinct items before it); reached[b] = users
        # who have been in bin b
        self.adopt = np.zeros((n_items, 48), dtype=np.float64)
        # purchases of i at cart position bin c (0, 1, 2, 3, 4, 5-6, 7-9, 10-14, 15-19, 20+)
        self.cart = np.zeros((n_items, len(CART_BINS)), dtype=np.float64)
        self.cart_new = np.zeros((n_items, len(CART_BINS)), dtype=np.float64)  # first purchases
        self.qbasket = 0  # the ranked event's basket (set by :func:`run`)
        self.reached = np.zeros(48, dtype=np.float64)

    def want(self, kind: str, h_n: float) -> None:
        """Keep the item × item co-occurrence (kind, h_n) from now on (float32, dense)."""
        if (kind, h_n) not in self.cooc:
            self.cooc[(kind, h_n)] = np.zeros((self.n_items, self.n_items), dtype=np.float32)

    def learn(self, u: int, i: int, n: int, basket: int = 0) -> None:
        self.now = n
        raw = self.raw[u]
        first = self.seq[u, i] < 0
        for (kind, h_n), c in self.cooc.items():
            if kind in ("adopt", "adopt2") and first:  # u's previous 20 first purchases
                back = self.adopted[u][-20:]
                if back:
                    js = np.array(back, dtype=np.int64)
                    kv = (2.0 ** (-(np.arange(len(back), 0, -1) - 1) / h_n)).astype(np.float32)
                    c[js, i] += kv
                    if kind == "adopt2":
                        c[i, js] += kv
            if kind == "prox":  # u's previous 20 events, by their distance in u's raw stream
                back = raw[-20:]
                js = np.array([j for j, _ in back if j != i], dtype=np.int64)
                if js.size:
                    d = np.array([len(back) - t for t, (j, _) in enumerate(back) if j != i])
                    kv = (2.0 ** (-(d - 1) / h_n)).astype(np.float32)
                    np.add.at(c, (js, i), kv)
                    np.add.at(c, (i, js), kv)
            elif kind == "basket":  # the earlier items of the same basket, once each
                js = np.unique([j for j, b in raw[-60:] if b == basket and j != i])
                if js.size:
                    c[js, i] += 1.0
                    c[i, js] += 1.0
        c = cart_bin(self.cart_position(u, basket))
        if self.seq[u, i] < 0:
            b = stage_bin(self.n_user[u])
            self.adopt[i, b] += 1.0
            if self.n_user[u] == 0 or stage_bin(self.n_user[u] - 1) != b:
                self.reached[b] += 1.0
            for h, counts in self.decayed.items():
                counts[i] += 2.0 ** (n / h)
            self.bought[u, i] = 1.0
            self.n_item[i] += 1
            self.n_user[u] += 1
        self.seq[u, i] = n
        self.count[u, i] += 1.0
        self.cache.pop(u, None)
        hist = self.history(u)
        self.pos[u, hist] = np.arange(hist.size)
        self.cart[i, c] += 1.0
        if self.count[u, i] == 1.0:
            self.cart_new[i, c] += 1.0
        raw.append((i, basket))
        if first:
            self.adopted[u].append(i)

    def cart_position(self, u: int, basket: int) -> int:
        """How many of u's events came before this one in the same basket."""
        k = 0
        for _j, b in reversed(self.raw[u]):
            if b != basket:
                break
            k += 1
        return k

    def history(self, u: int) -> np.ndarray:
        """u's items, latest first."""
        if u not in self.cache:
            items = np.flatnonzero(self.seq[u] >= 0)
            self.cache[u] = items[np.argsort(-self.seq[u, items], kind="stable")]
        return self.cache[u]


CART_BINS = (0, 1, 2, 3, 4, 5, 7, 10, 15, 20)


def cart_bin(k: int) -> int:
    return int(np.searchsorted(CART_BINS, k, side="right")) - 1


def carted(gamma: float = 1.0, alpha: float = 5.0, new: bool = False, vote: bool = True) -> Rule:
    """The vote (or popularity) times P(c | i)^γ, c the ranked event's cart position bin:
    P(c | i) = (N[i, c] + α·P(c)) / (Σ_c N[i, c] + α), N the purchases (``new``: first purchases)
    of i by cart position bin."""

    def rule(r: Replay, u: int) -> Top:
        table = r.cart_new if new else r.cart
        c = cart_bin(r.cart_position(u, r.qbasket))
        prior = table.sum(axis=0)
        prior = prior / max(prior.sum(), 1.0)
        like = (table[:, c] + alpha * prior[c]) / (table.sum(axis=1) + alpha)
        if not vote:
            return top10(r.n_item * like**gamma, (r.n_item > 0) & (r.seq[u] < 0))
        out = vote_scores(r, u)
        return None if out is None else top10(out[0] * like**gamma, out[1])

    return rule


def stage_bin(n: float) -> int:
    return min(int(4.0 * np.log2(1.0 + n)), 47)


def stage_scores(r: Replay, u: int, sigma: float = 2.0, hazard: bool = False) -> np.ndarray:
    """Stage-matched popularity: Σ_b A[i, b] · exp(−(b − b_u)²/2σ²) (first purchases of i by
    users at u's stage, in quarter-octaves of their distinct item count); ``hazard``: each bin's
    count over the users at risk there (users who reached b less those who had i before b)."""
    bins = np.arange(48)
    kern = np.exp(-((bins - stage_bin(r.n_user[u])) ** 2) / (2.0 * sigma**2))
    if not hazard:
        return r.adopt @ kern
    before = np.cumsum(r.adopt, axis=1) - r.adopt
    risk = np.maximum(r.reached[None, :] - before, 1.0)
    return (r.adopt / risk) @ kern


def staged(sigma: float = 2.0, hazard: bool = False, gamma: float = 0.0) -> Rule:
    """Stage-matched popularity alone (γ = 0) or the vote times it^γ."""

    def rule(r: Replay, u: int) -> Top:
        st = stage_scores(r, u, sigma, hazard)
        if not gamma:
            return top10(st, (r.n_item > 0) & (r.seq[u] < 0))
        out = vote_scores(r, u)
        return None if out is None else top10(out[0] * np.maximum(st, 1e-300) ** gamma, out[1])

    return rule


LONG = [10]  # the lists' length: 50 with --dump (the rules' longer lists, fused afterwards)


def top10(scores: np.ndarray, ok: np.ndarray) -> list[int]:
    idx = np.flatnonzero(ok)
    order = np.lexsort((idx, -scores[idx]))[: LONG[0]]
    return [int(i) for i in idx[order]]


def vote_scores(
    r: Replay,
    u: int,
    *,
    e: float = 1.0,
    k: int = 80,
    h: float = 5.0,
    h_n: float = 5.0,
    recency: str = "shared",
    rarity: float = 0.0,
    log_rarity: bool = False,
    floor: float = 0.0,
    h_v: float = 0.0,
    sat: float = 0.0,
    sat_u: float = 0.0,
    norm: float = 0.5,
    h_b: float = 5.0,
) -> tuple[np.ndarray, np.ndarray] | None:
    """s_ui over every item and the candidates (a neighbour has it, u has not); None: no
    neighbour. The engine's ``vote`` with d = 0 (module doc of stream_cf.engine.ranking), and
    variants the engine does not have (each 0 or its default = the engine's rule):

    - ``sat_u`` = k1 > 0: u's shared item j counts x_j · c_uj(k1 + 1)/(c_uj + k1), c_uj = u's
      purchases of j (BM25-like saturation); ``sat`` the same for the neighbour's c_vi in s_ui;
    - ``h_v`` > 0: w_uv counts a shared j as x_j · 2^(−pos_v(j)/h_v) (both users' recency);
    - ``norm``: w_uv divides by n_v^norm (the engine: 0.5, √n_v);
    - ``recency="asym"``: ``shared`` with half-life h_n towards v's later items and h_b towards
      v's earlier ones: g_v(i) = max_j x_j · 2^(−Δ/h_n if Δ ≥ 0 else −|Δ|/h_b), Δ = pos_v(j) −
      pos_v(i) (h_b = h_n is ``shared``; checked: the same hits as ``base``)."""
    mine = r.history(u)
    x = 2.0 ** (-np.arange(mine.size) / h)
    if rarity:
        x = x / r.n_item[mine] ** rarity
    if log_rarity:  # 1/ln(1 + n_j) instead of n_j^−b
        x = x / np.log1p(r.n_item[mine])
    if sat_u:  # BM25-like saturation of u's repeated purchases: c(k1 + 1)/(c + k1)
        c = r.count[u, mine]
        x = x * c * (sat_u + 1.0) / (c + sat_u)
    # h_v > 0, both users' recency: a shared j counts x_j · 2^(−pos_v(j)/h_v)
    total = np.exp2(-r.pos[:, mine] / h_v) @ x if h_v else r.bought[:, mine] @ x
    total[u] = 0
    cand = np.flatnonzero(total > 0)
    if cand.size == 0:
        return None
    w = total[cand] / r.n_user[cand] ** norm
    order = np.lexsort((cand, -w))[:k]
    slots, w = cand[order], w[order]
    hists = [r.history(int(v)) for v in slots]
    where = np.concatenate([np.full(hv.size, n) for n, hv in enumerate(hists)])
    items = np.concatenate(hists)
    pos = np.concatenate([np.arange(hv.size) for hv in hists])
    if recency == "none":
        g = np.ones(items.size)
    elif recency == "asym":  # shared with h_n after the anchor (v bought i later), h_b before
        u_pos = np.full(r.seq.shape[1], np.inf)
        u_pos[mine] = np.arange(mine.size)
        g = np.zeros(items.size)
        start = 0
        for hv in hists:
            p = np.arange(hv.size, dtype=np.float64)
            a = u_pos[hv]
            anchors = np.flatnonzero(np.isfinite(a))
            if anchors.size:
                delta = p[anchors][None, :] - p[:, None]  # > 0: the cell is more recent
                step = np.where(delta >= 0, delta / h_n, -delta / h_b)
                g[start : start + hv.size] = np.exp2(-(a[anchors] / h + step).min(axis=1))
            start += hv.size
    else:
        u_pos = np.full(r.seq.shape[1], np.nan)
        u_pos[mine] = np.arange(mine.size)
        cfg = SimpleNamespace(half_life=h, neighbour_half_life=h_n)
        g = nearest_shared(cfg, u_pos[items], where, pos)
        g = floor + (1.0 - floor) * g  # floor > 0: between shared (0) and none (1)
    if sat:  # BM25-like saturation of the neighbour's repeated purchases of i
        c = r.count[slots[where], items]
        g = g * c * (sat + 1.0) / (c + sat)
    scores = np.bincount(items, weights=(w**e)[where] * g, minlength=r.seq.shape[1])
    have = np.bincount(items, minlength=r.seq.shape[1]) > 0
    return scores, have & (r.seq[u] < 0)


def boosted(counts: Callable[[Replay], np.ndarray], b: float, **kw: float | str) -> Rule:
    """The vote times (an item count)^b: popular items favoured (the engine's d = −b when the
    count is n_i)."""

    def rule(r: Replay, u: int) -> Top:
        out = vote_scores(r, u, **kw)
        return None if out is None else top10(out[0] * np.maximum(counts(r), 1e-300) ** b, out[1])

    return rule


def plain(**kw: float | str | bool) -> Rule:
    def rule(r: Replay, u: int) -> Top:
        out = vote_scores(r, u, **kw)
        return None if out is None else top10(*out)

    return rule


def blended(beta: float) -> Rule:
    """s_ui / max s + β · n_i / max n: the vote and popularity, over every item u has not."""

    def rule(r: Replay, u: int) -> Top:
        out = vote_scores(r, u)
        if out is None:
            return None
        score = out[0] / max(out[0].max(), 1e-300) + beta * r.n_item / r.n_item.max()
        return top10(score, (r.n_item > 0) & (r.seq[u] < 0))

    return rule


def calibrated(gamma: float = 1.0, tau: float = 0.5, weighted: bool = False) -> Rule:
    """The vote times a match of the candidate's popularity to u's own: with L = ln(1 + n), μ_u
    and σ_u the mean and deviation of L_j over u's items (``weighted``: by x_j = 2^(−pos_j/5)),
    s_ui · exp(−(L_i − μ_u)² / 2(σ_u² + τ²))^γ (a niche buyer's list leans to niche items)."""

    def rule(r: Replay, u: int) -> Top:
        out = vote_scores(r, u)
        if out is None:
            return None
        mine = r.history(u)
        big = np.log1p(r.n_item[mine])
        x = 2.0 ** (-np.arange(mine.size) / 5.0) if weighted else np.ones(mine.size)
        mu = float(x @ big / x.sum())
        var = float(x @ (big - mu) ** 2 / x.sum())
        match = np.exp(-((np.log1p(r.n_item) - mu) ** 2) / (2.0 * (var + tau**2)))
        return top10(out[0] * match**gamma, out[1])

    return rule


def item_conditional(a: float = 1.0, c: float = 0.0, h: float = 5.0, m: int = 30) -> Rule:
    """Item-based over whole histories without the cosine's 1/√n_i: s_ui = Σ_j x_j · n_ij / n_j^a
    / n_i^c over u's m latest items j (n_ij = users with both, u left out; a = 1, c = 0: the
    conditional probability P(i | j), popular items kept)."""

    def rule(r: Replay, u: int) -> Top:
        mine = r.history(u)[:m]
        if mine.size == 0:
            return None
        # n_ij over the other users: u's own row taken out of the product
        pairs = r.bought[:, mine].T @ r.bought - np.outer(r.bought[u, mine], r.bought[u])
        x = 2.0 ** (-np.arange(mine.size) / h) / np.maximum(r.n_item[mine], 1.0) ** a
        scores = x @ pairs / np.maximum(r.n_item, 1.0) ** c
        ok = (scores > 0) & (r.seq[u] < 0)
        return top10(scores, ok) if ok.any() else None

    return rule


def recent_popularity(h: float) -> Rule:
    """Popularity by decayed counts (:func:`decayed`) instead of n_i, no vote."""
    return lambda r, u: top10(decayed(h)(r), (r.n_item > 0) & (r.seq[u] < 0))


def decayed(h: float) -> Callable[[Replay], np.ndarray]:
    """Distinct buyers, each weighted 2^(−age/h), age in events since the first purchase."""
    return lambda r: r.decayed[h] * 2.0 ** (-r.now / h)


RULES: dict[str, Rule] = {
    "base": plain(),  # the implicit default: shared, h_n = 5, e = 1, d = 0, K = 80, h = 5
    "none": plain(recency="none"),
    "floor0.1": plain(floor=0.1),
    "floor0.3": plain(floor=0.3),
    "floor0.5": plain(floor=0.5),
    "h10": plain(h=10.0),
    "h20": plain(h=20.0),
    "k40": plain(k=40),
    "k160": plain(k=160),
    "k600": plain(k=600),
    "e2": plain(e=2.0),
    "e3": plain(e=3.0),
    "rarity0.25": plain(rarity=0.25),
    "rarity0.5": plain(rarity=0.5),
    "rarity0.75": plain(rarity=0.75),
    "rarity1": plain(rarity=1.0),
    "rarity1-h20": plain(rarity=1.0, h=20.0),
    "rarity-log": plain(log_rarity=True),
    "rarity0.5-h3": plain(rarity=0.5, h=3.0),
    "rarity0.5-k40": plain(rarity=0.5, k=40),
    "rarity0.5-k600": plain(rarity=0.5, k=600),
    "rarity0.5-e2": plain(rarity=0.5, e=2.0),
    "rarity0.5-h10": plain(rarity=0.5, h=10.0),
    "rarity0.5-h20": plain(rarity=0.5, h=20.0),
    "rarity0.5-k160": plain(rarity=0.5, k=160),
    "boost0.1": boosted(lambda r: r.n_item, 0.1),
    "boost0.2": boosted(lambda r: r.n_item, 0.2),
    "boost0.3": boosted(lambda r: r.n_item, 0.3),
    "boost0.5": boosted(lambda r: r.n_item, 0.5),
    "damp0.1": boosted(lambda r: r.n_item, -0.1),  # the engine's d = 0.1
    "decboost0.2-10000": boosted(decayed(10000.0), 0.2),
    "decboost0.2-30000": boosted(decayed(30000.0), 0.2),
    "blend0.1": blended(0.1),
    "blend0.3": blended(0.3),
    "blend1": blended(1.0),
    "recentpop10000": recent_popularity(10000.0),
    "recentpop30000": recent_popularity(30000.0),
}


def cooc_scores(
    r: Replay,
    u: int,
    *,
    kind: str = "prox",
    h_n: float = 2.0,
    h: float = 5.0,
    m: int = 30,
    a: float = 0.0,
    d: float = 0.0,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Item-item co-occurrence from every user's stream: s_ui = Σ_j x_j · C[j, i] / n_j^a / n_i^d
    over u's m latest items j (x_j = 2^(−pos_j/h)); C counts pairs of one user's events
    (``prox``: any two within 20 events, 2^(−(Δ−1)/h_n); ``basket``: the same order, 1)."""
    if kind in ("adopt", "adopt2"):  # u's latest first purchases, latest first
        mine = np.array(r.adopted[u][::-1][:m], dtype=np.int64)
    else:
        mine = r.history(u)[:m]
    if mine.size == 0:
        return None
    x = 2.0 ** (-np.arange(mine.size) / h) / np.maximum(r.n_item[mine], 1.0) ** a
    scores = x @ r.cooc[(kind, h_n)][mine].astype(np.float64)
    if d:
        scores = scores / np.maximum(r.n_item, 1.0) ** d
    ok = (scores > 0) & (r.seq[u] < 0)
    return (scores, ok) if ok.any() else None


def cooc(**kw: float | str) -> Rule:
    def rule(r: Replay, u: int) -> Top:
        out = cooc_scores(r, u, **kw)
        return None if out is None else top10(*out)

    NEEDS[rule] = (str(kw.get("kind", "prox")), float(kw.get("h_n", 2.0)))
    return rule


def fused(lam: float, how: str = "max", vote: dict | None = None, **kw: float | str) -> Rule:
    """The vote and the co-occurrence: s_vote / max s_vote + λ · s_co / max s_co (``max``), or
    reciprocal-rank fusion 1/(60 + rank_vote) + λ/(60 + rank_co) (``rrf``)."""

    def rule(r: Replay, u: int) -> Top:
        a = vote_scores(r, u, **(vote or {}))
        b = cooc_scores(r, u, **kw)
        if a is None or b is None:
            return None if a is None and b is None else top10(*(a or b))
        ok = a[1] | b[1]
        if how == "max":
            score = a[0] / a[0].max() + lam * b[0] / b[0].max()
        else:
            score = np.zeros(r.n_items)
            for (s, okk), weight in ((a, 1.0), (b, lam)):
                idx = np.flatnonzero(okk)
                order = idx[np.lexsort((idx, -s[idx]))]
                score[order] += weight / (60.0 + np.arange(order.size))
        return top10(score, ok)

    NEEDS[rule] = (str(kw.get("kind", "prox")), float(kw.get("h_n", 2.0)))
    return rule


for _hn in (1.0, 2.0, 5.0):
    RULES[f"prox{_hn:g}"] = cooc(h_n=_hn)
RULES["basket"] = cooc(kind="basket", h_n=0.0)
for _a in (0.5, 1.0):
    RULES[f"prox2-a{_a:g}"] = cooc(h_n=2.0, a=_a)
    RULES[f"basket-a{_a:g}"] = cooc(kind="basket", h_n=0.0, a=_a)
RULES["prox2-h2"] = cooc(h_n=2.0, h=2.0)
for _hn in (2.0, 5.0):
    RULES[f"adopt{_hn:g}"] = cooc(kind="adopt", h_n=_hn)
    RULES[f"adopt2-{_hn:g}"] = cooc(kind="adopt2", h_n=_hn)
    RULES[f"fuse-adopt{_hn:g}-0.3"] = fused(0.3, kind="adopt", h_n=_hn)
    RULES[f"rrf-adopt{_hn:g}-0.5"] = fused(0.5, how="rrf", kind="adopt", h_n=_hn)
RULES["prox2-h10"] = cooc(h_n=2.0, h=10.0)
for _lam in (0.3, 1.0):
    RULES[f"fuse-prox2-{_lam:g}"] = fused(_lam, h_n=2.0)
    RULES[f"fuse-basket-{_lam:g}"] = fused(_lam, kind="basket", h_n=0.0)
    RULES[f"rrf-prox2-{_lam:g}"] = fused(_lam, how="rrf", h_n=2.0)


for _sig in (1.0, 2.0, 4.0):
    RULES[f"stage{_sig:g}"] = staged(_sig)
    RULES[f"hazard{_sig:g}"] = staged(_sig, hazard=True)
for _g in (0.3, 1.0):
    RULES[f"vote-stage2-{_g:g}"] = staged(2.0, gamma=_g)
    RULES[f"vote-hazard2-{_g:g}"] = staged(2.0, hazard=True, gamma=_g)


for _k1 in (0.5, 1.2, 3.0):
    RULES[f"sat{_k1:g}"] = plain(sat=_k1)
    RULES[f"satu{_k1:g}"] = plain(sat_u=_k1)
    RULES[f"sat-both{_k1:g}"] = plain(sat=_k1, sat_u=_k1)
for _hv in (5.0, 20.0, 80.0):
    RULES[f"hv{_hv:g}"] = plain(h_v=_hv)
for _ha, _hb in ((5.0, 5.0), (5.0, 2.0), (10.0, 2.0), (5.0, 1.0), (2.0, 5.0), (10.0, 5.0)):
    RULES[f"asym{_ha:g}-{_hb:g}"] = plain(recency="asym", h_n=_ha, h_b=_hb)
RULES["norm0"] = plain(norm=0.0)
for _a, _c in ((1.0, 0.0), (0.5, 0.0), (0.0, 0.0), (1.0, 0.25)):
    RULES[f"itemcond-a{_a:g}-c{_c:g}"] = item_conditional(_a, _c)
for _g in (0.5, 1.0):
    RULES[f"calib{_g:g}"] = calibrated(_g)
    RULES[f"calibx{_g:g}"] = calibrated(_g, weighted=True)
RULES["norm0.25"] = plain(norm=0.25)
RULES["e0"] = plain(e=0.0)
RULES["e0.5"] = plain(e=0.5)
RULES["norm0-e0.5"] = plain(norm=0.0, e=0.5)
RULES["norm1"] = plain(norm=1.0)
RULES["hv20-norm0"] = plain(h_v=20.0, norm=0.0)


for _g in (0.5, 1.0):
    RULES[f"cart{_g:g}"] = carted(_g)
    RULES[f"cartnew{_g:g}"] = carted(_g, new=True)
    RULES[f"popcart{_g:g}"] = carted(_g, vote=False)


def run(
    fraction: float, seed: int, names: list[str], dump: dict[str, list] | None = None
) -> dict[str, float]:
    events = dataset_events("instacart")
    users: dict[str, int] = {}
    items: dict[str, int] = {}
    for ev in events:
        users.setdefault(ev.user_id, len(users))
        items.setdefault(ev.item_id, len(items))
    r = Replay(len(users), len(items))
    for name in names:
        if RULES[name] in NEEDS:
            r.want(*NEEDS[RULES[name]])
    known = np.zeros(len(users), dtype=bool)
    rng = random.Random(seed)
    hits = dict.fromkeys(["popularity", *names], 0)
    ranked = 0
    for n, ev in enumerate(events):
        u, i = users[ev.user_id], items[ev.item_id]
        if rng.random() < fraction and r.seq[u, i] < 0:
            ranked += 1
            r.qbasket = int(ev.ts.timestamp()) // 3600
            popular = top10(r.n_item, (r.n_item > 0) & (r.seq[u] < 0))
            hits["popularity"] += i in popular[:10]
            if dump is not None:
                dump.setdefault("target", []).append(i)
                dump.setdefault("popularity", []).append(popular)
            for name in names:
                top = RULES[name](r, u) if known[u] else None
                hits[name] += i in (popular if top is None else top)[:10]
                if dump is not None:
                    dump.setdefault(name, []).append(popular if top is None else top)
        r.learn(u, i, n, int(ev.ts.timestamp()) // 3600)
        known[u] = True
    return {name: hit / ranked for name, hit in hits.items()} | {"ranked": ranked}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", nargs="+", default=["0.05:0", "0.05:1"])
    parser.add_argument("--rules", nargs="+", default=list(RULES), choices=sorted(RULES))
    parser.add_argument(
        "--dump", metavar="PREFIX", help="each rule's top-50 per ranked event to PREFIX<sample>.pkl"
    )
    args = parser.parse_args(argv)
    if args.dump:
        LONG[0] = 50
    for text in args.samples:
        fraction, _, seed = text.partition(":")
        started = time.perf_counter()
        dump: dict[str, list] | None = {} if args.dump else None
        out = run(float(fraction), int(seed or 0), args.rules, dump)
        if args.dump:
            with open(f"{args.dump}{text}.pkl", "wb") as handle:
                pickle.dump(dump, handle)
        print(f"sample {text}: {out['ranked']:.0f} ranked ({time.perf_counter() - started:.0f} s)")
        pop = out["popularity"]
        for name in ["popularity", *args.rules]:
            print(f"  {name:20s} hit@10 {out[name]:.4f}  {out[name] / pop:.3f}x popularity")
    return 0


if __name__ == "__main__":
    sys.exit(main())
