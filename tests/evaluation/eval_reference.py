"""A plain reference of the evaluation protocols, for the oracle tests of stream_cf.evaluation.

Nothing here is incremental or shared with the package: every figure is recomputed from the
current ratings ``{user: {item: value}}`` with loops and dicts.

The model is UserKNN in explicit mode with the MSD similarity, ``min_similarity=0.0``,
``min_k=1`` and ``k`` larger than the number of users (so no tie among neighbours matters):

    msd(u, v) = 1 / (Σ_{i∈I_uv} (r_ui − r_vi)² / |I_uv| + 1)     (0 if no common item)
    r̂_ui = r̄_u + Σ_{v rated i, w_uv > 0} (r_vi − r̄_v)·w_uv / Σ|w_uv|, clipped to [1, 5]
    unknown user -> global mean (midpoint 3 when there is no rating); unknown item -> r̄_u;
    no usable neighbour -> r̄_u.

recommend(u, n): the items u has not rated that have at least one rater v with w_uv > 0, by
prediction (highest first; ties at the clip by the unclipped estimate, then by the number of
neighbours, then by first appearance in the stream); an unknown user gets the
popularity list (distinct raters, ties by first appearance), and so does a known user for whom
no item has a usable neighbour (without the items the user has).
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from stream_cf.events import Event, ForgetUserEvent, RatingEvent, UnrateEvent
from stream_cf.exceptions import UnknownRating

T0 = datetime(2020, 1, 1, tzinfo=UTC)

Ratings = dict[str, dict[str, float]]


def generated_stream(
    seed: int, n_events: int = 300, users: int = 14, items: int = 18
) -> list[Event]:
    """Users arrive over time and rate items with a taste bias, so similarities mean something."""
    rng = random.Random(seed)
    taste = {f"u{u}": rng.uniform(-1.5, 1.5) for u in range(users)}
    quality = {f"i{i}": rng.uniform(-1.0, 1.0) for i in range(items)}
    events: list[Event] = []
    for k in range(n_events):
        u = f"u{rng.randrange(min(users, 2 + k // 15))}"  # new users keep arriving
        i = f"i{min(int(rng.expovariate(0.15)), items - 1)}"  # some items far more popular
        value = round(
            3.0 + taste[u] * (1 if int(i[1:]) % 2 else -1) + quality[i] + rng.gauss(0, 0.6)
        )
        events.append(
            RatingEvent(
                user_id=u,
                item_id=i,
                rating=float(min(max(value, 1), 5)),
                ts=T0 + timedelta(seconds=k),
            )
        )
    return events


def assert_same(got: Any, want: Any, where: str = "") -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict), where
        assert set(got) == set(want), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for key in want:
            assert_same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, float) and isinstance(got, float):
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), f"{where}: {got} != {want}"
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


def msd(ru: dict[str, float], rv: dict[str, float]) -> float:
    common = [i for i in ru if i in rv]
    if not common:
        return 0.0
    total = 0.0
    for i in common:
        total += (ru[i] - rv[i]) ** 2
    return 1.0 / (total / len(common) + 1.0)


def mean(values: list[float], default: float) -> float:
    return sum(values) / len(values) if values else default


def global_mean(ratings: Ratings) -> float:
    return mean([v for own in ratings.values() for v in own.values()], 3.0)


def raters(ratings: Ratings, item: str) -> list[str]:
    return [u for u, own in ratings.items() if item in own]


def predict(ratings: Ratings, user: str, item: str) -> tuple[float, int]:
    """The prediction and the number of neighbours it used."""
    raw, used = unclipped(ratings, user, item)
    return min(max(raw, 1.0), 5.0), used


def unclipped(ratings: Ratings, user: str, item: str) -> tuple[float, int]:
    """The prediction before clipping and the number of neighbours it used."""
    if user not in ratings:
        return global_mean(ratings), 0
    ru = ratings[user]
    mu = mean(list(ru.values()), 3.0)
    if not raters(ratings, item):
        return mu, 0
    num = 0.0
    den = 0.0
    used = 0
    for v in raters(ratings, item):
        if v == user:
            continue
        w = msd(ru, ratings[v])
        if w > 0:
            mv = mean(list(ratings[v].values()), 3.0)
            num += (ratings[v][item] - mv) * w
            den += abs(w)
            used += 1
    if used == 0:
        return mu, 0
    return mu + num / den, used


def popularity(ratings: Ratings, first_seen: list[str], user: str, n: int) -> list[str]:
    have = ratings.get(user, {})
    counts = {i: len(raters(ratings, i)) for i in first_seen}
    ranked = sorted(
        (i for i in first_seen if counts[i] > 0 and i not in have),
        key=lambda i: (-counts[i], first_seen.index(i)),
    )
    return ranked[:n]


def recommend(ratings: Ratings, first_seen: list[str], user: str, n: int) -> list[str]:
    if user not in ratings:
        return popularity(ratings, first_seen, user, n)
    scored = []
    for item in first_seen:
        if item in ratings[user]:
            continue
        raw, used = unclipped(ratings, user, item)
        if used > 0:  # ties at the clip: the unclipped estimate, then more neighbours
            clipped = min(max(raw, 1.0), 5.0)
            scored.append((-clipped, -round(raw, 9), -used, first_seen.index(item), item))
    if not scored:  # a known user without any neighbour-based candidate
        return popularity(ratings, first_seen, user, n)
    scored.sort()
    return [entry[-1] for entry in scored[:n]]


class Tally:
    """Plain sums of one predictor or ranker."""

    def __init__(self) -> None:
        self.abs: list[float] = []
        self.sq: list[float] = []
        self.warm_abs: list[float] = []
        self.warm_sq: list[float] = []
        self.hits: list[float] = []
        self.gains: list[float] = []
        self.shown: set[str] = set()

    def error(self, prediction: float, truth: float, warm: bool) -> None:
        self.abs.append(abs(prediction - truth))
        self.sq.append((prediction - truth) ** 2)
        if warm:
            self.warm_abs.append(abs(prediction - truth))
            self.warm_sq.append((prediction - truth) ** 2)

    def rank(self, item: str, top: list[str], n: int) -> None:
        top = top[:n]
        self.shown.update(top)
        if item in top:
            self.hits.append(1.0)
            self.gains.append(1.0 / math.log2(top.index(item) + 2))
        else:
            self.hits.append(0.0)
            self.gains.append(0.0)

    def figures(self, catalogue: int, rated: bool, ranked: bool) -> dict[str, float | None]:
        def avg(xs: list[float]) -> float | None:
            return sum(xs) / len(xs) if xs else None

        def root(xs: list[float]) -> float | None:
            return math.sqrt(sum(xs) / len(xs)) if xs else None

        return {
            "rmse": root(self.sq) if rated else None,
            "mae": avg(self.abs) if rated else None,
            "warm_rmse": root(self.warm_sq) if rated else None,
            "warm_mae": avg(self.warm_abs) if rated else None,
            "hit_rate_at_10": avg(self.hits) if ranked else None,
            "ndcg_at_10": avg(self.gains) if ranked else None,
            "coverage_at_10": (len(self.shown) / catalogue if self.hits else None)
            if ranked
            else None,
        }


NAMES = ("model", "global_mean", "user_mean", "item_mean", "popularity")


def _score_rating(
    tallies: dict[str, Tally], counts: dict[str, int], ratings: Ratings, e: RatingEvent
) -> None:
    u, i, r = e.user_id, e.item_id, e.rating
    user_known = u in ratings
    item_known = bool(raters(ratings, i))
    warm = user_known and item_known
    counts["rated"] += 1
    if not user_known:
        counts["new_user"] += 1
    elif not item_known:
        counts["new_item"] += 1
    else:
        counts["rated_warm"] += 1
    mu = global_mean(ratings)
    item_values = [ratings[v][i] for v in raters(ratings, i)]
    tallies["model"].error(predict(ratings, u, i)[0], r, warm)
    tallies["global_mean"].error(mu, r, warm)
    tallies["user_mean"].error(mean(list(ratings.get(u, {}).values()), mu), r, warm)
    tallies["item_mean"].error(mean(item_values, mu), r, warm)


def _result(tallies: dict[str, Tally], counts: dict[str, int], catalogue: int) -> dict[str, Any]:
    out: dict[str, Any] = dict(tallies["model"].figures(catalogue, True, True))
    out["baselines"] = {
        "global_mean": tallies["global_mean"].figures(catalogue, True, False),
        "user_mean": tallies["user_mean"].figures(catalogue, True, False),
        "item_mean": tallies["item_mean"].figures(catalogue, True, False),
        "popularity": tallies["popularity"].figures(catalogue, False, True),
    }
    out.update(counts)
    out["catalogue_size"] = catalogue
    return out


def _new_counts() -> dict[str, int]:
    keys = ("rated", "rated_warm", "new_user", "new_item", "ranked", "ranked_new_user")
    counts = dict.fromkeys(keys, 0)
    counts.update(ranking_repeats=0, rejected=0)
    return counts


def reference_prequential(
    events: list[Event], *, rank_sample: float, seed: int, n: int = 10
) -> dict[str, Any]:
    """Every figure of the prequential protocol, recomputed plainly.

    Ratings are tested then learnt; ``unrate`` removes the pair (an unrate of a pair without a
    rating is refused by the engine: counted as ``rejected``); ``forget_user`` removes the user.
    """
    rng = random.Random(seed)
    ratings: Ratings = {}
    first_seen: list[str] = []
    tallies = {name: Tally() for name in NAMES}
    counts = _new_counts()
    for e in events:
        if isinstance(e, UnrateEvent):
            own = ratings.get(e.user_id, {})
            if e.item_id not in own:
                counts["rejected"] += 1
                continue
            del own[e.item_id]
            if not own:
                del ratings[e.user_id]
            continue
        if isinstance(e, ForgetUserEvent):
            ratings.pop(e.user_id, None)
            continue
        assert isinstance(e, RatingEvent)
        u, i = e.user_id, e.item_id
        _score_rating(tallies, counts, ratings, e)
        if rank_sample > 0 and rng.random() < rank_sample:
            if i in ratings.get(u, {}):
                counts["ranking_repeats"] += 1
            else:
                counts["ranked"] += 1
                if u not in ratings:
                    counts["ranked_new_user"] += 1
                tallies["model"].rank(i, recommend(ratings, first_seen, u, n), n)
                tallies["popularity"].rank(i, popularity(ratings, first_seen, u, n), n)
        ratings.setdefault(u, {})[i] = e.rating
        if i not in first_seen:
            first_seen.append(i)
    return _result(tallies, counts, len(first_seen))


def reference_split(
    events: list[Event], *, train_fraction: float, rank_sample: float, seed: int, n: int = 10
) -> dict[str, Any]:
    """Every figure of the 80/20 split protocol, recomputed plainly (ratings only)."""
    cut = int(len(events) * train_fraction)
    ratings: Ratings = {}
    first_seen: list[str] = []
    for e in events[:cut]:
        assert isinstance(e, RatingEvent)
        ratings.setdefault(e.user_id, {})[e.item_id] = e.rating
        if e.item_id not in first_seen:
            first_seen.append(e.item_id)
    rng = random.Random(seed)
    tallies = {name: Tally() for name in NAMES}
    counts = _new_counts()
    counts["test_not_scored"] = 0
    seen: list[tuple[str, str]] = []
    for e in events[cut:]:
        assert isinstance(e, RatingEvent)
        u, i = e.user_id, e.item_id
        _score_rating(tallies, counts, ratings, e)
        if rank_sample > 0:
            if (u, i) in seen or i in ratings.get(u, {}):
                counts["ranking_repeats"] += 1
            else:
                seen.append((u, i))
                if rng.random() < rank_sample:
                    counts["ranked"] += 1
                    if u not in ratings:
                        counts["ranked_new_user"] += 1
                    tallies["model"].rank(i, recommend(ratings, first_seen, u, n), n)
                    tallies["popularity"].rank(i, popularity(ratings, first_seen, u, n), n)
    all_items = {e.item_id for e in events if isinstance(e, RatingEvent)}
    out = _result(tallies, counts, len(all_items))
    out["train_events"] = cut
    out["test_events"] = len(events) - cut
    return out


class PlainKNN:
    """The reference model behind the evaluation's model protocol (for loop-only tests)."""

    def __init__(self) -> None:
        self.ratings: Ratings = {}
        self.first_seen: list[str] = []

    def has_user(self, user: str) -> bool:
        return user in self.ratings

    def has_item(self, item: str) -> bool:
        return bool(raters(self.ratings, item))

    def predict(self, user: str, item: str) -> float:
        return predict(self.ratings, user, item)[0]

    def recommend(self, user: str, n: int = 10) -> list[tuple[str, float]]:
        return [(i, 0.0) for i in recommend(self.ratings, self.first_seen, user, n)]

    def apply(self, event: Event) -> None:
        if isinstance(event, UnrateEvent):
            own = self.ratings.get(event.user_id, {})
            if event.item_id not in own:
                raise UnknownRating(f"{event.user_id!r} has no rating of {event.item_id!r}")
            del own[event.item_id]
            if not own:
                del self.ratings[event.user_id]
            return
        if isinstance(event, ForgetUserEvent):
            self.ratings.pop(event.user_id, None)
            return
        assert isinstance(event, RatingEvent)
        self.ratings.setdefault(event.user_id, {})[event.item_id] = event.rating
        if event.item_id not in self.first_seen:
            self.first_seen.append(event.item_id)

    def config(self) -> dict[str, Any]:
        return {"similarity": "msd", "feedback": "explicit"}
