"""The baselines the model is set beside, learnt from the same stream in the same protocol.

Every baseline is a running statistic updated per event and asked *before* it learns the event,
like the model. They follow the same events as the engine: a changed rating is ``revert(old)`` then
``update(new)``, an ``unrate`` reverts, a ``forget_user`` reverts all of the user's ratings.

Rating predictions (explicit ratings only; purchases do not move the means):

* global mean: ``r̂_ui = μ``, the mean of every current rating; with no rating yet, the midpoint
  of the rating scale.
* user mean: ``r̂_ui = r̄_u``, the mean of the user's current ratings; an unknown user gets ``μ``.
* item mean: ``r̂_ui = r̄_i``, the mean of the item's current ratings; an unknown item gets ``μ``.

Ranking (ratings and purchases alike):

* popularity: items by the number of distinct users who currently have them (rated or bought),
  most first, ties by the item's first appearance in the stream; what the user already has is
  excluded, as the engine's ``recommend`` does.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from stream_cf.events import Event, ForgetUserEvent, PurchaseEvent, RatingEvent, UnrateEvent

MEAN_BASELINES = ("global_mean", "user_mean", "item_mean")
RANKING_BASELINES = ("popularity",)
BASELINES = (*MEAN_BASELINES, *RANKING_BASELINES)


class RunningMean:
    """A running mean with exact ``revert`` (river's ``stats.Mean`` without weights)."""

    __slots__ = ("n", "total")

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0

    def update(self, x: float) -> None:
        self.n += 1
        self.total += x

    def revert(self, x: float) -> None:
        self.n -= 1
        # the sum of the remaining values; reset exactly when nothing is left so that
        # rounding residue of long streams cannot leak into a fresh mean
        self.total = self.total - x if self.n else 0.0

    def get(self, default: float) -> float:
        """The mean, or ``default`` when no value is held."""
        return self.total / self.n if self.n else default


class MeanBaselines:
    """Global, user and item running means over the current explicit ratings."""

    def __init__(self, rating_scale: tuple[float, float] = (1.0, 5.0)) -> None:
        low, high = rating_scale
        self.midpoint = (low + high) / 2.0
        self._ratings: dict[str, dict[str, float]] = {}
        self._global = RunningMean()
        self._users: dict[str, RunningMean] = {}
        self._items: dict[str, RunningMean] = {}

    # -- learning -------------------------------------------------------------------------
    def rate(self, user: str, item: str, value: float) -> None:
        own = self._ratings.setdefault(user, {})
        if item in own:
            self._remove(user, item, own[item])
        own[item] = value
        self._global.update(value)
        self._users.setdefault(user, RunningMean()).update(value)
        self._items.setdefault(item, RunningMean()).update(value)

    def unrate(self, user: str, item: str) -> None:
        own = self._ratings.get(user)
        if own is None or item not in own:
            return
        self._remove(user, item, own.pop(item))
        if not own:
            del self._ratings[user]

    def forget_user(self, user: str) -> None:
        for item, value in self._ratings.pop(user, {}).items():
            self._remove(user, item, value)

    def _remove(self, user: str, item: str, value: float) -> None:
        self._global.revert(value)
        for table, key in ((self._users, user), (self._items, item)):
            stat = table[key]
            stat.revert(value)
            if stat.n == 0:
                del table[key]

    # -- predicting -----------------------------------------------------------------------
    @property
    def global_mean(self) -> float:
        return self._global.get(self.midpoint)

    def predict(self, name: str, user: str, item: str) -> float:
        """The prediction of the baseline ``name`` (one of :data:`MEAN_BASELINES`)."""
        if name == "global_mean":
            return self.global_mean
        if name == "user_mean":
            stat = self._users.get(user)
        elif name == "item_mean":
            stat = self._items.get(item)
        else:
            raise ValueError(f"unknown mean baseline {name!r}")
        return self.global_mean if stat is None else stat.get(self.global_mean)


class Popularity:
    """Items ranked by how many distinct users currently have them."""

    def __init__(self) -> None:
        self._index: dict[str, int] = {}  # item -> position of first appearance
        self._items: list[str] = []
        self._counts = np.zeros(1024, dtype=np.int64)
        self._holdings: dict[str, set[str]] = {}

    def add(self, user: str, item: str) -> None:
        own = self._holdings.setdefault(user, set())
        if item in own:
            return
        own.add(item)
        idx = self._index.get(item)
        if idx is None:
            idx = len(self._items)
            self._index[item] = idx
            self._items.append(item)
            if idx >= len(self._counts):
                self._counts = np.concatenate([self._counts, np.zeros_like(self._counts)])
        self._counts[idx] += 1

    def remove(self, user: str, item: str) -> None:
        own = self._holdings.get(user)
        if own is None or item not in own:
            return
        own.remove(item)
        if not own:
            del self._holdings[user]
        self._counts[self._index[item]] -= 1

    def forget_user(self, user: str) -> None:
        for item in list(self._holdings.get(user, ())):
            self.remove(user, item)

    def has(self, user: str) -> Collection[str]:
        """The items the user currently has."""
        return self._holdings.get(user, set())

    def count(self, item: str) -> int:
        idx = self._index.get(item)
        return 0 if idx is None else int(self._counts[idx])

    def recommend(self, user: str, n: int = 10, *, include_seen: bool = False) -> list[str]:
        """The ``n`` most popular items (count > 0) the user does not have, or with
        ``include_seen`` whether or not the user has them."""
        size = len(self._items)
        counts = self._counts[:size]
        # stable sort on -count: equal counts keep first-appearance order
        order = np.argsort(-counts, kind="stable")
        exclude = set() if include_seen else self._holdings.get(user, set())
        out: list[str] = []
        for idx in order.tolist():
            if counts[idx] <= 0 or len(out) >= n:
                break
            item = self._items[idx]
            if item not in exclude:
                out.append(item)
        return out


class Baselines:
    """Every baseline, fed the same events as the model."""

    def __init__(self, rating_scale: tuple[float, float] = (1.0, 5.0)) -> None:
        self.means = MeanBaselines(rating_scale)
        self.popularity = Popularity()

    def apply(self, event: Event) -> None:
        if isinstance(event, RatingEvent):
            self.means.rate(event.user_id, event.item_id, event.rating)
            self.popularity.add(event.user_id, event.item_id)
        elif isinstance(event, PurchaseEvent):
            self.popularity.add(event.user_id, event.item_id)
        elif isinstance(event, UnrateEvent):
            self.means.unrate(event.user_id, event.item_id)
            self.popularity.remove(event.user_id, event.item_id)
        elif isinstance(event, ForgetUserEvent):
            self.means.forget_user(event.user_id)
            self.popularity.forget_user(event.user_id)
