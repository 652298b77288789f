"""The compiled read of ``knn_baseline``'s user-neighbour terms for the predictions of one user
(``user_terms_many`` in ``_item_kernel.c``: several items in one call, one item as its one-column
case), with the numpy path of :mod:`~stream_cf.engine.predict` as its reference and fallback.

For user u and each wanted item i, the kernel computes what the numpy path computes — for one
item ``baseline_predict`` from :func:`~stream_cf.engine.predict.neighbours_of` and
:meth:`~stream_cf.engine.baseline.Baseline.users`, for several
:func:`~stream_cf.engine.predict.user_columns` from u's neighbourhood and
:func:`~stream_cf.engine.knn.select` (the same N(i;u), summed in the same order) — with the same
floating-point operations in the same order (built with -ffp-contract=off), so the same bits
(tests/engine/test_user_kernel.py, tests/engine/test_user_kernel_many.py)::

    w_uv  = adjusted_cosine(u, v) · n_uv / (n_uv + β)     (:mod:`~stream_cf.engine.similarity`;
                                                           read from u's pair cells)
    N(i;u) = the k usable raters v ≠ u of i by w_uv descending (ties: the earlier rating of i),
             summed by w_uv descending, then slot
    b_x   = (S_x − n_x·μ − Σ_{j∈I_x} b_j) / (λ_u + n_x)   (Σ in ascending item slot, from 0.0)
    num_i = Σ_{v∈N(i;u)} w_uv·(r_vi − ((μ + b_v) + b_i)),   den_i = Σ_{v∈N(i;u)} |w_uv|

returning per column (num_i, den_i, |N(i;u)|), and b_u: one compiled pass over the wanted items'
raters and the neighbours' rows, where the numpy path makes ~50 calls an item (one) or sorts u's
whole neighbourhood and the neighbours' ratings (several). The work the columns share is done
once a call: w_uv once per distinct rater, the usable raters ranked once (w descending, then
slot), b_u once and b_v once per distinct neighbour; a column's N(i;u) is then read from the
ranks of its raters without a sort (the run of equal w at the k-th neighbour, if any, ordered
by the earlier rating). Σ_{j∈I_x} b_j reads x's kept row of item slots ascending
(:meth:`~stream_cf.engine.ratings.Ratings.sorted_segments`, as the numpy path does); a user
without one is ordered in the kernel and then given one, so that the next read is a plain pass.

It runs where the numpy path reads the same data the same way: explicit feedback, the
``adjusted_cosine`` similarity (knn_baseline's default), u's pair sums held as int32 cells in the
reservation (:attr:`~stream_cf.engine.pairs.PairSums.scatter_ready`); elsewhere
:func:`user_terms_many` returns None and the caller takes the numpy path. :data:`KERNEL` is None
when the extension is not built (``CI=true``: the tests require it).
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from stream_cf.engine.baseline import Baseline
from stream_cf.engine.config import EngineConfig
from stream_cf.engine.extensions import compiled
from stream_cf.engine.state import EngineState
from stream_cf.engine.storage import FloatArray, IntArray

KERNEL: ModuleType | None = compiled("_item_kernel", "user_terms_many")
_UNSORTED: list[IntArray] = [np.zeros(64, dtype=np.int64)]  # the kernel's room for the b_x read


def user_terms_many(
    st: EngineState, cfg: EngineConfig, base: Baseline, u: int, cols: IntArray
) -> tuple[FloatArray, FloatArray, IntArray, float] | None:
    """(num, den, |N(i;u)|) per distinct known item slot of ``cols``, and b_u, of user slot u
    from the kernel (see the module docstring), or None where the numpy path must answer."""
    kernel = KERNEL
    if kernel is None or cfg.implicit or cfg.similarity != "adjusted_cosine":
        return None
    pairs = st.pairs_of(u)
    if pairs is None or not pairs.scatter_ready:
        return None
    ratings = st.ratings
    users, cells, raters, values = (
        ratings.by_user,
        ratings.by_item,
        ratings.item_users,
        ratings.item_values,
    )
    words_lo, words_hi = pairs.word_tables()
    min_similarity = cfg.min_similarity
    kept = ratings.items_sorted
    cols = np.ascontiguousarray(cols, dtype=np.int64)
    n_cols = cols.size
    room = 1 + n_cols * min(cfg.k, st.users.high)  # u and each column's neighbours, at most
    if _UNSORTED[0].size < room:
        _UNSORTED[0] = np.zeros(room, dtype=np.int64)
    unsorted = _UNSORTED[0]
    num_den = np.empty((2, n_cols), dtype=np.float64)
    count = np.empty(n_cols, dtype=np.int64)
    b_u, n_unsorted = kernel.user_terms_many(
        u, cfg.k, cfg.min_support, cfg.shrinkage, min_similarity is not None,
        0.0 if min_similarity is None else min_similarity, base.mu, base.reg_users, cols,
        num_den, count, base.items, users.start, users.length, users.pool, cells.start,
        cells.pool, raters.start, raters.length, raters.pool, values.start, values.pool,
        ratings.cell_item, ratings.cell_seq, ratings.user_sum, ratings.user_count, pairs.flat(),
        words_lo, words_hi, kept.start, kept.length, kept.pool, ratings.sorted_ok, unsorted,
    )  # fmt: skip
    if n_unsorted:  # their rows sorted and kept for the next reads
        ratings.sorted_segments(unsorted[:n_unsorted].copy())
    return num_den[0], num_den[1], count, b_u


def user_terms(
    st: EngineState, cfg: EngineConfig, base: Baseline, u: int, i: int
) -> tuple[float, float, int, float] | None:
    """(num, den, |N(i;u)|, b_u) of user slot u and known item slot i: :func:`user_terms_many`
    of the one column, or None where the numpy path must answer."""
    out = user_terms_many(st, cfg, base, u, np.array([i], dtype=np.int64))
    if out is None:
        return None
    num, den, count, b_u = out
    return float(num[0]), float(den[0]), int(count[0]), b_u
