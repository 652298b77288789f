"""Batch models on Instacart's new items: how high hit@10 goes under the prequential protocol.

    python benchmarks/instacart_ceiling.py --samples 0.05:0 0.05:1 --models base ease100 als64
    python benchmarks/instacart_ceiling.py --samples 0.05:0 --models ease100 --every 500 --json

Issue 10's target (hit@10 ≥ 1.2× popularity on new Instacart items) is missed by every
neighbourhood rule of ``instacart_rules.py``. This script asks whether any model reaches it, with
models that ignore the streaming constraint: each is *retrained* on the events seen so far every
``--every`` N events (trained on the events [0, t), t = N·⌊n/N⌋ for the ranked event n) and, at
every ranked event, folds in the user's *current* row (every purchase before the event), so that
the retraining period hardly matters. The protocol is ``instacart_rules.run``'s (that of
``stream-cf evaluate``): the same ``random.Random(seed)`` draw per event, new items only, the same
popularity list and tie-breaking (:func:`instacart_rules.top10`: score, then the lower item
index), popularity for a user with no purchase yet or no purchase the model knows (and, for
every model but ``base``, before its first training at event N); ``base`` is
``instacart_rules``' own replay of the engine's implicit default vote (the same figures to the
last digit). A model's candidates are the items it was trained on that the user has not bought;
its list is padded with popularity's if shorter than 10.

Models (X = the users × items matrix at the last retraining, x_u the user's current row; binary
unless a name says otherwise; formulas in each class):

- EASE (Steck 2019): B = I − P·diagMat(1/diag P), P = (XᵀX + λI)⁻¹, s_u = x_u B, over every item,
  computed exactly through the users' side (593 users: Woodbury, :class:`Ease`); ``-h5``: x_u by
  the recency 2^(−pos/5) of the vote;
- implicit ALS (Hu, Koren, Volinsky 2008), numpy (:class:`Als`): confidence 1 + α·count;
- RP3beta (Paudel et al. 2017, :class:`Rp3`), on the current state (a sum over it: nothing to
  retrain), and item-kNN on BM25 / TF-IDF weights (:class:`ItemKnn`, its weights and cosines
  retrained, the user's current items);
- a first-order Markov chain over baskets (:class:`BasketMarkov`, the user's previous basket →
  the new items of the next), alone and fused with popularity;
- ``fuse`` variants: a model's scores fused with popularity, s/max s + λ·n_i/max n.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Protocol

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import instacart_rules as rules  # a sibling script, not a package

from stream_cf.datasets import dataset_events


class State:
    """The purchases so far: counts and last sequence number per cell, the users' baskets."""

    def __init__(self, n_users: int, n_items: int) -> None:
        self.count = np.zeros((n_users, n_items), dtype=np.float64)
        self.seq = np.full((n_users, n_items), -1, dtype=np.int64)
        self.bought = np.zeros((n_users, n_items), dtype=np.float64)  # [count > 0]
        self.n_item = np.zeros(n_items, dtype=np.float64)  # distinct buyers
        self.n_user = np.zeros(n_users, dtype=np.float64)  # distinct items
        self.n_items = n_items
        self.basket: list[int] = [-1] * n_users  # the user's latest basket (hour) id
        self.items: list[list[int]] = [[] for _ in range(n_users)]  # its items
        self.prev: list[list[int]] = [[] for _ in range(n_users)]  # the basket before it

    def learn(self, u: int, i: int, n: int, basket: int) -> None:
        if self.seq[u, i] < 0:
            self.n_item[i] += 1.0
            self.n_user[u] += 1.0
            self.bought[u, i] = 1.0
        self.count[u, i] += 1.0
        self.seq[u, i] = n
        if basket != self.basket[u]:
            self.prev[u] = self.items[u]
            self.items[u] = []
            self.basket[u] = basket
        self.items[u].append(i)

    def history(self, u: int) -> np.ndarray:
        """u's items, latest first."""
        items = np.flatnonzero(self.seq[u] >= 0)
        return items[np.argsort(-self.seq[u, items], kind="stable")]

    def context(self, u: int, basket: int) -> list[int]:
        """u's last basket before ``basket`` (the ranked event's)."""
        return self.prev[u] if self.basket[u] == basket else self.items[u]


Scores = tuple[np.ndarray, np.ndarray] | None  # scores over every item, candidates; None: none


class Model(Protocol):
    def fit(self, st: State) -> None: ...
    def scores(self, st: State, u: int, basket: int) -> Scores: ...


def recency(st: State, u: int, h: float) -> np.ndarray:
    """u's row weighted by the vote's recency: x_j = 2^(−pos_j/h), pos 0 = u's latest item."""
    mine = st.history(u)
    x = np.zeros(st.n_items)
    x[mine] = 2.0 ** (-np.arange(mine.size) / h)
    return x


class Ease:
    """EASE: s_u = x_u·B, B = I − P·diagMat(1/diag P), P = (XᵀX + λI)⁻¹ (Steck 2019).

    With 593 users and 14,190 items P comes from the users' side (Woodbury):
    P = (I − Xᵀ K X)/λ with K = (XXᵀ + λI)⁻¹, so x_u P = (x_u − (X x_u)ᵀ K X)/λ and
    diag P_i = (1 − X_iᵀ K X_i)/λ (X_i = item i's column): exact EASE over every item, at the
    cost of a 593 × 593 inverse. A new item of u (x_ui = 0) scores −(x_u P)_i / P_ii.
    ``weight``: X binary (``bin``) or ln(1 + purchases) (``log``); ``h``: x_u by recency."""

    def __init__(self, lam: float, weight: str = "bin", h: float = 0.0) -> None:
        self.lam, self.weight, self.h = lam, weight, h

    def matrix(self, count: np.ndarray) -> np.ndarray:
        return np.log1p(count) if self.weight == "log" else (count > 0).astype(np.float64)

    def fit(self, st: State) -> None:
        x = sp.csr_matrix(self.matrix(st.count))
        gram = (x @ x.T).toarray() + self.lam * np.eye(x.shape[0])
        self.k = np.linalg.inv(gram)
        self.x = x
        kx = np.asarray((x.T @ self.k).T)  # K X, users × items
        self.diag = (1.0 - np.asarray(x.multiply(kx).sum(axis=0)).ravel()) / self.lam
        self.trained = np.asarray((x != 0).sum(axis=0)).ravel() > 0

    def scores(self, st: State, u: int, basket: int) -> Scores:
        row = recency(st, u, self.h) if self.h else self.matrix(st.count[u])
        row = row * self.trained
        if not row.any():
            return None
        xp = (row - (self.x.T @ (self.k @ (self.x @ row)))) / self.lam
        return -xp / self.diag, self.trained & (st.seq[u] < 0)


class Als:
    """Implicit ALS (Hu, Koren, Volinsky 2008): minimise Σ_ui c_ui (p_ui − x_uᵀy_i)² + λ(Σ|x|² +
    Σ|y|²), p = [bought], c = 1 + α·purchases; ``iters`` alternating exact least-squares steps from
    a seeded N(0, 0.01) start, then u's factor refitted to u's current row (fold-in):
    x_u = (YᵀY + Σ_i (c_ui − 1) y_i y_iᵀ + λI)⁻¹ Σ_i c_ui y_i; s_ui = x_uᵀ y_i."""

    def __init__(self, f: int, lam: float, alpha: float, iters: int = 10, log: bool = False):
        self.f, self.lam, self.alpha, self.iters, self.log = f, lam, alpha, iters, log

    def conf(self, count: np.ndarray) -> np.ndarray:
        return self.alpha * (np.log1p(count) if self.log else count)  # c − 1

    def half(self, fixed: np.ndarray, m: sp.csr_matrix) -> np.ndarray:
        """Each row r of m: (FᵀF + Σ_j (c_rj − 1) F_j F_jᵀ + λI)⁻¹ Σ_j c_rj F_j (by degree)."""
        f = fixed.shape[1]
        out = np.zeros((m.shape[0], f))
        base = fixed.T @ fixed + self.lam * np.eye(f)
        deg = np.diff(m.indptr)
        for d in np.unique(deg[deg > 0]):
            rows = np.flatnonzero(deg == d)
            starts = m.indptr[rows][:, None] + np.arange(d)[None, :]
            cols, c1 = m.indices[starts], m.data[starts]  # (n, d)
            vec = fixed[cols]  # (n, d, f)
            a = base + np.matmul(vec.transpose(0, 2, 1) * c1[:, None, :], vec)
            b = np.matmul((c1 + 1.0)[:, None, :], vec)[:, 0, :]
            out[rows] = np.linalg.solve(a, b[:, :, None])[:, :, 0]
        return out

    def fit(self, st: State) -> None:
        m = sp.csr_matrix(self.conf(st.count))
        mt = m.T.tocsr()
        rng = np.random.default_rng(0)
        self.users = rng.normal(0.0, 0.01, (m.shape[0], self.f))
        self.items = rng.normal(0.0, 0.01, (m.shape[1], self.f))
        for _ in range(self.iters):
            self.items = self.half(self.users, mt)
            self.users = self.half(self.items, m)
        self.trained = np.diff(mt.indptr) > 0

    def scores(self, st: State, u: int, basket: int) -> Scores:
        mine = np.flatnonzero((st.count[u] > 0) & self.trained)
        if mine.size == 0:
            return None
        y = self.items[mine]
        c1 = self.conf(st.count[u, mine])
        a = self.items.T @ self.items + (y.T * c1) @ y + self.lam * np.eye(self.f)
        xu = np.linalg.solve(a, y.T @ (c1 + 1.0))
        return self.items @ xu, self.trained & (st.seq[u] < 0)


class Rp3:
    """RP3beta (Paudel et al. 2017): s_ui = Σ_j Σ_v P(u→j)^α P(j→v)^α P(v→i)^α / n_i^β, the
    three-step walk user → item → user → item with P(u→j) = 1/n_u, P(j→v) = 1/n_j,
    P(v→i) = 1/n_v over bought cells; ``h``: u's first step by recency instead (x_j^α)."""

    def __init__(self, alpha: float, beta: float, h: float = 0.0) -> None:
        self.alpha, self.beta, self.h = alpha, beta, h

    def fit(self, st: State) -> None:
        """Nothing to train: the walk is a sum over the current state."""

    def scores(self, st: State, u: int, basket: int) -> Scores:
        x, n_i, n_v = st.bought, st.n_item, st.n_user
        row = recency(st, u, self.h) if self.h else x[u] / n_v[u]
        to_user = x @ (row**self.alpha / np.maximum(n_i, 1.0) ** self.alpha)
        to_user[u] = 0.0  # u's own items are not candidates anyway; keep u out of the walk
        s = (to_user / np.maximum(n_v, 1.0) ** self.alpha) @ x
        return s / np.maximum(n_i, 1.0) ** self.beta, (n_i > 0) & (st.seq[u] < 0)


class ItemKnn:
    """Item-kNN: s_ui = Σ_j x_j · cos(W_j, W_i) over u's items j (x_j = 1, or 2^(−pos_j/h)),
    W = the bought matrix weighted (``bm25``: Okapi BM25 with k1, b over each user's row as the
    document: w = idf_i · (k1 + 1)/(k1·(1 − b + b·n_u/avg n) + 1), idf_i = ln(U/n_i); ``tfidf``:
    w = idf_i; ``none``: 1); cosine over the users, no neighbour cut (every item j counts)."""

    def __init__(self, weight: str = "bm25", k1: float = 1.2, b: float = 0.75, h: float = 0.0):
        self.weight, self.k1, self.b, self.h = weight, k1, b, h

    def fit(self, st: State) -> None:
        x = sp.csr_matrix((st.count > 0).astype(np.float64))
        n_i = np.asarray(x.sum(axis=0)).ravel()
        n_u = np.asarray(x.sum(axis=1)).ravel()
        x = x.tocoo()
        w = np.ones_like(x.data)
        if self.weight in ("bm25", "tfidf"):
            w = np.log(x.shape[0] / n_i[x.col])
        if self.weight == "bm25":
            length = self.k1 * (1.0 - self.b + self.b * n_u[x.row] / n_u[n_u > 0].mean())
            w = w * (self.k1 + 1.0) / (length + 1.0)
        wm = sp.csc_matrix((w, (x.row, x.col)), shape=x.shape)
        norm = np.sqrt(np.asarray(wm.multiply(wm).sum(axis=0)).ravel())
        self.w = sp.csr_matrix(wm @ sp.diags(1.0 / np.maximum(norm, 1e-12)))
        self.wt = self.w.T.tocsr()
        self.trained = norm > 0

    def scores(self, st: State, u: int, basket: int) -> Scores:
        row = recency(st, u, self.h) if self.h else (st.count[u] > 0).astype(np.float64)
        row = row * self.trained
        mine = np.flatnonzero(row)
        if mine.size == 0:
            return None
        s = self.w.T @ (self.wt[mine].T @ row[mine])  # Σ_j x_j W_j, then against each W_i
        return np.asarray(s).ravel(), self.trained & (st.seq[u] < 0)


class BasketMarkov:
    """First-order Markov chain over baskets (a basket = one user's events in one hour):
    T[j, i] = Σ over consecutive baskets (b, b') of one user, j ∈ b, i ∈ b' new to the user, of
    1/|b|; s_ui = Σ_{j ∈ u's last basket before the ranked event's} T[j, i] (kept event by
    event: no retraining). ``lam`` > 0: fused with popularity, s/max s + λ·n_i/max n."""

    def __init__(self, lam: float = 0.0) -> None:
        self.lam = lam

    def fit(self, st: State) -> None:
        """Nothing to train: T is kept by :func:`markov_learn`."""

    def scores(self, st: State, u: int, basket: int) -> Scores:
        ctx = st.context(u, basket)
        s = np.zeros(st.n_items)
        for j in set(ctx):
            row = MARKOV.get(j)
            if row:
                s[list(row)] += list(row.values())
        ok = (st.n_item > 0) & (st.seq[u] < 0)
        if not (s[ok] > 0).any():
            return None
        if self.lam:
            s = s / s[ok].max() + self.lam * st.n_item / st.n_item.max()
        else:
            ok = ok & (s > 0)
        return s, ok


#: T of :class:`BasketMarkov`: T[j][i], built by :func:`markov_learn` for one replay
MARKOV: dict[int, dict[int, float]] = defaultdict(dict)


def markov_learn(st: State, u: int, i: int, basket: int) -> None:
    """Before ``st.learn``: a new item i of u in a basket after another adds 1/|b| to T[j, i]."""
    if st.seq[u, i] >= 0:
        return
    ctx = st.context(u, basket)
    for j in set(ctx):
        row = MARKOV[j]
        row[i] = row.get(i, 0.0) + 1.0 / len(ctx)


class Fused:
    """A model's scores fused with popularity: s/max|s| + λ · n_i / max n (over its candidates)."""

    def __init__(self, inner: Model, lam: float) -> None:
        self.inner, self.lam = inner, lam

    def fit(self, st: State) -> None:
        self.inner.fit(st)

    def scores(self, st: State, u: int, basket: int) -> Scores:
        out = self.inner.scores(st, u, basket)
        if out is None:
            return None
        s, ok = out
        top = np.abs(s[ok]).max() if ok.any() else 1.0
        return s / max(top, 1e-300) + self.lam * st.n_item / st.n_item.max(), ok


MODELS: dict[str, Callable[[], Model]] = {}
for _lam in (10.0, 30.0, 100.0, 300.0, 1000.0):
    MODELS[f"ease{_lam:g}"] = lambda lam=_lam: Ease(lam)
    MODELS[f"ease{_lam:g}-log"] = lambda lam=_lam: Ease(lam, weight="log")
    MODELS[f"ease{_lam:g}-h5"] = lambda lam=_lam: Ease(lam, h=5.0)
    MODELS[f"ease{_lam:g}-h20"] = lambda lam=_lam: Ease(lam, h=20.0)
    for _w in (0.3, 1.0):
        MODELS[f"fuse-ease{_lam:g}-{_w:g}"] = lambda lam=_lam, w=_w: Fused(Ease(lam), w)
        MODELS[f"fuse-ease{_lam:g}-h5-{_w:g}"] = lambda lam=_lam, w=_w: Fused(Ease(lam, h=5.0), w)
for _f in (16, 32, 64):
    for _reg in (0.1, 1.0, 10.0, 100.0):
        for _alpha in (0.3, 1.0, 10.0, 40.0):
            _name = f"als{_f}-r{_reg:g}-a{_alpha:g}"
            MODELS[_name] = lambda f=_f, reg=_reg, a=_alpha: Als(f, reg, a)
for _a in (0.5, 1.0):
    for _b in (0.0, 0.3, 0.5):
        MODELS[f"rp3-a{_a:g}-b{_b:g}"] = lambda a=_a, b=_b: Rp3(a, b)
        MODELS[f"rp3-a{_a:g}-b{_b:g}-h5"] = lambda a=_a, b=_b: Rp3(a, b, h=5.0)
for _w in ("bm25", "tfidf", "none"):
    MODELS[f"iknn-{_w}"] = lambda w=_w: ItemKnn(w)
    MODELS[f"iknn-{_w}-h5"] = lambda w=_w: ItemKnn(w, h=5.0)
for _lam in (0.0, 0.3, 1.0, 3.0):
    MODELS[f"markov-{_lam:g}"] = lambda lam=_lam: BasketMarkov(lam)


def run(
    fraction: float, seed: int, names: list[str], every: int, oracle: list[str]
) -> dict[str, float]:
    """One replay of ``instacart_rules.run``'s protocol; hit@10 of popularity and each model
    (``base``: instacart_rules' replay of the engine's implicit default). ``oracle``: pairs
    ``a+b`` also scored as the perfect per-event choice between the two lists."""
    events = dataset_events("instacart")
    users: dict[str, int] = {}
    items: dict[str, int] = {}
    for ev in events:
        users.setdefault(ev.user_id, len(users))
        items.setdefault(ev.item_id, len(items))
    st = State(len(users), len(items))
    vote = rules.Replay(len(users), len(items)) if "base" in names else None
    models = {name: MODELS[name]() for name in names if name != "base"}
    MARKOV.clear()
    rng = random.Random(seed)
    hits = dict.fromkeys(["popularity", *names, *oracle], 0)
    cpu = dict.fromkeys(names, 0.0)
    ranked = 0
    for n, ev in enumerate(events):
        u, i = users[ev.user_id], items[ev.item_id]
        basket = int(ev.ts.timestamp()) // 3600
        if n and n % every == 0:
            for name, model in models.items():
                started = time.process_time()
                model.fit(st)
                cpu[name] += time.process_time() - started
        if rng.random() < fraction and st.seq[u, i] < 0:
            ranked += 1
            popular = rules.top10(st.n_item, (st.n_item > 0) & (st.seq[u] < 0))
            hits["popularity"] += i in popular
            got: dict[str, bool] = {"popularity": i in popular}
            known = st.count[u].any()
            for name in names:
                started = time.process_time()
                top = None
                if known and vote is not None and name == "base":
                    vote.qbasket = basket
                    top = rules.RULES["base"](vote, u)
                elif known and n >= every and name != "base":
                    out = models[name].scores(st, u, basket)
                    if out is not None and out[1].any():
                        top = rules.top10(*out)
                        top += [j for j in popular if j not in top][: 10 - len(top)]
                cpu[name] += time.process_time() - started
                got[name] = i in (popular if top is None else top)
                hits[name] += got[name]
            for pair in oracle:
                hits[pair] += any(got[p] for p in pair.split("+"))
        if "markov" in " ".join(names):
            markov_learn(st, u, i, basket)
        st.learn(u, i, n, basket)
        if vote is not None:
            vote.learn(u, i, n, basket)
    out = {name: hit / ranked for name, hit in hits.items()}
    return out | {"ranked": ranked} | {f"cpu_s:{k}": round(v, 1) for k, v in cpu.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", nargs="+", default=["0.05:0"])
    parser.add_argument("--models", nargs="+", default=["base"], choices=["base", *MODELS])
    parser.add_argument("--every", type=int, default=1000, help="retrain every N events")
    parser.add_argument(
        "--oracle", nargs="*", default=[], help="a+b: the perfect per-event choice of two lists"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per sample")
    args = parser.parse_args(argv)
    for text in args.samples:
        fraction, _, seed = text.partition(":")
        started = time.perf_counter()
        out = run(float(fraction), int(seed or 0), args.models, args.every, args.oracle)
        wall = time.perf_counter() - started
        if args.json:
            meta = {"sample": text, "every": args.every, "seconds": round(wall, 1)}
            meta |= {"load": os.getloadavg()[0], "python": platform.python_version()}
            print(json.dumps(meta | out), flush=True)
            continue
        print(f"sample {text}: {out['ranked']:.0f} ranked, every {args.every} ({wall:.0f} s)")
        pop = out["popularity"]
        for name in ["popularity", *args.models, *args.oracle]:
            cpu = out.get(f"cpu_s:{name}", 0.0)
            print(f"  {name:22s} hit@10 {out[name]:.4f}  {out[name] / pop:.3f}x  cpu {cpu:.0f} s")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
