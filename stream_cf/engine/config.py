"""The engine's settings: one frozen :class:`EngineConfig` with its checks and small rules.

It sits at the bottom of the engine with the state: every function above reads its settings from
an ``EngineConfig`` and its data from an :class:`~stream_cf.engine.state.EngineState`, and
:class:`~stream_cf.engine.model.UserKNN` builds both from its keywords.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any, Literal

from stream_cf.engine.storage import BoolArray, FloatArray
from stream_cf.engine.validation import VALUE_LIMIT
from stream_cf.exceptions import ConfigError

RankMode = Literal["vote", "item", "rating"]
RANK_MODES: tuple[RankMode, ...] = ("vote", "item", "rating")
NeighbourRecency = Literal["none", "latest", "shared"]
NEIGHBOUR_RECENCIES: tuple[NeighbourRecency, ...] = ("none", "latest", "shared")
SimilarityName = Literal["cosine", "msd", "pearson", "adjusted_cosine"]
SIMILARITIES: tuple[str, ...] = ("cosine", "msd", "pearson", "adjusted_cosine")
PREDICTORS = ("knn_means", "knn_baseline")
DEFAULT_IMPLICIT_WEIGHTS: dict[str, float] = {"purchase": 1.0, "rating": 1.0}

# The vote's shape per kind of feedback, each measured on several samples (BENCHMARKS.md, Ranking):
# for ratings (films) the squared similarity with a little popularity damping; for purchases
# (groceries, where the next new item is often a staple) the plain similarity, undamped.
VOTE_SHAPE: dict[str, tuple[float, float]] = {"explicit": (2.0, 0.2), "implicit": (1.0, 0.0)}

# The rarity exponent b of w_uv per kind of feedback (BENCHMARKS.md, Ranking): 0 for both; b = 0.5
# was level with 0 on Instacart's new items over five samples and below it on ML-100K, b = 1 below.
RARITY: dict[str, float] = {"explicit": 0.0, "implicit": 0.0}

# shrinkage=None: 0 for knn_means (as Surprise's KNNWithMeans) and implicit feedback; the
# knn_baseline residual measured best with similarities shrunk by n / (n + 100)
# (BENCHMARKS.md, "Predictors")
DEFAULT_SHRINKAGE: dict[str, float] = {"knn_means": 0.0, "knn_baseline": 100.0}

# item_residual=None: the item neighbours K of knn_baseline's item-based residual
# (:mod:`stream_cf.engine.item_residual`; 0 = off). knn_means and implicit feedback have none.
DEFAULT_ITEM_RESIDUAL: dict[str, int] = {"knn_means": 0, "knn_baseline": 40}


# similarity=None: cosine for implicit feedback (the only one); pearson for knn_means (as
# Surprise's KNNWithMeans); for the knn_baseline residual the cosine centred on each user's
# running mean, better than pearson on the prequential stream, its halves and the 80/20 split
# (BENCHMARKS.md, "Predictors")
DEFAULT_SIMILARITY: dict[str, SimilarityName] = {
    "knn_means": "pearson",
    "knn_baseline": "adjusted_cosine",
}


def default_similarity(predictor: str, feedback: str) -> SimilarityName:
    """The similarity ``similarity=None`` stands for."""
    if feedback == "implicit":
        return "cosine"
    return DEFAULT_SIMILARITY.get(predictor, "pearson")


def default_vote_shape(feedback: str) -> tuple[float, float]:
    """(exponent, damping) that ``rank_exponent=None`` / ``rank_damping=None`` stand for."""
    return VOTE_SHAPE.get(feedback, VOTE_SHAPE["explicit"])


def default_rarity(feedback: str) -> float:
    """The rarity exponent b that ``rank_rarity=None`` stands for."""
    return RARITY.get(feedback, RARITY["explicit"])


def default_shrinkage(predictor: str, feedback: str) -> float:
    """The shrinkage ``shrinkage=None`` stands for."""
    return DEFAULT_SHRINKAGE.get(predictor, 0.0) if feedback == "explicit" else 0.0


def default_item_residual(predictor: str, feedback: str) -> int:
    """The item neighbours ``item_residual=None`` stands for."""
    return DEFAULT_ITEM_RESIDUAL.get(predictor, 0) if feedback == "explicit" else 0


def default_pair_sums(feedback: str, rank: str) -> bool:
    """What ``pair_sums=None`` stands for: kept when the lists or the published predicted
    ratings read similarities (explicit feedback, or ``rank="rating"``); an implicit model
    ranked by ``vote`` or ``item`` reads none and keeps only its ratings."""
    return feedback == "explicit" or rank == "rating"


@dataclass(frozen=True)
class RankConfig:
    """The ranking mode and its parameters (formulas: :mod:`stream_cf.engine.ranking`)."""

    mode: RankMode = "vote"
    half_life: float = 5.0  # h: a history position's weight halves every h items
    neighbours: int = 80  # K (vote)
    exponent: float = 2.0  # e (vote)
    damping: float = 0.2  # d (vote): popularity damping (a negative d favours popular items)
    include_seen: bool = False  # the user's own items may be listed (re-purchases)
    # g_v(i) (vote): none, latest or shared. shared: +9–19% hit@10 on ML-100K's three samples; on
    # Instacart level with none for new items (better NDCG@10), +11% with re-purchases
    # (BENCHMARKS.md, Ranking)
    neighbour_recency: NeighbourRecency = "shared"
    neighbour_half_life: float = 5.0  # h_n (vote, unless neighbour_recency is none)
    # b (vote): w_uv counts each shared item j as x_j / n_j^b, so a staple everybody buys says
    # less about a neighbour than a rare item (an IDF-like weight; 0: every shared item alike)
    rarity: float = 0.0

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
        if self.neighbour_recency not in NEIGHBOUR_RECENCIES:
            out.append(
                f"rank_neighbour_recency={self.neighbour_recency!r} "
                f"(one of {', '.join(NEIGHBOUR_RECENCIES)})"
            )
        if not (math.isfinite(self.neighbour_half_life) and self.neighbour_half_life > 0):
            out.append(
                f"rank_neighbour_half_life={self.neighbour_half_life} (must be finite and > 0)"
            )
        if not (math.isfinite(self.rarity) and 0 <= self.rarity <= 2):
            out.append(f"rank_rarity={self.rarity} (must be in [0, 2])")
        return out


def _number(value: object) -> float | None:
    """``value`` as a float if it is a real number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@dataclass(frozen=True)
class EngineConfig:
    """Every setting of the engine, resolved (no None standing for a default) and checked.

    Build it with :meth:`create` (the ``UserKNN`` keywords, defaults resolved, ConfigError naming
    every offending value); :meth:`keywords` gives them back.
    """

    ranking: RankConfig
    similarity: SimilarityName
    k: int
    min_k: int
    min_support: int
    min_similarity: float | None
    shrinkage: float
    rating_scale: tuple[float, float]
    feedback: Literal["explicit", "implicit"]
    implicit_weights: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_IMPLICIT_WEIGHTS)
    )
    implicit_cap: float | None = None
    predictor: Literal["knn_means", "knn_baseline"] = "knn_baseline"
    baseline_reg_items: float = 10.0
    baseline_reg_users: float = 5.0
    damping: float = 0.5
    # knn_baseline's item-based residual: K item neighbours (0: off) and the shrinkage β of s_ij
    item_residual: int = 0
    item_shrinkage: float = 100.0
    pair_sums: bool = True
    pair_rows: Literal["all", "owned"] = "all"

    @classmethod
    def create(
        cls,
        *,
        rank: RankMode = "vote",
        rank_half_life: float = 5.0,
        rank_neighbours: int = 80,
        rank_exponent: float | None = None,
        rank_damping: float | None = None,
        include_seen: bool = False,
        rank_neighbour_recency: NeighbourRecency = "shared",
        rank_neighbour_half_life: float = 5.0,
        rank_rarity: float | None = None,
        similarity: SimilarityName | None = None,
        k: int = 40,
        min_k: int = 1,
        min_support: int = 1,
        min_similarity: float | None = 0.0,
        shrinkage: float | None = None,
        rating_scale: tuple[float, float] = (1.0, 5.0),
        feedback: Literal["explicit", "implicit"] = "explicit",
        implicit_weights: Mapping[str, float] | None = None,
        implicit_cap: float | None = None,
        predictor: Literal["knn_means", "knn_baseline"] = "knn_baseline",
        baseline_reg_items: float = 10.0,
        baseline_reg_users: float = 5.0,
        damping: float = 0.5,
        item_residual: int | None = None,
        item_shrinkage: float = 100.0,
        pair_sums: bool | None = None,
        pair_rows: Literal["all", "owned"] = "all",
    ) -> EngineConfig:
        weights = dict(DEFAULT_IMPLICIT_WEIGHTS)
        if implicit_weights is not None:
            weights.update({str(key): float(value) for key, value in implicit_weights.items()})
        if similarity is None:  # the predictor's own default (see DEFAULT_SIMILARITY)
            similarity = default_similarity(predictor, feedback)
        shape = default_vote_shape(feedback)
        ranking = RankConfig(
            mode=rank,
            half_life=float(rank_half_life),
            neighbours=int(rank_neighbours),
            exponent=float(shape[0] if rank_exponent is None else rank_exponent),
            damping=float(shape[1] if rank_damping is None else rank_damping),
            include_seen=bool(include_seen),
            neighbour_recency=rank_neighbour_recency,
            neighbour_half_life=float(rank_neighbour_half_life),
            rarity=float(default_rarity(feedback) if rank_rarity is None else rank_rarity),
        )
        if shrinkage is None:  # the predictor's own default (see DEFAULT_SHRINKAGE)
            shrinkage = default_shrinkage(predictor, feedback)
        if pair_sums is None:
            pair_sums = default_pair_sums(feedback, rank)
        if item_residual is None:  # the predictor's own default (see DEFAULT_ITEM_RESIDUAL)
            item_residual = default_item_residual(predictor, feedback)
        out = cls(
            ranking=ranking,
            similarity=similarity,
            k=int(k),
            min_k=int(min_k),
            min_support=int(min_support),
            min_similarity=None if min_similarity is None else float(min_similarity),
            shrinkage=float(shrinkage),
            rating_scale=(float(rating_scale[0]), float(rating_scale[1])),
            feedback=feedback,
            implicit_weights=weights,
            implicit_cap=None if implicit_cap is None else float(implicit_cap),
            predictor=predictor,
            baseline_reg_items=baseline_reg_items,
            baseline_reg_users=baseline_reg_users,
            damping=damping,
            item_residual=item_residual,
            item_shrinkage=item_shrinkage,
            pair_sums=bool(pair_sums),
            pair_rows=pair_rows,
        )
        problems = out.problems()
        if problems:
            raise ConfigError("invalid UserKNN settings: " + "; ".join(problems))
        return out.normalised()

    def normalised(self) -> EngineConfig:
        """The same settings with the predictor's numbers as floats (after the checks)."""
        return EngineConfig(
            **{
                **self.__dict__,
                "baseline_reg_items": float(self.baseline_reg_items),
                "baseline_reg_users": float(self.baseline_reg_users),
                "damping": float(self.damping),
                "item_residual": int(self.item_residual),
                "item_shrinkage": float(self.item_shrinkage),
            }
        )

    def keywords(self) -> dict[str, Any]:
        """The ``UserKNN`` keywords (``UserKNN(**config.keywords())`` builds an empty twin)."""
        rank = self.ranking
        return {
            "rank": rank.mode,
            "rank_half_life": rank.half_life,
            "rank_neighbours": rank.neighbours,
            "rank_exponent": rank.exponent,
            "rank_damping": rank.damping,
            "include_seen": rank.include_seen,
            "rank_neighbour_recency": rank.neighbour_recency,
            "rank_neighbour_half_life": rank.neighbour_half_life,
            "rank_rarity": rank.rarity,
            "similarity": self.similarity,
            "k": self.k,
            "min_k": self.min_k,
            "min_support": self.min_support,
            "min_similarity": self.min_similarity,
            "shrinkage": self.shrinkage,
            "rating_scale": self.rating_scale,
            "feedback": self.feedback,
            "implicit_weights": dict(self.implicit_weights),
            "implicit_cap": self.implicit_cap,
            "predictor": self.predictor,
            "baseline_reg_items": self.baseline_reg_items,
            "baseline_reg_users": self.baseline_reg_users,
            "damping": self.damping,
            "item_residual": self.item_residual,
            "item_shrinkage": self.item_shrinkage,
            "pair_sums": self.pair_sums,
            "pair_rows": self.pair_rows,
        }

    def problems(self) -> list[str]:
        """What is wrong with these settings, each with the offending value."""
        problems = self.ranking.problems()
        if self.similarity not in SIMILARITIES:
            problems.append(f"similarity={self.similarity!r} (one of {SIMILARITIES})")
        if self.feedback not in ("explicit", "implicit"):
            problems.append(f"feedback={self.feedback!r} (explicit or implicit)")
        if self.feedback == "implicit" and self.similarity != "cosine":
            problems.append(
                f"similarity={self.similarity!r} with feedback='implicit' (implicit feedback uses "
                "similarity='cosine', on the full weight vectors)"
            )
        if self.k < 1:
            problems.append(f"k={self.k} (must be >= 1)")
        if self.min_k < 0:
            problems.append(f"min_k={self.min_k} (must be >= 0)")
        if self.min_support < 0:
            problems.append(f"min_support={self.min_support} (must be >= 0)")
        if self.min_similarity is not None and not math.isfinite(self.min_similarity):
            problems.append(f"min_similarity={self.min_similarity} (must be finite or None)")
        if not (math.isfinite(self.shrinkage) and self.shrinkage >= 0):
            problems.append(f"shrinkage={self.shrinkage} (must be >= 0)")
        low, high = self.rating_scale
        if not (-VALUE_LIMIT <= low < high <= VALUE_LIMIT):
            problems.append(
                f"rating_scale={self.rating_scale} (need low < high, within ±{VALUE_LIMIT:g})"
            )
        weights = self.implicit_weights
        if any(not math.isfinite(w) or w <= 0 for w in weights.values()):
            problems.append(f"implicit_weights={dict(weights)} (must be finite and > 0)")
        cap = self.implicit_cap
        if cap is not None and not (math.isfinite(cap) and cap > 0):
            problems.append(f"implicit_cap={cap} (must be > 0 or None)")
        if self.pair_rows not in ("all", "owned"):
            problems.append(f"pair_rows={self.pair_rows!r} ('all' or 'owned')")
        elif self.pair_rows == "owned" and not self.pair_sums:
            problems.append("pair_rows='owned' with pair_sums=False (owned rows are pair sums)")
        if self.predictor not in PREDICTORS:
            problems.append(f"predictor={self.predictor!r} (one of {PREDICTORS})")
        # (implicit feedback does not use them, but they must be valid: they are saved)
        for name in ("baseline_reg_items", "baseline_reg_users", "damping"):
            value = getattr(self, name)
            number = _number(value)
            if number is None or not (math.isfinite(number) and number >= 0):
                problems.append(f"{name}={value!r} (must be a finite number >= 0)")
        residual = self.item_residual
        if isinstance(residual, bool) or not isinstance(residual, Integral) or residual < 0:
            problems.append(f"item_residual={residual!r} (an int >= 0: item neighbours, 0 off)")
        elif residual and (self.predictor != "knn_baseline" or self.implicit):
            problems.append(
                f"item_residual={residual} with predictor={self.predictor!r}, "
                f"feedback={self.feedback!r} (only knn_baseline with explicit feedback has it)"
            )
        number = _number(self.item_shrinkage)
        if number is None or not (math.isfinite(number) and number >= 0):
            problems.append(
                f"item_shrinkage={self.item_shrinkage!r} (must be a finite number >= 0)"
            )
        return problems

    # ------------------------------------------------------------------ small rules
    @property
    def implicit(self) -> bool:
        return self.feedback == "implicit"

    def clip(self, value: float) -> float:
        """A prediction clipped to the rating scale (implicit scores are not clipped)."""
        if self.implicit:
            return value
        low, high = self.rating_scale
        return min(max(value, low), high)

    def usable(self, w: FloatArray) -> BoolArray:
        """Usable neighbours: w ≠ 0 and, unless min_similarity is None, w > min_similarity."""
        if self.min_similarity is not None and self.min_similarity >= 0:
            over: BoolArray = w > self.min_similarity  # w > 0 here
            return over
        usable: BoolArray = w != 0
        if self.min_similarity is not None:
            usable &= w > self.min_similarity
        return usable

    @property
    def lists_follow_item_counts(self) -> bool:
        """Whether a list depends on the rater count of its candidate items beyond the data of
        the user and their co-raters (``vote`` with popularity damping d ≠ 0, ``item``)."""
        mode = self.ranking.mode
        return mode == "item" or (mode == "vote" and self.ranking.damping != 0)

    @property
    def lists_rise_with_item_counts(self) -> bool:
        """Whether a new rater of an item can raise its score (``vote`` with d < 0, which favours
        popular items), and so bring it into the list of any co-rater of its raters."""
        return self.ranking.mode == "vote" and self.ranking.damping < 0
