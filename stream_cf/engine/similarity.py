"""Similarities computed from the additive pair sums when they are read.

Every function takes, for one user u against many users v, the sums over the items both rated:
n, Σx (u's ratings), Σy (v's ratings), Σx², Σy², Σxy, and returns the similarities as an array.
Common rules (:func:`finish`): a pair with n < min_support, or n == 0, has similarity 0; an
optional shrinkage multiplies by n / (n + λ).

The formulas follow Surprise's ``similarities.pyx`` so that the engine reproduces
``KNNWithMeans`` exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from stream_cf.engine.storage import FloatArray

SimilarityName = Literal["cosine", "msd", "pearson", "adjusted_cosine"]
SIMILARITIES: tuple[str, ...] = ("cosine", "msd", "pearson", "adjusted_cosine")

# A centred sum of squares below this fraction of its uncentred terms is rounding noise of an
# exact zero (every co-rated value equals the mean); it is then treated as 0.
_RELATIVE_ZERO = 1e-12


@dataclass(frozen=True)
class Sums:
    """The pair sums of u against many v, over the items both rated (one column per v), as one
    table of six rows: n, Σxy, Σx², Σx, Σy², Σy (x: u's ratings, y: v's; the order of a pair
    cell's lanes, :mod:`stream_cf.engine.pairs`), so u's and v's halves are the row pairs
    (Σx², Σy²) and (Σx, Σy)."""

    table: FloatArray  # 6 x len(v), float64, rows contiguous

    @classmethod
    def of(
        cls,
        *,
        n: FloatArray,
        sx: FloatArray,
        sy: FloatArray,
        sxx: FloatArray,
        syy: FloatArray,
        sxy: FloatArray,
    ) -> Sums:
        return cls(np.stack((n, sxy, sxx, sx, syy, sy)).astype(np.float64, copy=False))

    @property
    def n(self) -> FloatArray:
        out: FloatArray = self.table[0]
        return out

    @property
    def sxy(self) -> FloatArray:
        out: FloatArray = self.table[1]
        return out

    @property
    def sxx(self) -> FloatArray:  # Σx², u's ratings
        out: FloatArray = self.table[2]
        return out

    @property
    def sx(self) -> FloatArray:  # Σx, u's ratings
        out: FloatArray = self.table[3]
        return out

    @property
    def syy(self) -> FloatArray:  # Σy², v's ratings
        out: FloatArray = self.table[4]
        return out

    @property
    def sy(self) -> FloatArray:  # Σy, v's ratings
        out: FloatArray = self.table[5]
        return out

    @property
    def squares(self) -> FloatArray:
        """(Σx², Σy²) as two rows."""
        out: FloatArray = self.table[2::2]
        return out

    @property
    def linear(self) -> FloatArray:
        """(Σx, Σy) as two rows."""
        out: FloatArray = self.table[3::2]
        return out


def _divide(num: FloatArray, den: FloatArray) -> FloatArray:
    """num / den, and 0 where den == 0."""
    out = np.zeros(num.shape)
    np.divide(num, den, out=out, where=den != 0)
    return out


def cosine(s: Sums) -> FloatArray:
    """Cosine over the co-rated items: w_uv = Σxy / sqrt(Σx²·Σy²) (0 if the denominator is 0)."""
    return _divide(s.sxy, np.sqrt(s.sxx * s.syy))


def msd(s: Sums) -> FloatArray:
    """Mean squared difference similarity: w_uv = 1 / (Σ(x − y)² / n + 1).

    Σ(x − y)² = Σx² + Σy² − 2Σxy (exact for integer or half ratings); 0 when n == 0.
    """
    sq = np.maximum(s.sxx + s.syy - 2.0 * s.sxy, 0.0)
    out = np.zeros_like(s.n)
    has = s.n > 0
    out[has] = 1.0 / (sq[has] / s.n[has] + 1.0)
    return out


def pearson(s: Sums) -> FloatArray:
    """Pearson correlation centred on the co-rated means (Surprise's ``pearson``).

    w_uv = (n·Σxy − Σx·Σy) / sqrt((n·Σx² − (Σx)²)·(n·Σy² − (Σy)²)), 0 if the denominator is 0.
    This is n² times num = Σxy − n·x̄·ȳ over den = sqrt(Σx² − n·x̄²)·sqrt(Σy² − n·ȳ²), the
    form Surprise uses, and it stays exact in float64 for integer or half ratings.
    """
    n = s.n
    num = n * s.sxy - s.sx * s.sy
    den = np.sqrt(
        np.maximum(n * s.sxx - s.sx * s.sx, 0.0) * np.maximum(n * s.syy - s.sy * s.sy, 0.0)
    )
    return np.clip(_divide(num, den), -1.0, 1.0)


def adjusted_cosine(s: Sums, mu_u: float, mu_v: FloatArray) -> FloatArray:
    """Cosine centred on each user's overall running mean μ (Papagelis et al. 2005).

    Over the co-rated items, incrementally::

        Σ(x−μ_u)(y−μ_v) = Σxy − μ_v·Σx − μ_u·Σy + n·μ_u·μ_v
        Σ(x−μ_u)²      = Σx² − 2μ_u·Σx + n·μ_u²      (and likewise for v)
        w_uv = Σ(x−μ_u)(y−μ_v) / sqrt(Σ(x−μ_u)² · Σ(y−μ_v)²),  0 if a norm is 0.

    A centred norm within 1e-12 (relative) of 0 is taken as 0, so rounding cannot turn an exact
    zero variance into a spurious similarity.
    """
    # u's and v's halves as two rows side by side (μ_u and μ_v, Σx and Σy, Σx² and Σy²), each
    # product formed once and reused, in the order the formulas above are written (left to
    # right), so the values are those of the plain expressions, bit for bit
    table = s.table  # n, Σxy, Σx², Σx, Σy², Σy
    n, sxy, squares, linear = table[0], table[1], table[2::2], table[3::2]
    mu = np.empty((2, n.size))
    mu[0] = mu_u
    mu[1] = mu_v
    n_mu = n * mu  # n·μ_u, n·μ_v
    n_mu2 = n_mu * mu  # n·μ_u², n·μ_v²
    norms = 2.0 * mu
    norms *= linear  # 2μ_u·Σx, 2μ_v·Σy
    np.subtract(squares, norms, out=norms)
    norms += n_mu2  # Σx² − 2μ_u·Σx + n·μ_u², Σy² − 2μ_v·Σy + n·μ_v²
    floor = squares + n_mu2
    floor *= _RELATIVE_ZERO
    norms[norms <= floor] = 0.0
    num = sxy - mu_v * linear[0]
    num -= mu_u * linear[1]
    num += n_mu[0] * mu_v
    den = norms[0] * norms[1]
    w = _divide(num, np.sqrt(den, out=den))
    np.maximum(w, -1.0, out=w)  # clip to [−1, 1]
    np.minimum(w, 1.0, out=w)
    return w


def implicit_cosine(sxy: FloatArray, norm_u: float, norm_v: FloatArray) -> FloatArray:
    """Cosine on the full weight vectors (implicit feedback, no centring).

    w_uv = Σ_{co-bought} w_ui·w_vi / sqrt(Σ_i w_ui² · Σ_i w_vi²), the norms running over all of
    each user's items (the diagonal of the pair sums); 0 if a norm is 0.
    """
    return np.clip(_divide(sxy, np.sqrt(norm_u * norm_v)), -1.0, 1.0)


def finish(w: FloatArray, n: FloatArray, min_support: int, shrinkage: float) -> FloatArray:
    """Apply the common rules: 0 when n < min_support or n == 0; shrink by n / (n + λ).
    ``w`` is a fresh array of the formula above, changed in place and returned."""
    w[n < max(min_support, 1)] = 0.0  # n is a count: n < 1 covers n == 0
    if shrinkage > 0:
        factor = n + shrinkage
        np.divide(n, factor, out=factor)
        w *= factor
    return w
