"""UserKNN: exact incremental user-based kNN collaborative filtering.

The state (:mod:`stream_cf.engine.state`) keeps, per user, a running count and sum; per item its
raters and values in arrival order; per pair of users who share an item the additive sums
n, Σx, Σy, Σxy, Σx², Σy² over their co-rated items. Every event updates those sums exactly and
similarities (:mod:`stream_cf.engine.similarity`) are computed from them when read, so a
prediction after any sequence of events equals a from-scratch fit on the current ratings.

Predictions (explicit feedback, Surprise's ``KNNWithMeans``)::

    r̂_ui = r̄_u + Σ_{v∈N(i;u)} (r_vi − r̄_v)·w_uv / Σ_{v∈N(i;u)} |w_uv|

clipped to ``rating_scale``; N(i;u) = the k raters of i most similar to u among the usable ones
(w > min_similarity, or w ≠ 0 when min_similarity is None), ties broken by the earlier rating of i.
Fewer than ``min_k`` usable neighbours give r̄_u; an unknown user gives the global mean and an
unknown item r̄_u, each with the reason recorded. Implicit feedback: weights accumulate per
(user, item), similarity is the cosine of the full weight vectors and the score is
Σ w_uv·r_vi / Σ |w_uv| over the same neighbourhood (fallbacks score 0).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from typing import Any, BinaryIO, Literal

import numpy as np

from stream_cf.engine import knn, similarity
from stream_cf.engine.batch import apply_batch
from stream_cf.engine.persist import load_state, save_state
from stream_cf.engine.results import BatchEffect, Explanation, Neighbour, Recommendations
from stream_cf.engine.state import EngineState
from stream_cf.engine.storage import BoolArray, FloatArray, IntArray
from stream_cf.events import Event, ForgetUserEvent, PurchaseEvent, RatingEvent, UnrateEvent
from stream_cf.exceptions import ConfigError, InvalidEvent, UnknownRating, UnknownUser

DEFAULT_IMPLICIT_WEIGHTS: dict[str, float] = {"purchase": 1.0, "rating": 1.0}


class UserKNN:
    """User-based kNN over a stream of ratings or purchases, updated exactly per event."""

    def __init__(
        self,
        *,
        similarity: Literal["cosine", "msd", "pearson", "adjusted_cosine"] = "pearson",
        k: int = 40,
        min_k: int = 1,
        min_support: int = 1,
        min_similarity: float | None = 0.0,
        shrinkage: float = 0.0,
        rating_scale: tuple[float, float] = (1.0, 5.0),
        feedback: Literal["explicit", "implicit"] = "explicit",
        implicit_weights: Mapping[str, float] | None = None,
        implicit_cap: float | None = None,
    ) -> None:
        weights = dict(DEFAULT_IMPLICIT_WEIGHTS)
        if implicit_weights is not None:
            weights.update({str(key): float(value) for key, value in implicit_weights.items()})
        low, high = (float(rating_scale[0]), float(rating_scale[1]))
        _check_config(
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
        self.state = EngineState()

    def config(self) -> dict[str, Any]:
        """The constructor keywords (``UserKNN(**model.config())`` builds an empty twin)."""
        return {
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
        }

    @property
    def implicit(self) -> bool:
        return self.feedback == "implicit"

    # ------------------------------------------------------------------ validation
    def check_ids(self, user: object, item: object | None = None) -> None:
        for name, value in (("user_id", user), ("item_id", item)):
            if name == "item_id" and item is None:
                continue
            if not isinstance(value, str):
                raise InvalidEvent("invalid_field", f"{name} must be a string, not {value!r}")
            if value == "":
                raise InvalidEvent("empty_id", f"{name} is empty")

    def rating_value(self, value: float) -> float:
        """Check a rating (both modes): finite and on ``rating_scale``."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidEvent("invalid_field", f"rating must be a number, not {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise InvalidEvent("not_finite", f"rating {value} is not a finite number")
        low, high = self.rating_scale
        if not low <= value <= high:
            raise InvalidEvent(
                "rating_out_of_scale", f"rating {value} is outside the scale [{low}, {high}]"
            )
        return value

    def quantity_value(self, quantity: float) -> float:
        if isinstance(quantity, bool) or not isinstance(quantity, int | float):
            raise InvalidEvent("invalid_field", f"quantity must be a number, not {quantity!r}")
        quantity = float(quantity)
        if not math.isfinite(quantity):
            raise InvalidEvent("not_finite", f"quantity {quantity} is not a finite number")
        if quantity <= 0:
            raise InvalidEvent("invalid_field", f"quantity must be > 0, got {quantity}")
        return quantity

    def accumulate(self, old: float | None, amount: float) -> float:
        """Implicit weight after adding ``amount`` (quantity × type weight), capped."""
        value = (0.0 if old is None else old) + amount
        if self.implicit_cap is not None:
            value = min(value, self.implicit_cap)
        return value

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
        kind = event_kind(event)
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

    def neighbours_of(self, u: int, i: int) -> tuple[IntArray, FloatArray]:
        """N(i;u) for one item: the selected neighbour slots and similarities, in the order
        :meth:`scores` sums them (similarity descending, then slot), so that predict and
        recommend give bit-identical values."""
        st = self.state
        raters = st.raters_of(i)
        raters = raters[raters != u]
        w = self.similarity_row(u)[raters]
        keep = self.usable(w)
        raters = raters[keep]
        w = w[keep]
        if raters.size > self.k:
            first = np.lexsort((st.grid.seq[raters, i], -w))[: self.k]
            raters = raters[first]
            w = w[first]
        order = np.lexsort((raters, -w))
        return raters[order], w[order]

    def estimate(self, u: int, i: int) -> tuple[float, float, int, IntArray, FloatArray]:
        """(Σ w·dev, Σ |w|, count, neighbour slots, similarities) for one item, summed in the
        same order as :func:`knn.score` (sequential accumulation, as np.bincount)."""
        slots, w = self.neighbours_of(u, i)
        r = self.state.grid.values[slots, i]
        if self.implicit:
            dev = r
        else:
            diag = self.state.pairs.sums[slots, slots]
            dev = r - diag[:, 1] / diag[:, 0]
        zeros = np.zeros(slots.size, dtype=np.int64)
        num = float(np.bincount(zeros, weights=w * dev, minlength=1)[0])
        den = float(np.bincount(zeros, weights=np.abs(w), minlength=1)[0])
        return num, den, int(slots.size), slots, w

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
        return self._predict(user, item, explain=False).estimate

    def explain(self, user: str, item: str) -> Explanation:
        """The prediction with its neighbours, weights and the fallback reason if any."""
        return self._predict(user, item, explain=True)

    def _predict(self, user: str, item: str, *, explain: bool) -> Explanation:
        st = self.state
        u = st.users.slot_of.get(user)
        if u is None:
            value = 0.0 if self.implicit else self.clip(self.global_mean)
            return Explanation(user, item, value, self.global_mean, [], "unknown user")
        mu = st.mean_of(u)
        fallback_value = 0.0 if self.implicit else self.clip(mu)
        i = st.items.slot_of.get(item)
        if i is None or st.item_count[i] == 0:
            return Explanation(user, item, fallback_value, mu, [], "unknown item")
        num, den, count, slots, weights = self.estimate(u, i)
        neighbours = []
        if explain:
            sums = st.pairs.sums
            for slot, w in zip(slots.tolist(), weights.tolist(), strict=True):
                neighbours.append(
                    Neighbour(
                        user=str(st.users.id_of[slot]),
                        similarity=w,
                        rating=float(st.grid.values[slot, i]),
                        neighbour_mean=(
                            0.0
                            if self.implicit
                            else float(sums[slot, slot, 1] / sums[slot, slot, 0])
                        ),
                        weight=w / den if den else 0.0,
                    )
                )
        if count == 0 or count < self.min_k:
            return Explanation(user, item, fallback_value, mu, neighbours, "min_k not reached")
        est = num / den if self.implicit else self.clip(mu + num / den)
        return Explanation(user, item, est, mu, neighbours, None)

    # ------------------------------------------------------------------ recommendations
    def popularity(self, exclude: int | None, n: int) -> list[tuple[str, float]]:
        """Items by number of raters (ties by first appearance), without ``exclude``'s items."""
        st = self.state
        high = st.items.high
        counts = st.item_count[:high].astype(np.float64)
        ok = counts > 0
        if exclude is not None:
            ok &= ~st.grid.mask[exclude, :high]
        pos = np.flatnonzero(ok)
        best = knn.top_n(counts[pos], pos, n)
        return [(str(st.items.id_of[pos[b]]), float(counts[pos[b]])) for b in best]

    def recommendations(self, user: str, n: int = 10) -> Recommendations:
        """The n best items the user has not rated/bought, best first (ties by first
        appearance); a popularity list flagged as fallback for an unknown or cold user."""
        st = self.state
        u = st.users.slot_of.get(user)
        if u is None:
            return Recommendations(self.popularity(None, n), "unknown user: popularity")
        high = st.items.high
        _nb, _selected, sc = self.scores(u, high)
        ok = (sc.count >= max(1, self.min_k)) & ~st.grid.mask[u, :high]
        pos = np.flatnonzero(ok)
        if pos.size == 0:
            return Recommendations(self.popularity(u, n), "no neighbours: popularity")
        with np.errstate(divide="ignore", invalid="ignore"):
            values = sc.num[pos] / sc.den[pos]
        if not self.implicit:
            low, hi = self.rating_scale
            values = np.clip(st.mean_of(u) + values, low, hi)
        best = knn.top_n(values, pos, n)
        return Recommendations(
            [(str(st.items.id_of[pos[b]]), float(values[b])) for b in best], None
        )

    def recommend(self, user: str, n: int = 10) -> list[tuple[str, float]]:
        """``recommendations(user, n).items``."""
        return self.recommendations(user, n).items

    def recommend_many(self, users: Iterable[str], n: int = 10) -> dict[str, Recommendations]:
        """Recommendations for many users (the processor's batch refresh)."""
        return {user: self.recommendations(user, n) for user in users}

    # ------------------------------------------------------------------ persistence
    def save(self, target: str | os.PathLike[str] | BinaryIO) -> None:
        """Save the whole state (see :mod:`stream_cf.engine.persist`)."""
        save_state(self, target)

    @classmethod
    def load(cls, source: str | os.PathLike[str] | BinaryIO) -> UserKNN:
        """Load a saved state; StateFormatError if the file is not a readable state."""
        return load_state(cls, source)


def _check_config(
    *,
    similarity_name: str,
    k: int,
    min_k: int,
    min_support: int,
    min_similarity: float | None,
    shrinkage: float,
    scale: tuple[float, float],
    feedback: str,
    weights: dict[str, float],
    cap: float | None,
) -> None:
    problems = []
    if similarity_name not in similarity.SIMILARITIES:
        problems.append(f"similarity={similarity_name!r} (one of {similarity.SIMILARITIES})")
    if feedback not in ("explicit", "implicit"):
        problems.append(f"feedback={feedback!r} (explicit or implicit)")
    if k < 1:
        problems.append(f"k={k} (must be >= 1)")
    if min_k < 0:
        problems.append(f"min_k={min_k} (must be >= 0)")
    if min_support < 0:
        problems.append(f"min_support={min_support} (must be >= 0)")
    if min_similarity is not None and not math.isfinite(min_similarity):
        problems.append(f"min_similarity={min_similarity} (must be finite or None)")
    if not (math.isfinite(shrinkage) and shrinkage >= 0):
        problems.append(f"shrinkage={shrinkage} (must be >= 0)")
    if not (math.isfinite(scale[0]) and math.isfinite(scale[1]) and scale[0] < scale[1]):
        problems.append(f"rating_scale={scale} (need finite low < high)")
    if any(not math.isfinite(w) or w <= 0 for w in weights.values()):
        problems.append(f"implicit_weights={weights} (must be finite and > 0)")
    if cap is not None and not (math.isfinite(cap) and cap > 0):
        problems.append(f"implicit_cap={cap} (must be > 0 or None)")
    if problems:
        raise ConfigError("invalid UserKNN settings: " + "; ".join(problems))


def event_kind(event: Event) -> str:
    if isinstance(event, RatingEvent | PurchaseEvent | UnrateEvent | ForgetUserEvent):
        return event.type
    raise InvalidEvent("unknown_type", f"not an event: {type(event).__name__}")
