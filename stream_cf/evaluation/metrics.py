"""Running metrics of a prediction stream: MAE/RMSE, hit-rate@N, NDCG@N and catalogue coverage.

Each metric is a small object with ``update(...)`` and a read-out, so the prequential loop can
report the figures after any event (and plot them along the stream).

* Rating error, over the ``n`` predicted events with prediction ``p_j`` and truth ``r_j``::

      MAE  = (1/n) Σ_j |p_j − r_j|
      RMSE = sqrt((1/n) Σ_j (p_j − r_j)²)

* Ranking, one held-out item per evaluated event (leave-one-out style): with ``rank`` the 0-based
  position of the item in the top-N list, or ``None`` when it is not in the list::

      hit@N  = (1/m) Σ_j [rank_j is not None]
      NDCG@N = (1/m) Σ_j 1/log2(rank_j + 2)   (0 when absent; one relevant item: ideal DCG 1)

* Coverage@N = |∪ top-N lists shown| / |catalogue|, the catalogue being given when read (the
  evaluation uses every item seen in the whole stream).

An empty metric reads as NaN (nothing measured), never 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


class ErrorStats:
    """Running mean absolute error and root mean squared error."""

    __slots__ = ("n", "sum_abs", "sum_sq")

    def __init__(self) -> None:
        self.n = 0
        self.sum_abs = 0.0
        self.sum_sq = 0.0

    def update(self, prediction: float, truth: float) -> None:
        """Add one prediction and the value it should have been."""
        err = prediction - truth
        self.n += 1
        self.sum_abs += abs(err)
        self.sum_sq += err * err

    @property
    def mae(self) -> float:
        return self.sum_abs / self.n if self.n else math.nan

    @property
    def rmse(self) -> float:
        return math.sqrt(self.sum_sq / self.n) if self.n else math.nan


def rank_of(item: str, ranking: Sequence[str], n: int) -> int | None:
    """The 0-based position of ``item`` among the first ``n`` of ``ranking``, or None."""
    for pos, candidate in enumerate(ranking[:n]):
        if candidate == item:
            return pos
    return None


class RankingStats:
    """Running hit-rate@N and NDCG@N of one held-out item per evaluated event."""

    __slots__ = ("dcg", "hits", "n")

    def __init__(self) -> None:
        self.n = 0
        self.hits = 0
        self.dcg = 0.0

    def update(self, rank: int | None) -> None:
        """Add one evaluated event: ``rank`` is the item's 0-based position, None if absent."""
        self.n += 1
        if rank is not None:
            self.hits += 1
            # one relevant item, so the ideal DCG is 1/log2(0 + 2) = 1 and NDCG = DCG
            self.dcg += 1.0 / math.log2(rank + 2)

    @property
    def hit_rate(self) -> float:
        return self.hits / self.n if self.n else math.nan

    @property
    def ndcg(self) -> float:
        return self.dcg / self.n if self.n else math.nan


class Coverage:
    """The set of items that appeared in at least one shown top-N list."""

    __slots__ = ("shown",)

    def __init__(self) -> None:
        self.shown: set[str] = set()

    def update(self, items: Iterable[str]) -> None:
        self.shown.update(items)

    def value(self, catalogue_size: int) -> float:
        """|shown| / catalogue_size (NaN for an empty catalogue)."""
        return len(self.shown) / catalogue_size if catalogue_size else math.nan


class RankingMetrics:
    """Hit-rate, NDCG and coverage of one ranker, updated together."""

    __slots__ = ("coverage", "n", "stats")

    def __init__(self, n: int) -> None:
        self.n = n
        self.stats = RankingStats()
        self.coverage = Coverage()

    def update(self, item: str, ranking: Sequence[str]) -> int | None:
        """Score ``ranking`` (best first) against the held-out ``item``; return its rank."""
        top = ranking[: self.n]
        rank = rank_of(item, top, self.n)
        self.stats.update(rank)
        self.coverage.update(top)
        return rank
