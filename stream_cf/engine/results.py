"""The values the engine hands back: what a batch touched, recommendations, explanations.

They are small frozen dataclasses so that callers (the processor, the evaluation, the CLI) can
keep them, compare them and turn them into JSON without touching the engine's arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BatchEffect:
    """What a batch of events touched, for the processor's refresh policy.

    ``users``: users who acted and still exist at the end of the batch; ``items``: items whose
    rater set or values changed; ``forgotten``: users erased by the batch (``forget_user``, or
    whose last rating was taken back) who do not exist at its end, so that their published
    recommendations can be tombstoned; ``events``: how many events were applied.
    """

    users: frozenset[str] = field(default_factory=frozenset)
    items: frozenset[str] = field(default_factory=frozenset)
    forgotten: frozenset[str] = field(default_factory=frozenset)
    events: int = 0


@dataclass(frozen=True)
class Recommendations:
    """The ``n`` best items for a user, best first, and why the list is a fallback if it is.

    ``items`` holds ``(item, score)`` pairs; ties are broken by the item's first appearance in
    the stream. ``fallback`` is ``None`` for a neighbour-based list, otherwise the reason, e.g.
    ``"unknown user: popularity"``.
    """

    items: list[tuple[str, float]]
    fallback: str | None = None


@dataclass(frozen=True)
class Neighbour:
    """One neighbour used in a prediction.

    ``similarity`` is w_uv, ``rating`` is r_vi (the weight in implicit mode), ``neighbour_mean``
    is r̄_v and ``weight`` is the neighbour's share of the estimate, w_uv / Σ_{v∈N(i;u)} |w_uv|
    (``knn_baseline``: w_uv / (Σ_{v∈N(i;u)} |w_uv| + damping), and ``neighbour_baseline`` is
    b_vi = μ + b_v + b_i, the value its rating is compared with; None for ``knn_means``).
    """

    user: str
    similarity: float
    rating: float
    neighbour_mean: float
    weight: float
    neighbour_baseline: float | None = None


@dataclass(frozen=True)
class ItemNeighbour:
    """One of the user's own items in ``knn_baseline``'s item-based residual
    (``item_residual`` > 0, :mod:`stream_cf.engine.item_residual`).

    ``similarity`` is s_ij, ``rating`` the user's rating r_uj, ``baseline`` b_uj = μ + b_u + b_j
    and ``weight`` its share of the estimate, s_ij / (Σ_{v∈N(i;u)} |w_uv| + Σ_{j∈M(u;i)} s_ij +
    damping).
    """

    item: str
    similarity: float
    rating: float
    baseline: float
    weight: float


@dataclass(frozen=True)
class BaselineTerms:
    """The baseline of the ``knn_baseline`` predictor, b_ui = μ + b_u + b_i
    (:mod:`stream_cf.engine.baseline`); a bias is 0 for an unknown user or item."""

    global_mean: float
    user_bias: float
    item_bias: float

    @property
    def value(self) -> float:
        """b_ui = μ + b_u + b_i (before clipping)."""
        return self.global_mean + self.user_bias + self.item_bias


@dataclass(frozen=True)
class Explanation:
    """How :meth:`UserKNN.predict` arrived at ``estimate`` for ``(user, item)``.

    Explicit feedback, ``knn_means``: ``estimate = clip(user_mean + Σ weight·(rating −
    neighbour_mean))`` over ``neighbours``; ``knn_baseline``: ``estimate = clip(baseline.value +
    Σ weight·(rating − neighbour_baseline))``; implicit feedback: ``estimate = Σ weight·rating``.
    ``fallback`` is ``None`` when the neighbours were used, otherwise the reason (unknown user,
    unknown item, min_k not reached) and ``estimate`` is the fallback value (``knn_baseline``:
    the clipped baseline). ``baseline`` holds the baseline terms (``knn_baseline`` only).
    With ``item_residual`` > 0, ``item_neighbours`` holds the user's items j of M(u;i) and
    ``knn_baseline``'s estimate is ``clip(baseline.value + Σ weight·(rating − neighbour_baseline)
    + Σ_{item_neighbours} weight·(rating − baseline))``, every weight over the pooled
    denominator.
    """

    user: str
    item: str
    estimate: float
    user_mean: float
    neighbours: list[Neighbour]
    fallback: str | None = None
    baseline: BaselineTerms | None = None
    item_neighbours: list[ItemNeighbour] = field(default_factory=list)
