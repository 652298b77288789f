"""UserKNN: exact incremental user-based kNN collaborative filtering.

The state (:mod:`stream_cf.engine.state`) keeps the ratings per user and per item in compact
arrays (memory in proportion to the ratings), per user a running count and sums, and, when the
configuration reads similarities, per pair of users the additive sums n, Σx, Σy, Σxy, Σx², Σy²
over their co-rated items (one 24-byte cell per unordered pair: 12 bytes per ordered pair).
Every event updates them exactly and similarities (:mod:`stream_cf.engine.similarity`) are
computed from them when read, so a prediction after any sequence of events equals a
from-scratch fit on the current ratings.

This class is the thin public face: the settings live in a frozen
:class:`~stream_cf.engine.config.EngineConfig`, the data in an
:class:`~stream_cf.engine.state.EngineState`, and every computation is a function over the two
(:mod:`~stream_cf.engine.batch`, :mod:`~stream_cf.engine.predict`,
:mod:`~stream_cf.engine.ranking`, :mod:`~stream_cf.engine.persist`).

Predictions (explicit feedback), ``predictor="knn_baseline"`` (the default; the baseline's terms
and fallbacks: :mod:`stream_cf.engine.baseline`)::

    r̂_ui = b_ui + Σ_{v∈N(i;u)} w_uv·(r_vi − b_vi) / (Σ_{v∈N(i;u)} |w_uv| + damping),
    b_ui = μ + b_u + b_i

and with ``item_residual`` = K > 0 an item-based residual pooled with it, over M(u;i) the K items
of u most similar to i (:mod:`stream_cf.engine.item_residual`)::

    r̂_ui = b_ui + (Σ_{v∈N(i;u)} w_uv·(r_vi − b_vi) + Σ_{j∈M(u;i)} s_ij·(r_uj − b_uj))
                 / (Σ_{v∈N(i;u)} |w_uv| + Σ_{j∈M(u;i)} s_ij + damping)

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

from stream_cf.engine import neighbours, ownership, predict, validation
from stream_cf.engine.batch import apply_batch
from stream_cf.engine.config import (
    EngineConfig,
    NeighbourRecency,
    RankConfig,
    RankMode,
    SimilarityName,
)
from stream_cf.engine.persist import load_state, save_state
from stream_cf.engine.results import BatchEffect, Explanation, Recommendations
from stream_cf.events import Event, ForgetUserEvent, PurchaseEvent, RatingEvent, UnrateEvent
from stream_cf.exceptions import InvalidEvent, UnknownRating, UnknownUser


class UserKNN:
    """User-based kNN over a stream of ratings or purchases, updated exactly per event.

    ``pair_sums`` (None: kept for explicit feedback or ``rank="rating"``): whether the pair sums
    are kept, so that a user's similarities are read in O(users); without them they are computed
    from the ratings when read (the same values) and the memory is the ratings alone.

    ``pair_rows="owned"`` (scale-out: several instances share the input, each owns some users):
    pair sums only for the users this instance owns (:meth:`own`, :meth:`disown`), with the
    channels the similarity reads (:mod:`~stream_cf.engine.owned`); every other user's
    similarities are computed from the ratings, the same values. A user is owned only once told
    (a user first seen later is not). Default ``"all"``: every pair, every user owned.
    """

    def __init__(
        self,
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
    ) -> None:
        self.settings = EngineConfig.create(
            rank=rank,
            rank_half_life=rank_half_life,
            rank_neighbours=rank_neighbours,
            rank_exponent=rank_exponent,
            rank_damping=rank_damping,
            include_seen=include_seen,
            rank_neighbour_recency=rank_neighbour_recency,
            rank_neighbour_half_life=rank_neighbour_half_life,
            rank_rarity=rank_rarity,
            similarity=similarity,
            k=k,
            min_k=min_k,
            min_support=min_support,
            min_similarity=min_similarity,
            shrinkage=shrinkage,
            rating_scale=rating_scale,
            feedback=feedback,
            implicit_weights=implicit_weights,
            implicit_cap=implicit_cap,
            predictor=predictor,
            baseline_reg_items=baseline_reg_items,
            baseline_reg_users=baseline_reg_users,
            damping=damping,
            item_residual=item_residual,
            item_shrinkage=item_shrinkage,
            pair_sums=pair_sums,
            pair_rows=pair_rows,
        )
        self.state = ownership.empty_state(self.settings)

    def config(self) -> dict[str, Any]:
        """The constructor keywords (``UserKNN(**model.config())`` builds an empty twin)."""
        return self.settings.keywords()

    # the settings most callers read, by name
    @property
    def ranking(self) -> RankConfig:
        return self.settings.ranking

    @property
    def feedback(self) -> str:
        return self.settings.feedback

    @property
    def implicit(self) -> bool:
        return self.settings.implicit

    @property
    def predictor(self) -> str:
        return self.settings.predictor

    @property
    def k(self) -> int:
        return self.settings.k

    @property
    def damping(self) -> float:
        return self.settings.damping

    @property
    def rating_scale(self) -> tuple[float, float]:
        return self.settings.rating_scale

    @property
    def lists_follow_item_counts(self) -> bool:
        """Whether a list depends on the rater count of its candidate items, beyond the data of
        the user and their co-raters (``vote`` with popularity damping, ``item``): a count that
        grows can only lower that item's score, one that shrinks can raise it for any co-rater
        of the item's raters (see :mod:`stream_cf.engine.ranking`)."""
        return self.settings.lists_follow_item_counts

    @property
    def predictions_follow_every_event(self) -> bool:
        """Whether a predicted rating may change with any event, not only with the data of the
        user and their co-raters: under ``knn_baseline`` (explicit feedback) every prediction
        holds μ and the items' b_i, which any rating anywhere moves."""
        return not self.implicit and self.predictor == "knn_baseline"

    @property
    def lists_rise_with_item_counts(self) -> bool:
        """Whether a new rater of an item can raise its score (``rank_damping`` < 0): then every
        co-rater of the item's raters may gain it, not only the users whose list shows it."""
        return self.settings.lists_rise_with_item_counts

    # ------------------------------------------------------------------ validation
    def accumulate(self, old: float | None, amount: float) -> float:
        """Implicit weight after adding ``amount`` (quantity × type weight), capped;
        InvalidEvent ``value_too_large`` above :data:`~stream_cf.engine.validation.VALUE_LIMIT`."""
        return validation.accumulated(old, amount, self.settings.implicit_cap)

    def implicit_amount(self, event: RatingEvent | PurchaseEvent) -> float:
        """What ``event`` adds to its (user, item) weight with implicit feedback: rating or
        quantity × its type's weight (InvalidEvent if the rating or quantity is refused)."""
        weights = self.settings.implicit_weights
        if isinstance(event, RatingEvent):
            rating = validation.rating_value(event.rating, self.settings.rating_scale)
            return rating * weights["rating"]
        return validation.quantity_value(event.quantity) * weights["purchase"]

    def current(self, user: str, item: str) -> float | None:
        st = self.state
        u = st.users.slot_of.get(user)
        i = st.items.slot_of.get(item)
        if u is None or i is None:
            return None
        return st.ratings.get(u, i)

    # ------------------------------------------------------------------ events
    def rate(self, user: str, item: str, value: float) -> None:
        """A new or changed rating (implicit mode: adds value × the "rating" weight)."""
        validation.check_ids(user, item)
        value = validation.rating_value(value, self.settings.rating_scale)
        self._apply(RatingEvent.model_construct(user_id=user, item_id=item, rating=value))

    def purchase(self, user: str, item: str, quantity: float = 1.0) -> None:
        """Implicit feedback: adds quantity × the "purchase" weight to the (user, item) weight.

        In explicit mode a purchase is refused (InvalidEvent ``unsupported_event``)."""
        validation.check_ids(user, item)
        quantity = validation.quantity_value(quantity)
        if not self.implicit:
            raise InvalidEvent("unsupported_event", "a purchase needs feedback='implicit'")
        self._apply(PurchaseEvent.model_construct(user_id=user, item_id=item, quantity=quantity))

    def unrate(self, user: str, item: str) -> None:
        """Take back the rating (or accumulated purchases); UnknownRating if there is none."""
        validation.check_ids(user, item)
        if self.current(user, item) is None:
            raise UnknownRating(f"user {user!r} has no rating of item {item!r}")
        self._apply(UnrateEvent.model_construct(user_id=user, item_id=item))

    def forget_user(self, user: str) -> None:
        """Erase every contribution of the user; the id vanishes from the state and from saved
        files. An unknown user is a documented no-op (the state, counter included, is unchanged).
        """
        validation.check_ids(user)
        self._apply(ForgetUserEvent.model_construct(user_id=user))

    def apply(self, event: Event) -> BatchEffect:
        """Apply one validated event; the effect says what it touched."""
        validation.event_kind(event)
        return self._apply(event)

    def _apply(self, event: Event) -> BatchEffect:
        return apply_batch(self.state, self.settings, [event], note=False)

    def apply_many(self, events: Iterable[Event]) -> BatchEffect:
        """Apply a micro-batch, vectorized: the same state as :meth:`apply` one by one, in order.

        A bad event raises its exception (InvalidEvent, UnknownRating) after the events before it
        have been applied, as they would be one by one; the bad event changes nothing.
        """
        return apply_batch(self.state, self.settings, events)

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
        items, values, _seqs = st.ratings.user_row(u)
        return {
            str(st.items.id_of[i]): v for i, v in zip(items.tolist(), values.tolist(), strict=True)
        }

    def raters(self, item: str) -> list[str]:
        """The item's raters in arrival order (of each rating's latest change); [] if unknown."""
        st = self.state
        i = st.items.slot_of.get(item)
        if i is None:
            return []
        slots, _values, seqs = st.ratings.item_row(i)
        slots = slots[np.argsort(seqs, kind="stable")]
        return [str(st.users.id_of[s]) for s in slots.tolist()]

    def co_raters(self, users: Iterable[str]) -> set[str]:
        """The existing ``users`` and every user who shares an item with one of them.

        Their items and then their raters are marked in boolean arrays over the item and user
        slots (no sort: the processor asks this for every batch's actors)."""
        st = self.state
        slot_of = st.users.slot_of
        slots = np.array([slot_of[u] for u in set(users) if u in slot_of], dtype=np.int64)
        if slots.size == 0:
            return set()
        ratings = st.ratings
        _where, cells = ratings.by_user.rows(slots)
        has = np.zeros(st.items.high, dtype=np.bool_)
        has[ratings.cell_item[cells]] = True
        _where, raters = ratings.item_users.rows(np.flatnonzero(has))
        shares = np.zeros(st.users.high, dtype=np.bool_)
        shares[raters] = True
        id_of = st.users.id_of
        return {str(id_of[s]) for s in np.flatnonzero(shares).tolist()}

    def mean(self, user: str) -> float:
        """The user's running mean r̄_u = Σ r_u / n_u; UnknownUser if the user has no rating."""
        u = self.state.users.slot_of.get(user)
        if u is None:
            raise UnknownUser(f"unknown user {user!r}")
        return self.state.mean_of(u)

    @property
    def global_mean(self) -> float:
        """The mean of every rating (weight); the middle of the scale (0 implicit) when empty."""
        return predict.global_mean(self.state, self.settings)

    def footprint(self) -> dict[str, int]:
        """Bytes held by the state: ``ratings_bytes`` (cells, indexes, statistics), ``pair_bytes``
        (the pair sums' tiles; 0 without pair sums), ``pairs`` (ordered pairs of user slots in
        use when pair sums are kept; owned rows: owned users x user slots) and ``total_bytes``."""
        sizes = self.state.nbytes
        high = self.state.users.high
        store = ownership.owned_store(self.state)
        pairs = high * high if self.state.pairs is not None else 0
        if store is not None:
            pairs = int(store.owned().size) * high
        return {**sizes, "pairs": pairs, "total_bytes": sum(sizes.values())}

    # ------------------------------------------------------------------ ownership
    def own(self, users: Iterable[str]) -> int:
        """Own these users: their pair-sum rows are built from the ratings (exact). Unknown ids
        and users already owned are skipped; returns how many were gained (0 with
        ``pair_rows="all"``, where every user is owned)."""
        return ownership.own(self.state, self._slots(users))

    def disown(self, users: Iterable[str]) -> int:
        """Drop these users' rows (their lists are then computed from the ratings); returns how
        many were dropped (0 with ``pair_rows="all"``)."""
        return ownership.disown(self.state, self._slots(users))

    def owns(self, user: str) -> bool:
        """Whether the user's pair-sum rows are kept here (every known user with
        ``pair_rows="all"`` and pair sums)."""
        st = self.state
        slot = st.users.slot_of.get(user)
        return slot is not None and st.pairs is not None and st.pairs_of(slot) is not None

    def owned_users(self) -> list[str]:
        """The users :meth:`owns`, in order of creation."""
        return [user for user in self.users() if self.owns(user)]

    def _slots(self, users: Iterable[str]) -> np.ndarray[Any, np.dtype[np.int64]]:
        slot_of = self.state.users.slot_of
        if isinstance(users, str):
            users = [users]
        return np.array([slot_of[u] for u in users if u in slot_of], dtype=np.int64)

    # ------------------------------------------------------------------ similarity
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
        return float(neighbours.similarity_row(st, self.settings, a)[b])

    # ------------------------------------------------------------------ predictions
    def predict(self, user: str, item: str) -> float:
        """r̂_ui (explicit, clipped) or the implicit score; fallbacks as in :meth:`explain`."""
        return predict.predict(self.state, self.settings, user, item, explain=False).estimate

    def explain(self, user: str, item: str) -> Explanation:
        """The prediction with its neighbours, weights and the fallback reason if any
        (``knn_baseline``: and the baseline terms μ, b_u, b_i)."""
        return predict.predict(self.state, self.settings, user, item, explain=True)

    def predict_many(self, user: str, items: Iterable[str]) -> list[float]:
        """:meth:`predict` of each item, computed together (one neighbourhood, one selection);
        equal to predict item by item (the same sums in the same order)."""
        return predict.predict_many(self.state, self.settings, user, items)

    # ------------------------------------------------------------------ recommendations
    def recommendations(self, user: str, n: int = 10) -> Recommendations:
        """The n best items the user has not rated/bought, best first (ties by first
        appearance); a popularity list flagged as fallback for an unknown or cold user."""
        return predict.recommendations(self.state, self.settings, user, n)

    def recommend(self, user: str, n: int = 10) -> list[tuple[str, float]]:
        """``recommendations(user, n).items``."""
        return self.recommendations(user, n).items

    def recommend_many(self, users: Iterable[str], n: int = 10) -> dict[str, Recommendations]:
        """Recommendations for many users (the processor's batch refresh): the same lists as
        :meth:`recommendations` one by one."""
        return {user: self.recommendations(user, n) for user in dict.fromkeys(users)}

    # ------------------------------------------------------------------ persistence
    def save(self, target: str | os.PathLike[str] | BinaryIO) -> None:
        """Save the whole state (see :mod:`stream_cf.engine.persist`)."""
        save_state(self.state, self.settings, target)

    @classmethod
    def load(cls, source: str | os.PathLike[str] | BinaryIO) -> UserKNN:
        """Load a saved state; StateFormatError if the file is not a readable state."""
        settings, state = load_state(source)
        model = cls(**settings.keywords())
        model.state = state
        return model
