"""A user's similarities to every other user, and their neighbourhood sorted best first.

The pair sums over co-rated items (n, Σx, Σy, Σx², Σy², Σxy) come from the state's pair sums
when it keeps them for the user (every user, or only the owned ones: O(users) to read) or are
computed from the ratings when read (O(Σ raters of the user's items)): the same integers either
way while the values are multiples of 0.5, so the similarities are the same bits. One item's
prediction needs u's similarities to that item's raters only (:func:`similarities`: the same
element-wise formulas on those slots' sums, so the same bits as the whole row at those slots).
The formulas: :mod:`stream_cf.engine.similarity`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream_cf.engine import similarity
from stream_cf.engine.config import EngineConfig
from stream_cf.engine.pairs import LANE_UNITS
from stream_cf.engine.state import EngineState
from stream_cf.engine.storage import BoolArray, FloatArray, IntArray

# the stored unit of each lane of a cell in u's orientation (n, Σxy, Σx², Σx, Σy², Σy), as a
# column: int32 sums of 2·value (pairs.LANE_UNITS)
_LANE_UNITS = LANE_UNITS[:, None]


@dataclass(frozen=True)
class Neighbourhood:
    """The usable neighbours of one user, sorted by similarity (descending, stable by slot)."""

    slots: IntArray  # user slots, best first
    weights: FloatArray  # their similarities w_uv
    group: IntArray  # run id of equal similarities, per position


def pair_sums(st: EngineState, u: int) -> similarity.Sums:
    """u's sums against every user slot (from the pair sums, or from the ratings)."""
    high = st.users.high
    pairs = st.pairs_of(u)
    if pairs is not None:
        s = pairs.sums_row(u, high)  # n, Σx, Σy, Σx², Σy², Σxy
        return similarity.Sums.of(
            n=s[:, 0], sx=s[:, 1], sy=s[:, 2], sxx=s[:, 3], syy=s[:, 4], sxy=s[:, 5]
        )
    items, x, _seq = st.ratings.user_row(u)
    where, raters, y = st.ratings.items_rows(items)
    xe = x[where]

    def total(weights: FloatArray | None) -> FloatArray:
        out: FloatArray = np.bincount(raters, weights=weights, minlength=high).astype(np.float64)
        return out

    return similarity.Sums.of(
        n=total(None),
        sx=total(xe),
        sy=total(y),
        sxx=total(xe * xe),
        syy=total(y * y),
        sxy=total(xe * y),
    )


def similarity_row(st: EngineState, cfg: EngineConfig, u: int) -> FloatArray:
    """w_uv for every user slot v (0 for v = u and for free slots)."""
    w = _weights(st, cfg, u, pair_sums(st, u), None)
    w[u] = 0.0
    return w


def pair_sums_at(st: EngineState, u: int, slots: IntArray) -> similarity.Sums:
    """u's sums against the given user slots only (:func:`pair_sums` at ``slots``: the same
    values, read from the pair sums' cells of those slots when the state keeps them)."""
    pairs = st.pairs_of(u)
    if pairs is None:
        return similarity.Sums(pair_sums(st, u).table[:, slots])
    if pairs.scatter_ready:  # the cells' int32 lanes in u's orientation: the table's rows
        lanes = pairs.lanes_at(u, slots)
        return similarity.Sums(np.multiply(lanes.T, _LANE_UNITS))
    row, col = pairs.sums_at(u, slots)
    return similarity.Sums.of(
        n=row[:, 0], sx=row[:, 1], sy=col[:, 1], sxx=row[:, 2], syy=col[:, 2], sxy=row[:, 3]
    )


def similarities(
    st: EngineState,
    cfg: EngineConfig,
    u: int,
    slots: IntArray,
    means: FloatArray | None = None,
) -> FloatArray:
    """w_uv for the given user slots v ≠ u: :func:`similarity_row` at ``slots``, bit for bit
    (the same element-wise formulas), at the cost of those slots only (``means``: r̄_v of
    ``slots`` if the caller has them)."""
    return _weights(st, cfg, u, pair_sums_at(st, u, slots), slots, means=means)


def _weights(
    st: EngineState,
    cfg: EngineConfig,
    u: int,
    s: similarity.Sums,
    slots: IntArray | None,
    *,
    means: FloatArray | None = None,
) -> FloatArray:
    """The configured similarity from u's sums against ``slots`` (None: every user slot)."""
    if cfg.implicit:
        norms = st.ratings.user_sumsq
        w = similarity.implicit_cosine(
            s.sxy, float(norms[u]), norms[: st.users.high] if slots is None else norms[slots]
        )
    elif cfg.similarity == "adjusted_cosine":
        if means is None:
            means = st.means() if slots is None else st.means_at(slots)
        w = similarity.adjusted_cosine(s, st.mean_of(u), means)
    else:
        formula = {
            "cosine": similarity.cosine,
            "msd": similarity.msd,
            "pearson": similarity.pearson,
        }[cfg.similarity]
        w = formula(s)
    return similarity.finish(w, s.n, cfg.min_support, cfg.shrinkage)


def neighbourhood(w: FloatArray, usable: BoolArray) -> Neighbourhood:
    """Sort the usable neighbours by descending similarity (stable, so ties keep slot order)."""
    slots = np.flatnonzero(usable)
    order = np.argsort(-w[slots], kind="stable")
    slots = slots[order]
    weights = w[slots]
    group = np.zeros(slots.size, dtype=np.int64)
    if slots.size > 1:
        np.cumsum(weights[1:] != weights[:-1], out=group[1:])
    return Neighbourhood(slots=slots, weights=weights, group=group)


def neighbourhood_of(st: EngineState, cfg: EngineConfig, u: int) -> Neighbourhood:
    """u's usable neighbours, best first."""
    w = similarity_row(st, cfg, u)
    return neighbourhood(w, cfg.usable(w))
