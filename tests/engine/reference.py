"""A plain, from-scratch reference of the UserKNN engine, for the oracle tests.

Nothing here is incremental: every read recomputes what it needs from the current ratings
``{(user, item): (value, seq)}`` with loops and dicts, so that it is obviously right. ``seq`` is the
position in the stream of the event that last changed the pair (a re-rating or another purchase
moves it), and ties between neighbours are broken by the lower ``seq``.

Explicit mode (r̄_u the mean of u's ratings, sums over the items rated by both u and v, n of them):

- cosine: Σxy / sqrt(Σx² · Σy²)
- msd: 1 / (Σ(x − y)² / n + 1)
- pearson (as Surprise): (Σxy − n·x̄·ȳ) / (sqrt(Σx² − n·x̄²) · sqrt(Σy² − n·ȳ²)), x̄, ȳ over the
  co-rated items
- adjusted_cosine: cosine of (x − r̄_u) and (y − r̄_v), centred on each user's overall mean
- any zero denominator, n == 0 or n < min_support gives 0; then shrinkage w · n / (n + λ)
- r̂_ui = r̄_u + Σ_{v∈N(i;u)} (r_vi − r̄_v) · w_uv / Σ|w_uv|, N(i;u) the k raters of i (u excluded)
  with the largest w (ties: lower seq first) among the usable ones (w > 0 when min_similarity is
  0.0, w ≠ 0 when it is None); fewer than min_k usable -> r̄_u; clipped to the rating scale;
  unknown user -> global mean, unknown item -> r̄_u.
- predictor="knn_baseline": μ the global mean, b_i = Σ_{u rated i} (r_ui − μ) / (λ_i + n_i),
  b_u = Σ_{j rated by u} (r_uj − μ − b_j) / (λ_u + n_u), b_ui = μ + b_u + b_i and, over the same
  N(i;u), r̂_ui = b_ui + Σ w_uv · (r_vi − b_vi) / (Σ|w_uv| + damping); fewer than min_k -> b_ui;
  clipped; unknown user -> μ + b_i, unknown item -> μ + b_u (an unknown user's or item's bias
  is 0).
- item_residual = K > 0 (knn_baseline): s_ij = Σ_v c_vi·c_vj / sqrt(Σ_v c_vi² · Σ_v c_vj²) over
  the common raters v of i and j but u, c_vx = r_vx − r̄_v, times n_ij / (n_ij + item_shrinkage);
  M(u;i) the K items j ≠ i of u with the largest s_ij > 0 (ties: j's first appearance), and
  r̂_ui = b_ui + (Σ_v w_uv·(r_vi − b_vi) + Σ_j s_ij·(r_uj − b_uj)) / (Σ|w_uv| + Σ s_ij + damping);
  fewer than min_k users and items together -> b_ui.

Implicit mode (the lead's decision of 23:50): the value of a pair is the accumulated weight
(quantity × type weight, capped), cosine over the full weight vectors (Σ over common items / sqrt of
the full squared norms), N_k(u) the k nearest usable neighbours of u (ties: the earlier created
user), and the score of an item is Σ_{v ∈ N_k(u), v has i} w_uv · r_vi / Σ_{v ∈ N_k(u)} |w_uv|;
fewer than min_k neighbours in N_k(u) -> fallback (score 0); candidates are the items a v ∈ N_k(u)
has and u has not.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

EXPLICIT_SIMILARITIES = ("cosine", "msd", "pearson", "adjusted_cosine")


@dataclass
class RefNeighbour:
    user: str
    similarity: float
    rating: float
    neighbour_mean: float


@dataclass
class RefPrediction:
    estimate: float
    neighbours: list[RefNeighbour] = field(default_factory=list)
    fallback: str | None = None
    raw: float | None = None  # the estimate before clipping (neighbour-based predictions)
    items: list[RefItemNeighbour] = field(default_factory=list)  # M(u;i), knn_baseline


@dataclass
class RefItemNeighbour:
    item: str
    similarity: float
    rating: float  # r_uj


class Reference:
    """The engine's promise, written plainly. Same constructor keywords as ``UserKNN``."""

    def __init__(
        self,
        *,
        rank: str = "vote",
        rank_half_life: float = 5.0,
        rank_neighbours: int = 80,
        rank_exponent: float | None = None,
        rank_damping: float | None = None,
        include_seen: bool = False,
        rank_neighbour_recency: str = "shared",
        rank_neighbour_half_life: float = 5.0,
        rank_rarity: float | None = None,
        similarity: str | None = None,
        k: int = 40,
        min_k: int = 1,
        min_support: int = 1,
        min_similarity: float | None = 0.0,
        shrinkage: float | None = None,
        rating_scale: tuple[float, float] = (1.0, 5.0),
        feedback: str = "explicit",
        implicit_weights: Mapping[str, float] | None = None,
        implicit_cap: float | None = None,
        predictor: str = "knn_baseline",
        baseline_reg_items: float = 10.0,
        baseline_reg_users: float = 5.0,
        damping: float = 0.5,
        item_residual: int | None = None,
        item_shrinkage: float = 100.0,
    ) -> None:
        if similarity is None:  # as UserKNN: adjusted_cosine for knn_baseline (explicit)
            if feedback == "implicit":
                similarity = "cosine"
            else:
                similarity = "adjusted_cosine" if predictor == "knn_baseline" else "pearson"
        self.rank = rank
        self.half_life = rank_half_life
        self.rank_neighbours = rank_neighbours
        # the vote's shape by kind of feedback: (2, 0.2) for ratings, (1, 0) for purchases
        shape = (1.0, 0.0) if feedback == "implicit" else (2.0, 0.2)
        self.exponent = shape[0] if rank_exponent is None else rank_exponent
        self.rank_damping = shape[1] if rank_damping is None else rank_damping
        self.include_seen = include_seen
        self.neighbour_recency = rank_neighbour_recency
        self.neighbour_half_life = rank_neighbour_half_life
        # the rarity exponent b of w_uv: 0 (every shared item alike) for both feedbacks
        self.rarity = 0.0 if rank_rarity is None else rank_rarity
        if shrinkage is None:  # as UserKNN: 100 for knn_baseline (explicit), else 0
            shrinkage = 100.0 if predictor == "knn_baseline" and feedback == "explicit" else 0.0
        self.similarity_name = similarity
        self.predictor = predictor
        self.reg_items = baseline_reg_items
        self.reg_users = baseline_reg_users
        self.damping = damping
        self.item_residual = 0 if item_residual is None else item_residual  # as UserKNN: 0
        self.item_shrinkage = item_shrinkage
        self.k = k
        self.min_k = min_k
        self.min_support = min_support
        self.min_similarity = min_similarity
        self.shrinkage = shrinkage
        self.rating_scale = rating_scale
        self.feedback = feedback
        weights = {"purchase": 1.0, "rating": 1.0}
        if implicit_weights is not None:
            weights.update(implicit_weights)
        self.implicit_weights = weights
        self.implicit_cap = implicit_cap
        self.ratings: dict[tuple[str, str], tuple[float, int]] = {}
        self.first_seen: dict[str, int] = {}  # item -> seq of the first event that mentioned it
        self.created: dict[str, int] = {}  # user -> seq of the rating that (re)created the user
        self.seq = 0
        self._cache: dict[tuple[str, str, str], Any] = {}  # cleared by every event

    # ------------------------------------------------------------------ events
    def _touch(self, item: str) -> int:
        self._cache.clear()
        self.seq += 1
        if item not in self.first_seen:
            self.first_seen[item] = self.seq
        return self.seq

    def _accumulate(self, user: str, item: str, amount: float) -> None:
        seq = self._touch(item)
        self._create(user, seq)
        old = self.ratings.get((user, item), (0.0, 0))[0]
        value = old + amount
        if self.implicit_cap is not None:
            value = min(value, self.implicit_cap)
        self.ratings[(user, item)] = (value, seq)

    def rate(self, user: str, item: str, value: float) -> None:
        if self.feedback == "implicit":
            self._accumulate(user, item, value * self.implicit_weights["rating"])
            return
        seq = self._touch(item)
        self._create(user, seq)
        self.ratings[(user, item)] = (value, seq)

    def _create(self, user: str, seq: int) -> None:
        if not self.has_user(user):
            self.created[user] = seq

    def users_by_creation(self) -> list[str]:
        """The users that exist, in order of (re)creation."""
        return sorted(self.users(), key=lambda u: self.created[u])

    def items_by_first_appearance(self) -> list[str]:
        return sorted(self.items(), key=lambda i: self.first_seen[i])

    def purchase(self, user: str, item: str, quantity: float = 1.0) -> None:
        self._accumulate(user, item, quantity * self.implicit_weights["purchase"])

    def unrate(self, user: str, item: str) -> None:
        self._cache.clear()
        self.seq += 1
        del self.ratings[(user, item)]

    def forget_user(self, user: str) -> None:
        self._cache.clear()
        self.seq += 1
        for key in list(self.ratings):
            if key[0] == user:
                del self.ratings[key]

    # ------------------------------------------------------------------ plain reads
    def users(self) -> list[str]:
        found: list[str] = []
        for user, _item in self.ratings:
            if user not in found:
                found.append(user)
        return sorted(found)

    def items(self) -> list[str]:
        found: list[str] = []
        for _user, item in self.ratings:
            if item not in found:
                found.append(item)
        return sorted(found)

    def has_user(self, user: str) -> bool:
        return any(u == user for u, _ in self.ratings)

    def has_item(self, item: str) -> bool:
        return any(i == item for _, i in self.ratings)

    def user_items(self, user: str) -> dict[str, float]:
        return {i: v for (u, i), (v, _s) in self.ratings.items() if u == user}

    def raters_values(self, item: str) -> list[tuple[str, float]]:
        return [(u, v) for (u, i), (v, _s) in self.ratings.items() if i == item]

    def raters_by_seq(self, item: str) -> list[str]:
        pairs = [(s, u) for (u, i), (_v, s) in self.ratings.items() if i == item]
        pairs.sort()
        return [u for _s, u in pairs]

    def mean(self, user: str) -> float:
        if ("mean", user, "") not in self._cache:
            values = list(self.user_items(user).values())
            self._cache[("mean", user, "")] = sum(values) / len(values)
        return self._cache[("mean", user, "")]

    def global_mean(self) -> float:
        values = [v for v, _s in self.ratings.values()]
        return sum(values) / len(values)

    # ------------------------------------------------------------------ similarity
    def support(self, u: str, v: str) -> int:
        a = self.user_items(u)
        b = self.user_items(v)
        return sum(1 for item in a if item in b)

    def _exact_parts(self, u: str, v: str) -> tuple[Fraction, Fraction, Fraction] | None:
        """(num, den_x, den_y) with w = num / sqrt(den_x · den_y), in exact rational arithmetic.

        The values are floats, hence exact rationals; so the zero tests below are exact and a
        similarity that is 0 in exact arithmetic is 0 here (no 1e-17 left over from a cancellation).
        ``None`` for msd, which has no square root.
        """
        a = {i: Fraction(x) for i, x in self.user_items(u).items()}
        b = {i: Fraction(y) for i, y in self.user_items(v).items()}
        common = [item for item in a if item in b]
        n = len(common)
        xs = [a[item] for item in common]
        ys = [b[item] for item in common]
        name = self.similarity_name
        if self.feedback == "implicit":
            num = sum((x * y for x, y in zip(xs, ys, strict=True)), Fraction(0))
            return (
                num,
                sum((x * x for x in a.values()), Fraction(0)),
                sum((y * y for y in b.values()), Fraction(0)),
            )
        if name == "cosine":
            num = sum((x * y for x, y in zip(xs, ys, strict=True)), Fraction(0))
            return num, sum((x * x for x in xs), Fraction(0)), sum((y * y for y in ys), Fraction(0))
        if name == "pearson":
            mx = sum(xs, Fraction(0)) / n
            my = sum(ys, Fraction(0)) / n
            num = sum((x * y for x, y in zip(xs, ys, strict=True)), Fraction(0)) - n * mx * my
            vx = sum((x * x for x in xs), Fraction(0)) - n * mx * mx
            vy = sum((y * y for y in ys), Fraction(0)) - n * my * my
            return num, vx, vy
        if name == "adjusted_cosine":
            mu = sum(a.values(), Fraction(0)) / len(a)
            mv = sum(b.values(), Fraction(0)) / len(b)
            cx = [x - mu for x in xs]
            cy = [y - mv for y in ys]
            num = sum((x * y for x, y in zip(cx, cy, strict=True)), Fraction(0))
            return num, sum((x * x for x in cx), Fraction(0)), sum((y * y for y in cy), Fraction(0))
        return None

    def exact_key(self, u: str, v: str) -> Fraction:
        """A number with the same order as the similarity: sign(w) · w², exact."""
        if ("key", u, v) not in self._cache:
            self._cache[("key", u, v)] = self._exact_key(u, v)
        return self._cache[("key", u, v)]

    def _exact_key(self, u: str, v: str) -> Fraction:
        n = self.support(u, v)
        if n == 0 or n < self.min_support:
            return Fraction(0)
        parts = self._exact_parts(u, v)
        if parts is None:  # msd
            a = self.user_items(u)
            b = self.user_items(v)
            sq = sum((Fraction(a[i]) - Fraction(b[i])) ** 2 for i in a if i in b)
            w = 1 / (sq / n + 1)
            key = w * w
        else:
            num, dx, dy = parts
            if num == 0 or dx == 0 or dy == 0:
                return Fraction(0)
            key = (1 if num > 0 else -1) * num * num / (dx * dy)
        if self.shrinkage:
            factor = Fraction(n) / (n + Fraction(self.shrinkage))
            key = key * factor * factor
        return key

    def raw_similarity(self, u: str, v: str) -> float:
        """The similarity before min_support and shrinkage; 0 for n == 0 or a zero denominator."""
        n = self.support(u, v)
        if n == 0:
            return 0.0
        parts = self._exact_parts(u, v)
        if parts is None:  # msd: 1 / (Σ(x − y)² / n + 1)
            a = self.user_items(u)
            b = self.user_items(v)
            sq = sum((a[i] - b[i]) ** 2 for i in a if i in b)
            return 1.0 / (sq / n + 1.0)
        num, dx, dy = parts
        if num == 0 or dx == 0 or dy == 0:
            return 0.0
        return float(num) / math.sqrt(float(dx) * float(dy))

    def similarity(self, u: str, v: str) -> float:
        if ("sim", u, v) not in self._cache:
            self._cache[("sim", u, v)] = self._similarity(u, v)
        return self._cache[("sim", u, v)]

    def _similarity(self, u: str, v: str) -> float:
        n = self.support(u, v)
        if n == 0 or n < self.min_support:
            return 0.0
        w = self.raw_similarity(u, v)
        if self.shrinkage:
            w = w * n / (n + self.shrinkage)
        return w

    # ------------------------------------------------------------------ prediction
    def usable(self, key: Fraction, w: float) -> bool:
        if self.min_similarity is None:
            return key != 0
        if self.min_similarity == 0:
            return key > 0
        return key != 0 and w > self.min_similarity

    def candidates(self, user: str, item: str) -> list[tuple[Fraction, int, str, float, float]]:
        """Every usable rater of the item but the user: (exact key, seq, rater, rating, w), best
        first (largest similarity, then lower seq)."""
        found = []
        for (v, i), (value, seq) in self.ratings.items():
            if i != item or v == user:
                continue
            key = self.exact_key(user, v)
            w = self.similarity(user, v)
            if self.usable(key, w):
                found.append((key, seq, v, value, w))
        found.sort(key=lambda c: (-c[0], c[1]))
        return found

    def neighbours(self, user: str, item: str) -> list[RefNeighbour]:
        """N(i;u): the k usable raters of the item most similar to the user, ties by seq."""
        out = []
        for _key, _seq, v, value, w in self.candidates(user, item)[: self.k]:
            nmean = self.mean(v) if self.feedback == "explicit" else 0.0
            out.append(RefNeighbour(v, w, value, nmean))
        return out

    def boundary_tied(self, user: str, item: str) -> bool:
        """Whether the k-th and the (k+1)-th candidates have exactly the same similarity."""
        found = self.candidates(user, item)
        return len(found) > self.k >= 1 and found[self.k - 1][0] == found[self.k][0]

    def estimate_from(
        self, user: str, item: str, chosen: list[str], items: list[str] | None = None
    ) -> float:
        """The estimate from a given neighbour set (to check a choice among exact ties);
        knn_baseline: and a given M(u;i) (None: the reference's own)."""
        values = {v: value for (v, i), (value, _s) in self.ratings.items() if i == item}
        if self.feedback == "explicit" and self.predictor == "knn_baseline":
            if items is None:
                items = [it.item for it in self.item_neighbours(user, item)]
            return self.clip(self.baseline_estimate(user, item, chosen, items))
        num = 0.0
        den = 0.0
        for v in chosen:
            w = self.similarity(user, v)
            if self.feedback == "explicit":
                num += (values[v] - self.mean(v)) * w
            else:
                num += w * values[v]
            den += abs(w)
        if self.feedback == "explicit":
            return self.clip(self.mean(user) + num / den)
        return num / den

    def clip(self, x: float) -> float:
        low, high = self.rating_scale
        return min(max(x, low), high)

    # ------------------------------------------------------------------ knn_baseline
    def item_bias(self, item: str) -> float:
        """b_i = Σ_{u rated i} (r_ui − μ) / (λ_i + n_i); 0 for an item nobody rated."""
        if ("b_i", item, "") not in self._cache:
            mu = self.global_mean()
            values = [v for (_u, i), (v, _s) in self.ratings.items() if i == item]
            bias = sum(v - mu for v in values) / (self.reg_items + len(values)) if values else 0.0
            self._cache[("b_i", item, "")] = bias
        return self._cache[("b_i", item, "")]

    def user_bias(self, user: str) -> float:
        """b_u = Σ_{j rated by u} (r_uj − μ − b_j) / (λ_u + n_u); 0 for an unknown user."""
        if ("b_u", user, "") not in self._cache:
            mu = self.global_mean()
            mine = self.user_items(user)
            total = sum(r - mu - self.item_bias(j) for j, r in mine.items())
            self._cache[("b_u", user, "")] = total / (self.reg_users + len(mine)) if mine else 0.0
        return self._cache[("b_u", user, "")]

    def baseline(self, user: str, item: str) -> float:
        """b_ui = μ + b_u + b_i."""
        return self.global_mean() + self.user_bias(user) + self.item_bias(item)

    # ------------------------------------------------------------------ item residual
    def _item_parts(self, user: str, i: str, j: str) -> tuple[int, Fraction, Fraction, Fraction]:
        """(n_ij, num, den_i, den_j) of s_ij over the common raters of i and j but ``user``,
        ratings centred on each rater's mean, in exact rational arithmetic."""
        n = 0
        num = dx = dy = Fraction(0)
        for (v, rated), (value, _seq) in self.ratings.items():
            if rated != i or v == user or (v, j) not in self.ratings:
                continue
            mean = self.exact_mean(v)
            x = Fraction(value) - mean
            y = Fraction(self.ratings[(v, j)][0]) - mean
            n += 1
            num += x * y
            dx += x * x
            dy += y * y
        return n, num, dx, dy

    def exact_mean(self, user: str) -> Fraction:
        """r̄_u as an exact rational."""
        if ("exact_mean", user, "") not in self._cache:
            values = [Fraction(x) for x in self.user_items(user).values()]
            self._cache[("exact_mean", user, "")] = sum(values, Fraction(0)) / len(values)
        return self._cache[("exact_mean", user, "")]

    def item_similarity(self, user: str, i: str, j: str) -> tuple[Fraction, float]:
        """(exact key sign(s)·s², s_ij) of items i and j for ``user``'s prediction."""
        cached = ("item_sim", user, f"{i}\x00{j}")
        if cached not in self._cache:
            n, num, dx, dy = self._item_parts(user, i, j)
            if n == 0 or num == 0 or dx == 0 or dy == 0:
                self._cache[cached] = (Fraction(0), 0.0)
            else:
                factor = Fraction(n) / (n + Fraction(self.item_shrinkage))
                key = (1 if num > 0 else -1) * num * num / (dx * dy) * factor * factor
                s = float(num) / math.sqrt(float(dx) * float(dy))
                s = min(max(s, -1.0), 1.0) * n / (n + self.item_shrinkage)
                self._cache[cached] = (key, s)
        return self._cache[cached]

    def item_candidates(self, user: str, item: str) -> list[tuple[Fraction, int, str, float]]:
        """The user's items j ≠ item with s_ij > 0: (exact key, j's first appearance, j, s_ij),
        best first (largest s, then the item that appeared first in the stream)."""
        found = []
        for u, j in self.ratings:
            if u != user or j == item:
                continue
            key, s = self.item_similarity(user, item, j)
            if key > 0:
                found.append((key, self.first_seen[j], j, s))
        found.sort(key=lambda c: (-c[0], c[1]))
        return found

    def item_neighbours(self, user: str, item: str) -> list[RefItemNeighbour]:
        """M(u;i): the item_residual items of the user most similar to the item."""
        if not self.item_residual:
            return []
        mine = self.user_items(user)
        chosen = self.item_candidates(user, item)[: self.item_residual]
        return [RefItemNeighbour(j, s, mine[j]) for _key, _seq, j, s in chosen]

    def item_boundary_tied(self, user: str, item: str) -> bool:
        """Whether the K-th and (K+1)-th item candidates have exactly the same s_ij."""
        found = self.item_candidates(user, item)
        k = self.item_residual
        return len(found) > k >= 1 and found[k - 1][0] == found[k][0]

    def baseline_estimate(self, user: str, item: str, users: list[str], items: list[str]) -> float:
        """b_ui + (Σ w·(r_vi − b_vi) + Σ s·(r_uj − b_uj)) / (Σ|w| + Σ s + damping), unclipped,
        from given neighbour sets (users in N(i;u), items in M(u;i))."""
        values = {v: value for (v, i), (value, _s) in self.ratings.items() if i == item}
        mine = self.user_items(user)
        num = 0.0
        den = 0.0
        for v in users:
            w = self.similarity(user, v)
            num += w * (values[v] - self.baseline(v, item))
            den += abs(w)
        for j in items:
            s = self.item_similarity(user, item, j)[1]
            num += s * (mine[j] - self.baseline(user, j))
            den += s
        return self.baseline(user, item) + num / (den + self.damping)

    def _predict_baseline(self, user: str, item: str) -> RefPrediction:
        if not self.has_user(user):
            return RefPrediction(self.clip(self.baseline(user, item)), [], "unknown user")
        if not self.has_item(item):
            return RefPrediction(self.clip(self.baseline(user, item)), [], "unknown item")
        nbs = self.neighbours(user, item)
        items = self.item_neighbours(user, item)
        count = len(nbs) + len(items)
        if not count or count < self.min_k:
            base = self.clip(self.baseline(user, item))
            return RefPrediction(base, nbs, "min_k not reached", items=items)
        estimate = self.baseline_estimate(
            user, item, [nb.user for nb in nbs], [it.item for it in items]
        )
        return RefPrediction(self.clip(estimate), nbs, None, estimate, items)

    def predict_full(self, user: str, item: str) -> RefPrediction:
        if self.feedback == "implicit":
            return self._score_implicit(user, item)
        if self.predictor == "knn_baseline":
            return self._predict_baseline(user, item)
        if not self.has_user(user):
            return RefPrediction(self.clip(self.global_mean()), [], "unknown user")
        mu = self.mean(user)
        if not self.has_item(item):
            return RefPrediction(self.clip(mu), [], "unknown item")
        nbs = self.neighbours(user, item)
        if not nbs or len(nbs) < self.min_k:
            return RefPrediction(self.clip(mu), nbs, "min_k not reached")
        num = 0.0
        den = 0.0
        for nb in nbs:
            num += (nb.rating - nb.neighbour_mean) * nb.similarity
            den += abs(nb.similarity)
        return RefPrediction(self.clip(mu + num / den), nbs, None, mu + num / den)

    def implicit_candidates(self, user: str) -> list[tuple[Fraction, int, str, float]]:
        """Every usable neighbour of the user, whatever they have: (exact key, creation seq, v, w),
        best first (largest similarity, then the earlier created user)."""
        found = []
        for v in self.users():
            if v == user:
                continue
            key = self.exact_key(user, v)
            w = self.similarity(user, v)
            if self.usable(key, w):
                found.append((key, self.created[v], v, w))
        found.sort(key=lambda c: (-c[0], c[1]))
        return found

    def implicit_neighbours(self, user: str) -> list[tuple[str, float]]:
        """N_k(u): the k nearest usable neighbours of the user (implicit mode)."""
        return [(v, w) for _key, _c, v, w in self.implicit_candidates(user)[: self.k]]

    def implicit_tied_choices(self, user: str) -> list[list[tuple[str, float]]]:
        """Every N_k(u) allowed when the k-th and (k+1)-th candidates are exactly tied."""
        found = self.implicit_candidates(user)
        if not (len(found) > self.k >= 1 and found[self.k - 1][0] == found[self.k][0]):
            return [self.implicit_neighbours(user)]
        boundary = found[self.k - 1][0]
        must = [(v, w) for key, _c, v, w in found if key > boundary]
        run = [(v, w) for key, _c, v, w in found if key == boundary]
        need = self.k - len(must)
        return [must + list(extra) for extra in itertools.combinations(run, need)]

    def implicit_score(self, user: str, item: str, nbs: list[tuple[str, float]]) -> float:
        """Σ_{v ∈ N_k(u), v has i} w_uv · r_vi / Σ_{v ∈ N_k(u)} |w_uv|."""
        num = 0.0
        for v, w in nbs:
            if (v, item) in self.ratings:
                num += w * self.ratings[(v, item)][0]
        den = sum(abs(w) for _v, w in nbs)
        return num / den

    def _score_implicit(self, user: str, item: str) -> RefPrediction:
        if not self.has_user(user):
            return RefPrediction(0.0, [], "unknown user")
        if not self.has_item(item):
            return RefPrediction(0.0, [], "unknown item")
        nbs = self.implicit_neighbours(user)
        if not nbs or len(nbs) < self.min_k:
            return RefPrediction(0.0, [], "min_k not reached")
        used = [
            RefNeighbour(v, w, self.ratings[(v, item)][0], 0.0)
            for v, w in nbs
            if (v, item) in self.ratings
        ]
        fallback = None if used else "no neighbour has the item"
        return RefPrediction(self.implicit_score(user, item, nbs), used, fallback)

    def implicit_candidate_items(self, user: str, nbs: list[tuple[str, float]]) -> list[str]:
        if not nbs or len(nbs) < self.min_k:
            return []
        mine = self.user_items(user)
        held = {i for (v, i) in self.ratings for nv, _w in nbs if v == nv}
        return [i for i in self.items() if i in held and i not in mine]

    def candidate_items(self, user: str) -> list[str]:
        """The items a neighbour-based list may hold for a known user.

        Explicit: not rated by the user, predicted from >= 1 neighbour and not a min_k fallback.
        Implicit: not held by the user, held by at least one v ∈ N_k(u), and N_k(u) has at least
        min_k (and 1) users.
        """
        mine = self.user_items(user)
        if self.feedback == "implicit":
            return self.implicit_candidate_items(user, self.implicit_neighbours(user))
        return [
            i for i in self.items() if i not in mine and self.predict_full(user, i).fallback is None
        ]

    def predict(self, user: str, item: str) -> float:
        return self.predict_full(user, item).estimate

    # ------------------------------------------------------------------ recommendation
    def popularity(self, exclude: Mapping[str, Any]) -> list[tuple[str, float]]:
        counts: dict[str, int] = {}
        for _u, i in self.ratings:
            counts[i] = counts.get(i, 0) + 1
        ranked = sorted(counts, key=lambda i: (-counts[i], self.first_seen[i]))
        return [(i, float(counts[i])) for i in ranked if i not in exclude]

    # ------------------------------------------------------------------ ranking modes
    def history(self, user: str) -> list[str]:
        """The user's items, latest event first."""
        mine = [(-s, i) for (u, i), (_v, s) in self.ratings.items() if u == user]
        return [i for _s, i in sorted(mine)]

    def raters_count(self, item: str) -> int:
        return sum(1 for (_u, i) in self.ratings if i == item)

    def recency(self, user: str) -> list[tuple[str, float]]:
        return [(j, 2.0 ** (-pos / self.half_life)) for pos, j in enumerate(self.history(user))]

    def vote_neighbours(self, user: str) -> list[tuple[str, float]]:
        """N(u): w_uv = Σ_{j ∈ I_u, v rated j} 2^(−pos_j/h) / n_j^b / √n_v, the K largest w > 0,
        ties by the earlier created user."""
        found = []
        for v in self.users():
            if v == user:
                continue
            theirs = self.user_items(v)
            total = 0.0
            for j, x in self.recency(user):
                if j in theirs:
                    total += x / self.raters_count(j) ** self.rarity if self.rarity else x
            if total > 0:
                found.append((-(total / math.sqrt(len(theirs))), self.created[v], v))
        found.sort()
        return [(v, -negw) for negw, _c, v in found[: self.rank_neighbours]]

    def neighbour_item_weights(self, user: str, v: str) -> dict[str, float]:
        """g_v(i) for every item of the neighbour v: 1 (``none``), 2^(−pos_v(i)/h_n)
        (``latest``), or max over the items j that u and v share of
        2^(−(pos_u(j)/h + |pos_v(i) − pos_v(j)|/h_n)) (``shared``)."""
        theirs = self.history(v)
        if self.neighbour_recency == "none":
            return {i: 1.0 for i in theirs}
        h_n = self.neighbour_half_life
        if self.neighbour_recency == "latest":
            return {i: 2.0 ** (-p / h_n) for p, i in enumerate(theirs)}
        mine = {j: q for q, j in enumerate(self.history(user))}
        anchors = [(mine[j], p) for p, j in enumerate(theirs) if j in mine]
        out = {}
        for p, i in enumerate(theirs):
            out[i] = max(2.0 ** (-(q / self.half_life + abs(p - pj) / h_n)) for q, pj in anchors)
        return out

    def ranked_scores(self, user: str) -> dict[str, float]:
        """The candidates of ``vote`` or ``item`` and their scores, written plainly."""
        scores: dict[str, float] = {}
        if self.rank == "vote":
            for v, w in self.vote_neighbours(user):
                for i, g in self.neighbour_item_weights(user, v).items():
                    scores[i] = scores.get(i, 0.0) + w**self.exponent * g
            if self.rank_damping:
                damp = self.rank_damping
                scores = {i: s / self.raters_count(i) ** damp for i, s in scores.items()}
        else:  # item: Σ_j x_j · n_ij / √(n_i·n_j), u counted among the raters
            for i in self.items():
                total = 0.0
                for j, x in self.recency(user):
                    both = sum(1 for (v, jj) in self.ratings if jj == j and (v, i) in self.ratings)
                    total += x * both / math.sqrt(self.raters_count(i) * self.raters_count(j))
                if total > 0:
                    scores[i] = total
        if not self.include_seen:
            mine = self.user_items(user)
            scores = {i: s for i, s in scores.items() if i not in mine}
        return scores

    def recommendations(self, user: str, n: int = 10) -> tuple[list[tuple[str, float]], bool]:
        """(items, is_fallback): neighbour-based list, or popularity for a cold/unknown user."""
        if not self.has_user(user):
            return self.popularity({})[:n], True
        if self.rank != "rating":
            ranked = self.ranked_scores(user)
            if not ranked:
                return self.popularity(self.user_items(user))[:n], True
            order = sorted(ranked, key=lambda i: (-ranked[i], self.first_seen[i]))
            return [(i, ranked[i]) for i in order[:n]], False
        scored: list[tuple[float, float, int, int, str]] = []
        for item in self.candidate_items(user):
            key = self.rating_rank(user, item)
            scored.append((*key, self.first_seen[item], item))
        if not scored:
            return self.popularity(self.user_items(user))[:n], True
        scored.sort()
        return [(item, -negs) for negs, _r, _c, _f, item in scored[:n]], False

    def rating_rank(self, user: str, item: str) -> tuple[float, float, int]:
        """The ``rating`` order's key (ascending = better): the clipped prediction, then (ties at
        the clip) the unclipped estimate, then the number of neighbours, all descending."""
        pred = self.predict_full(user, item)
        if self.feedback == "implicit" or pred.raw is None:
            return (-pred.estimate, 0.0, 0)
        return (-pred.estimate, -pred.raw, -len(pred.neighbours) - len(pred.items))

    def recommend(self, user: str, n: int = 10) -> list[tuple[str, float]]:
        return self.recommendations(user, n)[0]
