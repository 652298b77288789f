"""UserKNN: exact incremental user-based kNN collaborative filtering.

The state (:mod:`stream_cf.engine.state`) keeps, per user, a running count and sum; per item its
raters and values in arrival order; per pair of users who share an item the additive sums
n, Σx, Σy, Σxy, Σx², Σy² over their co-rated items. Every event updates those sums exactly and
similarities (:mod:`stream_cf.engine.similarity`) are computed from them when read, so a
prediction after any sequence of events equals a from-scratch fit on the current ratings.

Predictions (explicit feedback), ``predictor="knn_baseline"`` (the default; the baseline's terms
and fallbacks: :mod:`stream_cf.engine.baseline`)::

    r̂_ui = b_ui + Σ_{v∈N(i;u)} w_uv·(r_vi − b_vi) / (Σ_{v∈N(i;u)} |w_uv| + damping),
    b_ui = μ + b_u + b_i

``predictor="knn_means"`` (Surprise's ``KNNWithMeans``)::

    r̂_ui = r̄_u + Σ_{v∈N(i;u)} (r_vi − r̄_v)·w_uv / Σ_{v∈N(i;u)} |w_uv|

clipped to ``rating_scale``; N(i;u) = the k raters of i most similar to u among the usable ones
(w > min_similarity, or w ≠ 0 when min_similarity is None), ties broken by the earlier rating of i.
knn_means: fewer than ``min_k`` usable neighbours give r̄_u; an unknown user gives the global mean
and an unknown item r̄_u, each with the reason recorded. Implicit feedback: weights accumulate per
(user, item), similarity is the cosine of the full weight vectors and the score is
Σ w_uv·r_vi / Σ |w_uv| over the same neighbourhood (fallbacks score 0).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any, BinaryIO, Literal

import numpy as np

from stream_cf.engine import knn, predict, similarity, validation
from stream_cf.engine.batch import apply_batch
from stream_cf.engine.persist import load_state, save_state
from stream_cf.engine.ranking import RankConfig, RankMode, default_vote_shape
from stream_cf.engine.results import BatchEffect, Explanation, Recommendations
from stream_cf.engine.state import EngineState
from stream_cf.engine.storage import BoolArray, FloatArray, IntArray
from stream_cf.events import Event, ForgetUserEvent, PurchaseEvent, RatingEvent, UnrateEvent
from stream_cf.exceptions import InvalidEvent, UnknownRating, UnknownUser

DEFAULT_IMPLICIT_WEIGHTS: dict[str, float] = {"purchase": 1.0, "rating": 1.0}
# shrinkage=None: 0 for knn_means (as Surprise's KNNWithMeans) and implicit feedback; the
# knn_baseline residual measured best with similarities shrunk by n / (n + 100)
# (BENCHMARKS.md, "Predictors")
DEFAULT_SHRINKAGE: dict[str, float] = {"knn_means": 0.0, "knn_baseline": 100.0}


def default_shrinkage(predictor: str, feedback: str) -> float:
    """The shrinkage ``shrinkage=None`` stands for."""
    return DEFAULT_SHRINKAGE.get(predictor, 0.0) if feedback == "explicit" else 0.0


class UserKNN:
    """User-based kNN over a stream of ratings or purchases, updated exactly per event."""

    def __init__(
        self,
        *,
        rank: RankMode = "vote",
        rank_half_life: float = 5.0,
        rank_neighbours: int = 80,
        rank_exponent: float | None = None,
        rank_damping: float | None = None,
        include_seen: bool = False,
        similarity: Literal["cosine", "msd", "pearson", "adjusted_cosine"] | None = None,
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
    ) -> None:
        weights = dict(DEFAULT_IMPLICIT_WEIGHTS)
        if implicit_weights is not None:
            weights.update({str(key): float(value) for key, value in implicit_weights.items()})
        low, high = (float(rating_scale[0]), float(rating_scale[1]))
        if similarity is None:  # cosine is the only similarity of implicit weights
            similarity = "cosine" if feedback == "implicit" else "pearson"
        shape = default_vote_shape(feedback)
        self.ranking = RankConfig(
            mode=rank,
            half_life=float(rank_half_life),
            neighbours=int(rank_neighbours),
            exponent=float(shape[0] if rank_exponent is None else rank_exponent),
            damping=float(shape[1] if rank_damping is None else rank_damping),
            include_seen=bool(include_seen),
        )
        if shrinkage is None:  # the predictor's own default (see DEFAULT_SHRINKAGE)
            shrinkage = default_shrinkage(predictor, feedback)
        validation.check_config(
            ranking=self.ranking,
            similarity_name=similarity,
            k=k,
            min_k=min_k,
            min_support=min_support,
            min_similarity=min_similarity,
            shrinkage=shrinkage,
            scale=(low, high),
            feedback=feedback,
            weights=weights,
            cap=implicit_cap,
            predictor=predictor,
            baseline_regs=(baseline_reg_items, baseline_reg_users),
            damping=damping,
        )
        self.similarity_name = similarity
        self.k = int(k)
        self.min_k = int(min_k)
        self.min_support = int(min_support)
        self.min_similarity = None if min_similarity is None else float(min_similarity)
        self.shrinkage = float(shrinkage)
        self.rating_scale = (low, high)
        self.feedback = feedback
        self.implicit_weights = weights
        self.implicit_cap = None if implicit_cap is None else float(implicit_cap)
        self.predictor = predictor
        self.baseline_reg_items = float(baseline_reg_items)
        self.baseline_reg_users = float(baseline_reg_users)
        self.damping = float(damping)
        self.state = EngineState()

    def config(self) -> dict[str, Any]:
        """The constructor keywords (``UserKNN(**model.config())`` builds an empty twin)."""
        return {
            "rank": self.ranking.mode,
            "rank_half_life": self.ranking.half_life,
            "rank_neighbours": self.ranking.neighbours,
            "rank_exponent": self.ranking.exponent,
            "rank_damping": self.ranking.damping,
            "include_seen": self.ranking.include_seen,
            "similarity": self.similarity_name,
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
        }

    @property
    def implicit(self) -> bool:
        return self.feedback == "implicit"

    # ------------------------------------------------------------------ validation
    def check_ids(self, user: object, item: object | None = None) -> None:
        """InvalidEvent (``empty_id`` / ``invalid_field``) unless the ids are non-empty strings."""
        validation.check_ids(user, item)

    def rating_value(self, value: float) -> float:
        """Check a rating (both modes): finite and on ``rating_scale``."""
        return validation.rating_value(value, self.rating_scale)

    def quantity_value(self, quantity: float) -> float:
        """Check a purchase quantity: finite and > 0."""
        return validation.quantity_value(quantity)

    def accumulate(self, old: float | None, amount: float) -> float:
        """Implicit weight after adding ``amount`` (quantity × type weight), capped;
        InvalidEvent ``value_too_large`` above :data:`~stream_cf.engine.validation.VALUE_LIMIT`."""
        return validation.accumulated(old, amount, self.implicit_cap)

    def implicit_amount(self, event: RatingEvent | PurchaseEvent) -> float:
        """What ``event`` adds to its (user, item) weight with implicit feedback: rating or
        quantity × its type's weight (InvalidEvent if the rating or quantity is refused)."""
        if isinstance(event, RatingEvent):
            return self.rating_value(event.rating) * self.implicit_weights["rating"]
        return self.quantity_value(event.quantity) * self.implicit_weights["purchase"]

    def current(self, user: str, item: str) -> float | None:
        st = self.state
        u = st.users.slot_of.get(user)
        i = st.items.slot_of.get(item)
        if u is None or i is None or not st.grid.mask[u, i]:
            return None
        return float(st.grid.values[u, i])

    # ------------------------------------------------------------------ events
    def rate(self, user: str, item: str, value: float) -> None:
        """A new or changed rating (implicit mode: adds value × the "rating" weight)."""
        self.check_ids(user, item)
        value = self.rating_value(value)
        if self.implicit:
            value = self.accumulate(
                self.current(user, item), value * self.implicit_weights["rating"]
            )
        self._set(user, item, value)

    def purchase(self, user: str, item: str, quantity: float = 1.0) -> None:
        """Implicit feedback: adds quantity × the "purchase" weight to the (user, item) weight.

        In explicit mode a purchase is refused (InvalidEvent ``unsupported_event``)."""
        self.check_ids(user, item)
        quantity = self.quantity_value(quantity)
        if not self.implicit:
            raise InvalidEvent("unsupported_event", "a purchase needs feedback='implicit'")
        value = self.accumulate(
            self.current(user, item), quantity * self.implicit_weights["purchase"]
        )
        self._set(user, item, value)

    def unrate(self, user: str, item: str) -> None:
        """Take back the rating (or accumulated purchases); UnknownRating if there is none."""
        self.check_ids(user, item)
        if self.current(user, item) is None:
            raise UnknownRating(f"user {user!r} has no rating of item {item!r}")
        self._set(user, item, None)

    def forget_user(self, user: str) -> None:
        """Erase every contribution of the user; the id vanishes from the state and from saved
        files. An unknown user is a documented no-op (the state, counter included, is unchanged).
        """
        self.check_ids(user)
        st = self.state
        u = st.users.slot_of.get(user)
        if u is None:
            return
        seq = st.seq
        for i in np.flatnonzero(st.grid.mask[u, : st.items.high]):
            item = st.items.id_of[int(i)]
            assert item is not None
            st.set_cell(user, item, None, seq)
        st.seq += 1

    def _set(self, user: str, item: str, value: float | None) -> None:
        st = self.state
        st.set_cell(user, item, value, st.seq)
        st.seq += 1

    def apply(self, event: Event) -> BatchEffect:
        """Apply one validated event; the effect says what it touched."""
        kind = validation.event_kind(event)
        user = event.user_id
        existed = user in self.state.users.slot_of
        if isinstance(event, ForgetUserEvent):
            items = frozenset(self.user_items(user)) if existed else frozenset()
            self.forget_user(user)
            gone = frozenset((user,)) if existed else frozenset()
            return BatchEffect(frozenset(), items, gone, 1)
        if isinstance(event, RatingEvent):
            self.rate(user, event.item_id, event.rating)
        elif isinstance(event, PurchaseEvent):
            self.purchase(user, event.item_id, event.quantity)
        elif isinstance(event, UnrateEvent):
            self.unrate(user, event.item_id)
        else:  # pragma: no cover - event_kind refused it
            raise InvalidEvent("unknown_type", f"unknown event type {kind!r}")
        alive = user in self.state.users.slot_of
        return BatchEffect(
            frozenset((user,)) if alive else frozenset(),
            frozenset((event.item_id,)),
            frozenset((user,)) if existed and not alive else frozenset(),
            1,
        )

    def apply_many(self, events: Iterable[Event]) -> BatchEffect:
        """Apply a micro-batch, vectorized: the same state as :meth:`apply` one by one, in order.

        A bad event raises its exception (InvalidEvent, UnknownRating) after the events before it
        have been applied, as they would be one by one; the bad event changes nothing.
        """
        return apply_batch(self, events)

    # ------------------------------------------------------------------ plain reads
    @property
    def n_users(self) -> int:
        return len(self.state.users)

    @property
    def n_items(self) -> int:
        st = self.state
        return int(np.count_nonzero(st.item_count[: st.items.high]))

    @property
    def n_ratings(self) -> int:
        return self.state.n_ratings

    def users(self) -> list[str]:
        """The users, in order of creation."""
        st = self.state
        slots = sorted(st.users.slot_of.values(), key=lambda s: (int(st.user_since[s]), s))
        return [str(st.users.id_of[s]) for s in slots]

    def items(self) -> list[str]:
        """The items with at least one rating, in order of first appearance."""
        st = self.state
        return [str(st.items.id_of[i]) for i in np.flatnonzero(st.item_count[: st.items.high])]

    def has_user(self, user: str) -> bool:
        return user in self.state.users.slot_of

    def has_item(self, item: str) -> bool:
        i = self.state.items.slot_of.get(item)
        return i is not None and bool(self.state.item_count[i] > 0)

    def user_items(self, user: str) -> dict[str, float]:
        """What the user rated (explicit) or the accumulated weights (implicit); {} if unknown."""
        st = self.state
        u = st.users.slot_of.get(user)
        if u is None:
            return {}
        cols = np.flatnonzero(st.grid.mask[u, : st.items.high])
        return {str(st.items.id_of[i]): float(st.grid.values[u, i]) for i in cols}

    def raters(self, item: str) -> list[str]:
        """The item's raters in arrival order (of each rating's latest change); [] if unknown."""
        st = self.state
        i = st.items.slot_of.get(item)
        if i is None:
            return []
        slots = st.raters_of(i)
        slots = slots[np.argsort(st.grid.seq[slots, i], kind="stable")]
        return [str(st.users.id_of[s]) for s in slots]

    def co_raters(self, users: Iterable[str]) -> set[str]:
        """The existing ``users`` and every user who shares an item with one of them."""
        st = self.state
        slots = sorted({st.users.slot_of[u] for u in users if u in st.users.slot_of})
        if not slots:
            return set()
        high = st.items.high
        mask = st.grid.mask[: st.users.high, :high]
        items = np.flatnonzero(mask[slots].any(axis=0))
        rows = np.flatnonzero(mask[:, items].any(axis=1))
        return {str(st.users.id_of[s]) for s in rows}

    @property
    def lists_follow_item_counts(self) -> bool:
        """Whether a list depends on the rater count of its candidate items, beyond the data of
        the user and their co-raters (``vote`` with popularity damping, ``item``): a count that
        grows can only lower that item's score, one that shrinks can raise it for any co-rater
        of the item's raters (see :mod:`stream_cf.engine.ranking`)."""
        mode = self.ranking.mode
        return mode == "item" or (mode == "vote" and self.ranking.damping > 0)

    def mean(self, user: str) -> float:
        """The user's running mean r̄_u = Σ r_u / n_u; UnknownUser if the user has no rating."""
        u = self.state.users.slot_of.get(user)
        if u is None:
            raise UnknownUser(f"unknown user {user!r}")
        return self.state.mean_of(u)

    @property
    def global_mean(self) -> float:
        """The mean of every rating (weight); the middle of the scale (0 implicit) when empty."""
        st = self.state
        if st.n_ratings == 0:
            return 0.0 if self.implicit else sum(self.rating_scale) / 2.0
        return st.total / st.n_ratings

    # ------------------------------------------------------------------ similarity
    def similarity_row(self, u: int) -> FloatArray:
        """w_uv for every user slot v (0 for v = u and for free slots)."""
        st = self.state
        high = st.users.high
        sums = st.pairs.sums
        row = sums[u, :high]
        col = sums[:high, u]
        n = row[:, 0]
        s = similarity.Sums(n, row[:, 1], col[:, 1], row[:, 2], col[:, 2], row[:, 3])
        if self.implicit:
            idx = np.arange(high)
            w = similarity.implicit_cosine(row[:, 3], float(sums[u, u, 2]), sums[idx, idx, 2])
        elif self.similarity_name == "adjusted_cosine":
            means = st.means()
            w = similarity.adjusted_cosine(s, float(means[u]), means)
        else:
            formula = {
                "cosine": similarity.cosine,
                "msd": similarity.msd,
                "pearson": similarity.pearson,
            }[self.similarity_name]
            w = formula(s)
        w = similarity.finish(w, n, self.min_support, self.shrinkage)
        w[u] = 0.0
        return w

    def similarity(self, u: str, v: str) -> float:
        """w_uv from the pair sums (see :mod:`stream_cf.engine.similarity`).

        1.0 for u == v (a known user); 0.0 when either user does not exist (no co-rated items).
        """
        st = self.state
        a = st.users.slot_of.get(u)
        b = st.users.slot_of.get(v)
        if a is None or b is None:
            return 0.0
        if a == b:
            return 1.0
        return float(self.similarity_row(a)[b])

    # ------------------------------------------------------------------ predictions
    def usable(self, w: FloatArray) -> BoolArray:
        """Usable neighbours: w ≠ 0 and, unless min_similarity is None, w > min_similarity."""
        usable: BoolArray = w != 0
        if self.min_similarity is not None:
            usable &= w > self.min_similarity
        return usable

    def neighbourhood(self, u: int) -> knn.Neighbourhood:
        w = self.similarity_row(u)
        return knn.neighbourhood(w, self.usable(w))

    def scores(
        self, u: int, cols: IntArray | int
    ) -> tuple[knn.Neighbourhood, knn.Selection, knn.Scores]:
        """The neighbourhood of u, N(i;u) for the columns and the estimator's sums."""
        st = self.state
        nb = self.neighbourhood(u)
        selected = knn.select(nb, st.grid.mask, st.grid.seq, cols, self.k)
        means = None if self.implicit else st.means()
        sc = knn.score(nb, selected, values=st.grid.values, cols=cols, means=means)
        return nb, selected, sc

    def clip(self, value: float) -> float:
        if self.implicit:
            return value
        low, high = self.rating_scale
        return min(max(value, low), high)

    def predict(self, user: str, item: str) -> float:
        """r̂_ui (explicit, clipped) or the implicit score; fallbacks as in :meth:`explain`."""
        return predict.predict(self, user, item, explain=False).estimate

    def explain(self, user: str, item: str) -> Explanation:
        """The prediction with its neighbours, weights and the fallback reason if any
        (``knn_baseline``: and the baseline terms μ, b_u, b_i)."""
        return predict.predict(self, user, item, explain=True)

    def predict_many(self, user: str, items: Iterable[str]) -> list[float]:
        """:meth:`predict` of each item, computed together (one neighbourhood, one selection);
        equal to predict item by item (the same sums in the same order)."""
        return predict.predict_many(self, user, items)

    # ------------------------------------------------------------------ recommendations
    def recommendations(self, user: str, n: int = 10) -> Recommendations:
        """The n best items the user has not rated/bought, best first (ties by first
        appearance); a popularity list flagged as fallback for an unknown or cold user."""
        return predict.recommendations(self, user, n)

    def recommend(self, user: str, n: int = 10) -> list[tuple[str, float]]:
        """``recommendations(user, n).items``."""
        return self.recommendations(user, n).items

    def recommend_many(self, users: Iterable[str], n: int = 10) -> dict[str, Recommendations]:
        """Recommendations for many users (the processor's batch refresh), computed together:
        the same lists as :meth:`recommendations` one by one, at a fraction of the cost per user."""
        return predict.recommend_many(self, users, n)

    # ------------------------------------------------------------------ persistence
    def save(self, target: str | os.PathLike[str] | BinaryIO) -> None:
        """Save the whole state (see :mod:`stream_cf.engine.persist`)."""
        save_state(self, target)

    @classmethod
    def load(cls, source: str | os.PathLike[str] | BinaryIO) -> UserKNN:
        """Load a saved state; StateFormatError if the file is not a readable state."""
        return load_state(cls, source)
