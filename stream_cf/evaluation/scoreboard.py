"""The figures of one evaluation run: what is counted, for the model and for every baseline.

Both protocols (prequential and the 80/20 split) fill a :class:`Scoreboard` with the same rules,
so their figures mean the same thing:

* a *rated event* is an explicit rating; its prediction by the model and by each mean baseline is
  scored (MAE/RMSE). It is *cold* when, before the event, the model does not know the user
  (``new_user``: the engine predicts the global mean) or knows the user but not the item
  (``new_item``: the engine predicts the user's mean); otherwise it is *warm*. Figures are given
  over all rated events and over the warm ones only.
* a *ranked event* is a sampled rating or purchase of an item the user does not already have
  (the engine's and popularity's lists exclude what the user has, so a repeat can never be a hit;
  sampled repeats are counted as ``ranking_repeats`` and skipped). The model's top-N for the user
  and popularity's top-N are scored against the item (hit-rate@N, NDCG@N, coverage@N). A ranked
  event of an unknown user is counted as ``ranked_new_user`` (the engine answers with its
  popularity fallback).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from stream_cf.evaluation.baselines import MEAN_BASELINES, MeanBaselines
from stream_cf.evaluation.metrics import ErrorStats, RankingMetrics

MODEL = "model"


@dataclass(frozen=True)
class Figures:
    """The final figures of one predictor or ranker (None: not applicable or nothing measured)."""

    rmse: float | None = None
    mae: float | None = None
    warm_rmse: float | None = None
    warm_mae: float | None = None
    hit_rate: float | None = None
    ndcg: float | None = None
    coverage: float | None = None

    def to_json(self, n: int) -> dict[str, float | None]:
        return {
            "rmse": self.rmse,
            "mae": self.mae,
            "warm_rmse": self.warm_rmse,
            "warm_mae": self.warm_mae,
            f"hit_rate_at_{n}": self.hit_rate,
            f"ndcg_at_{n}": self.ndcg,
            f"coverage_at_{n}": self.coverage,
        }


def _num(x: float) -> float | None:
    return None if math.isnan(x) else x


@dataclass
class Scoreboard:
    """Running figures of the model and the baselines, plus the event counts."""

    n: int = 10
    errors: dict[str, ErrorStats] = field(default_factory=dict)
    warm_errors: dict[str, ErrorStats] = field(default_factory=dict)
    ranking: dict[str, RankingMetrics] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in (MODEL, *MEAN_BASELINES):
            self.errors[name] = ErrorStats()
            self.warm_errors[name] = ErrorStats()
        for name in (MODEL, "popularity"):
            self.ranking[name] = RankingMetrics(self.n)
        for key in (
            "rated",
            "rated_warm",
            "new_user",
            "new_item",
            "ranked",
            "ranked_new_user",
            "ranking_repeats",
            "rejected",
        ):
            self.counts[key] = 0

    def score_rating(
        self,
        user: str,
        item: str,
        truth: float,
        prediction: float,
        *,
        user_known: bool,
        item_known: bool,
        means: MeanBaselines,
    ) -> None:
        """Score the model's ``prediction`` and each mean baseline's for one rated event."""
        warm = user_known and item_known
        self.counts["rated"] += 1
        if not user_known:
            self.counts["new_user"] += 1
        elif not item_known:
            self.counts["new_item"] += 1
        else:
            self.counts["rated_warm"] += 1
        preds = {MODEL: prediction}
        for name in MEAN_BASELINES:
            preds[name] = means.predict(name, user, item)
        for name, pred in preds.items():
            self.errors[name].update(pred, truth)
            if warm:
                self.warm_errors[name].update(pred, truth)

    def score_ranking(
        self, item: str, model_top: Sequence[str], popular_top: Sequence[str], *, user_known: bool
    ) -> None:
        """Score the model's and popularity's top-N lists against the held-out ``item``."""
        self.counts["ranked"] += 1
        if not user_known:
            self.counts["ranked_new_user"] += 1
        self.ranking[MODEL].update(item, model_top)
        self.ranking["popularity"].update(item, popular_top)

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    # -- read-out -------------------------------------------------------------------------
    def figures(self, name: str, catalogue_size: int) -> Figures:
        """The final figures of ``name`` (``model`` or a baseline)."""
        err = self.errors.get(name)
        warm = self.warm_errors.get(name)
        rank = self.ranking.get(name)
        return Figures(
            rmse=_num(err.rmse) if err else None,
            mae=_num(err.mae) if err else None,
            warm_rmse=_num(warm.rmse) if warm else None,
            warm_mae=_num(warm.mae) if warm else None,
            hit_rate=_num(rank.stats.hit_rate) if rank else None,
            ndcg=_num(rank.stats.ndcg) if rank else None,
            coverage=_num(rank.coverage.value(catalogue_size)) if rank and rank.stats.n else None,
        )

    def snapshot(self) -> dict[str, float]:
        """The running figures now, for the trace along the stream (NaN: nothing yet)."""
        out: dict[str, float] = {}
        for name, err in self.errors.items():
            out[f"{name}.rmse"] = err.rmse
            out[f"{name}.mae"] = err.mae
        for name, rank in self.ranking.items():
            out[f"{name}.hit_rate"] = rank.stats.hit_rate
            out[f"{name}.ndcg"] = rank.stats.ndcg
        return out


@dataclass(frozen=True)
class EvaluationResult:
    """Everything one run measured; ``to_json`` is the ``--json`` line."""

    mode: str  # "prequential" or "split"
    dataset: str
    events: int
    seconds: float
    n: int
    model: Figures
    baselines: dict[str, Figures]
    counts: dict[str, int]
    catalogue_size: int
    rank_sample: float
    seed: int
    config: dict[str, Any]
    rating_metrics: bool
    trace: dict[str, list[float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        n = self.n
        out: dict[str, Any] = {
            "dataset": self.dataset,
            "mode": self.mode,
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.events / self.seconds, 1) if self.seconds else None,
        }
        out.update(self.model.to_json(n))
        out["baselines"] = {name: fig.to_json(n) for name, fig in self.baselines.items()}
        out.update(self.counts)
        out["catalogue_size"] = self.catalogue_size
        out["rank_sample"] = self.rank_sample
        out["seed"] = self.seed
        out["rating_metrics"] = self.rating_metrics
        out["model_config"] = self.config
        out.update(self.extra)
        return out


def build_result(
    board: Scoreboard,
    *,
    mode: str,
    dataset: str,
    events: int,
    seconds: float,
    catalogue_size: int,
    rank_sample: float,
    seed: int,
    config: dict[str, Any],
    rating_metrics: bool,
    trace: dict[str, list[float]] | None = None,
    extra: dict[str, Any] | None = None,
) -> EvaluationResult:
    """Freeze a scoreboard into a result; rating figures are None when not measured."""

    def figs(name: str) -> Figures:
        f = board.figures(name, catalogue_size)
        if not rating_metrics:
            f = Figures(hit_rate=f.hit_rate, ndcg=f.ndcg, coverage=f.coverage)
        return f

    baselines = {name: figs(name) for name in MEAN_BASELINES}
    pop = board.figures("popularity", catalogue_size)
    baselines["popularity"] = Figures(hit_rate=pop.hit_rate, ndcg=pop.ndcg, coverage=pop.coverage)
    return EvaluationResult(
        mode=mode,
        dataset=dataset,
        events=events,
        seconds=seconds,
        n=board.n,
        model=figs(MODEL),
        baselines=baselines,
        counts=dict(board.counts),
        catalogue_size=catalogue_size,
        rank_sample=rank_sample,
        seed=seed,
        config=config,
        rating_metrics=rating_metrics,
        trace=trace or {},
        extra=extra or {},
    )
