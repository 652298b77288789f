"""Many variants of the ``vote`` rule on Instacart's new items in one replay (an exploration tool).

    python benchmarks/instacart_rules.py [--samples 0.05:0 0.05:1] [--rules NAME ...]

The engine's ``benchmarks/ranking.py`` replays the stream once per configuration; this script
replays it once per sample and, at every ranked event (the prequential protocol of
``stream-cf evaluate``: the same ``random.Random(seed)`` draws, new items only), computes every
rule of :data:`RULES` from plain users × items arrays (593 × 14,190), sharing the user's history
between the rules. It reproduces the engine's figures where the engine has the rule (``base`` =
the implicit default, ``none``, popularity: the same hit@10 to the last digit on 0.05:0) and
tries rules the engine does not have (a popularity boost by decayed counts). It is not the
engine: ties are broken the same way but the sums are not bit-for-bit the engine's.
"""

from __future__ import annotations

import argparse
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


class Replay:
    """The purchases so far as dense arrays: last sequence number and a bought mask per cell."""

    def __init__(self, n_users: int, n_items: int) -> None:
        self.seq = np.full((n_users, n_items), -1, dtype=np.int64)
        self.bought = np.zeros((n_users, n_items), dtype=np.float64)
        self.n_item = np.zeros(n_items, dtype=np.float64)  # n_i, distinct buyers
        self.n_user = np.zeros(n_users, dtype=np.float64)  # n_v, distinct items
        self.cache: dict[int, np.ndarray] = {}
        self.decayed = {h: np.zeros(n_items) for h in (3000.0, 10000.0, 30000.0)}
        self.now = 0

    def learn(self, u: int, i: int, n: int) -> None:
        self.now = n
        if self.seq[u, i] < 0:
            for h, counts in self.decayed.items():
                counts[i] += 2.0 ** (n / h)
            self.bought[u, i] = 1.0
            self.n_item[i] += 1
            self.n_user[u] += 1
        self.seq[u, i] = n
        self.cache.pop(u, None)

    def history(self, u: int) -> np.ndarray:
        """u's items, latest first."""
        if u not in self.cache:
            items = np.flatnonzero(self.seq[u] >= 0)
            self.cache[u] = items[np.argsort(-self.seq[u, items], kind="stable")]
        return self.cache[u]


def top10(scores: np.ndarray, ok: np.ndarray) -> list[int]:
    idx = np.flatnonzero(ok)
    order = np.lexsort((idx, -scores[idx]))[:10]
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
) -> tuple[np.ndarray, np.ndarray] | None:
    """s_ui over every item and the candidates (a neighbour has it, u has not); None: no
    neighbour. The engine's ``vote`` with d = 0 (module doc of stream_cf.engine.ranking)."""
    mine = r.history(u)
    x = 2.0 ** (-np.arange(mine.size) / h)
    if rarity:
        x = x / r.n_item[mine] ** rarity
    if log_rarity:  # 1/ln(1 + n_j) instead of n_j^−b
        x = x / np.log1p(r.n_item[mine])
    total = r.bought[:, mine] @ x
    total[u] = 0
    cand = np.flatnonzero(total > 0)
    if cand.size == 0:
        return None
    w = total[cand] / np.sqrt(r.n_user[cand])
    order = np.lexsort((cand, -w))[:k]
    slots, w = cand[order], w[order]
    hists = [r.history(int(v)) for v in slots]
    where = np.concatenate([np.full(hv.size, n) for n, hv in enumerate(hists)])
    items = np.concatenate(hists)
    pos = np.concatenate([np.arange(hv.size) for hv in hists])
    if recency == "none":
        g = np.ones(items.size)
    else:
        u_pos = np.full(r.seq.shape[1], np.nan)
        u_pos[mine] = np.arange(mine.size)
        cfg = SimpleNamespace(half_life=h, neighbour_half_life=h_n)
        g = nearest_shared(cfg, u_pos[items], where, pos, slots.size)
        g = floor + (1.0 - floor) * g  # floor > 0: between shared (0) and none (1)
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


def run(fraction: float, seed: int, names: list[str]) -> dict[str, float]:
    events = dataset_events("instacart")
    users: dict[str, int] = {}
    items: dict[str, int] = {}
    for ev in events:
        users.setdefault(ev.user_id, len(users))
        items.setdefault(ev.item_id, len(items))
    r = Replay(len(users), len(items))
    known = np.zeros(len(users), dtype=bool)
    rng = random.Random(seed)
    hits = dict.fromkeys(["popularity", *names], 0)
    ranked = 0
    for n, ev in enumerate(events):
        u, i = users[ev.user_id], items[ev.item_id]
        if rng.random() < fraction and r.seq[u, i] < 0:
            ranked += 1
            popular = top10(r.n_item, (r.n_item > 0) & (r.seq[u] < 0))
            hits["popularity"] += i in popular
            for name in names:
                top = RULES[name](r, u) if known[u] else None
                hits[name] += i in (popular if top is None else top)
        r.learn(u, i, n)
        known[u] = True
    return {name: hit / ranked for name, hit in hits.items()} | {"ranked": ranked}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", nargs="+", default=["0.05:0", "0.05:1"])
    parser.add_argument("--rules", nargs="+", default=list(RULES), choices=sorted(RULES))
    args = parser.parse_args(argv)
    for text in args.samples:
        fraction, _, seed = text.partition(":")
        started = time.perf_counter()
        out = run(float(fraction), int(seed or 0), args.rules)
        print(f"sample {text}: {out['ranked']:.0f} ranked ({time.perf_counter() - started:.0f} s)")
        pop = out["popularity"]
        for name in ["popularity", *args.rules]:
            print(f"  {name:20s} hit@10 {out[name]:.4f}  {out[name] / pop:.3f}x popularity")
    return 0


if __name__ == "__main__":
    sys.exit(main())
