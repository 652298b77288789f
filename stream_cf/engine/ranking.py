"""Ranking modes: how a user's list is ordered, computed from the ratings when a list is read.

Three modes (``UserKNN(rank=...)``); the first two read only who rated what and in which order,
so they need no pair sums and no rating values:

``vote`` (the default): a recency-weighted neighbour vote. Let I_u be u's items ordered by the
time of u's latest event on each (pos_j = 0 for the latest), x_j = 2^(−pos_j/h) with h the
history half-life (``rank_half_life``), n_v the number of items of v and n_i the raters of i::

    w_uv  = Σ_{j∈I_u, v rated j} x_j / √n_v                 (v ≠ u)
    N(u)  = the K users with the largest w_uv > 0          (K = ``rank_neighbours``)
    s_ui  = Σ_{v∈N(u), v rated i} w_uv^e / n_i^d           (e = ``rank_exponent``,
                                                             d = ``rank_damping``)

``item``: item-based kNN over the user's recent items, with the binary cosine between items
c_ij = n_ij / √(n_i·n_j) (n_ij = users who rated both, u included)::

    s_ui  = Σ_{j∈I_u} x_j · c_ij = (1/√n_i) Σ_v [v rated i] · y_v,
    y_v   = Σ_{j∈I_u, v rated j} x_j / √n_j

``rating``: by the predicted rating (:mod:`stream_cf.engine.predict`), the seed's rule.

Candidates are the items some neighbour rated (``vote``) or that share a rater with one of u's
items (``item``), minus u's own items unless ``include_seen`` (re-purchases in implicit lists).
Ties: neighbours by creation (the earlier created user first), items by first appearance.

Exact by construction: every sum is taken in a fixed order (``vote``: w over I_u latest first,
s over N(u) best first; ``item``: y over I_u latest first, s over the users by slot), so the
same ratings in the same order give the same bits, whatever the batching; the reference in the
tests computes the same sums with plain loops.

A list's dependencies, which the processor's refresh relies on (through
:meth:`UserKNN.co_raters` and the lists it shows): u's own data, the data of u's co-raters, and
the rater count n_i of each candidate. s_ui falls when n_i grows through a rater who is not a
co-rater of u, so such an event can change u's list only where the list shows i; it rises when
n_i shrinks (a take-back), which can bring i into the list of any co-rater of i's raters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from stream_cf.engine import knn
from stream_cf.engine.state import EngineState
from stream_cf.engine.storage import BoolArray, FloatArray, IntArray

RankMode = Literal["vote", "item", "rating"]
RANK_MODES: tuple[RankMode, ...] = ("vote", "item", "rating")


# The vote's shape per kind of feedback, each measured on several samples (BENCHMARKS.md, Ranking):
# for ratings (films) the squared similarity with a little popularity damping; for purchases
# (groceries, where the next new item is often a staple) the plain similarity, undamped.
VOTE_SHAPE: dict[str, tuple[float, float]] = {"explicit": (2.0, 0.2), "implicit": (1.0, 0.0)}


def default_vote_shape(feedback: str) -> tuple[float, float]:
    """(exponent, damping) that ``rank_exponent=None`` / ``rank_damping=None`` stand for."""
    return VOTE_SHAPE.get(feedback, VOTE_SHAPE["explicit"])


@dataclass(frozen=True)
class RankConfig:
    """The ranking mode and its parameters (see the module docstring for the formulas)."""

    mode: RankMode = "vote"
    half_life: float = 5.0  # h: a history position's weight halves every h items
    neighbours: int = 80  # K (vote)
    exponent: float = 2.0  # e (vote)
    damping: float = 0.2  # d (vote): popularity damping (a negative d favours popular items)
    include_seen: bool = False  # the user's own items may be listed (re-purchases)

    def problems(self) -> list[str]:
        """What is wrong with these settings (empty if nothing)."""
        out = []
        if self.mode not in RANK_MODES:
            out.append(f"rank={self.mode!r} (one of {', '.join(RANK_MODES)})")
        if not (math.isfinite(self.half_life) and self.half_life > 0):
            out.append(f"rank_half_life={self.half_life} (must be finite and > 0)")
        if self.neighbours < 1:
            out.append(f"rank_neighbours={self.neighbours} (must be >= 1)")
        if not (math.isfinite(self.exponent) and self.exponent > 0):
            out.append(f"rank_exponent={self.exponent} (must be finite and > 0)")
        if not (math.isfinite(self.damping) and -1 <= self.damping <= 1):
            out.append(f"rank_damping={self.damping} (must be in [-1, 1])")
        return out


def history(st: EngineState, u: int) -> tuple[IntArray, FloatArray]:
    """u's item slots, latest first, and their recency weights' positions (0, 1, 2, ...)."""
    items = np.flatnonzero(st.grid.mask[u, : st.items.high])
    order = np.argsort(-st.grid.seq[u, items], kind="stable")
    return items[order].astype(np.int64), np.arange(items.size, dtype=np.float64)


def recency(positions: FloatArray, half_life: float) -> FloatArray:
    """x_j = 2^(−pos_j/h)."""
    weights: FloatArray = np.power(2.0, -positions / half_life)
    return weights


def user_counts(st: EngineState, slots: IntArray) -> FloatArray:
    """n_v, the number of items of each user slot."""
    counts: FloatArray = st.pairs.sums[slots, slots, 0]
    return counts


def vote_neighbours(st: EngineState, cfg: RankConfig, u: int) -> tuple[IntArray, FloatArray]:
    """N(u) best first and w_uv (ties: the earlier created user)."""
    items, pos = history(st, u)
    x = recency(pos, cfg.half_life)
    total = weighted_rows(st.grid.mask_t[items, : st.users.high], x)  # over I_u latest first
    total[u] = 0.0
    cand = np.flatnonzero(total > 0)
    w = total[cand] / np.sqrt(user_counts(st, cand))
    order = np.lexsort((st.user_since[cand], -w))[: cfg.neighbours]
    return cand[order].astype(np.int64), w[order]


def weighted_rows(rows: BoolArray, weights: FloatArray) -> FloatArray:
    """Σ_r weights[r]·rows[r] per column, each column summed row by row in order (a reduction
    over the outer axis adds whole rows one after the other: the reference's plain loop)."""
    out: FloatArray = np.multiply(rows, weights[:, None]).sum(axis=0)
    return out


def vote_scores(
    st: EngineState, cfg: RankConfig, slots: IntArray, w: FloatArray
) -> tuple[IntArray, FloatArray]:
    """The candidates (item slots, ascending) and s_ui, summed over N(u) best first."""
    rated = st.grid.mask[slots, : st.items.high]
    total = weighted_rows(rated, w**cfg.exponent)
    cand = np.flatnonzero(rated.any(axis=0))
    scores = total[cand]
    if cfg.damping:
        scores = scores / st.item_count[cand].astype(np.float64) ** cfg.damping
    return cand.astype(np.int64), scores


def item_scores(st: EngineState, cfg: RankConfig, u: int) -> tuple[IntArray, FloatArray]:
    """The candidates (item slots, ascending) and the item-based s_ui."""
    items, pos = history(st, u)
    x = recency(pos, cfg.half_life) / np.sqrt(st.item_count[items].astype(np.float64))
    y = weighted_rows(st.grid.mask_t[items, : st.users.high], x)
    raters = np.flatnonzero(y > 0)
    rated = st.grid.mask[raters, : st.items.high]  # by v ascending
    total = weighted_rows(rated, y[raters])
    cand = np.flatnonzero(rated.any(axis=0))
    return cand.astype(np.int64), total[cand] / np.sqrt(st.item_count[cand].astype(np.float64))


def ranked(st: EngineState, cfg: RankConfig, u: int, n: int) -> list[tuple[str, float]] | None:
    """u's n best items under ``vote`` or ``item`` (best first, ties by first appearance);
    None when there is nothing to rank (no neighbour, no candidate): the caller falls back."""
    if cfg.mode == "vote":
        slots, w = vote_neighbours(st, cfg, u)
        if slots.size == 0:
            return None
        cand, scores = vote_scores(st, cfg, slots, w)
    else:
        cand, scores = item_scores(st, cfg, u)
    if not cfg.include_seen:
        keep = ~st.grid.mask[u, cand]
        cand, scores = cand[keep], scores[keep]
    if cand.size == 0:
        return None
    best = knn.top_n(scores, cand, n)
    return [(str(st.items.id_of[cand[b]]), float(scores[b])) for b in best]
