"""Pair sums recomputed from the ratings (a checkpoint's load), block of rows by block of rows.

With M the users × items 0/1 matrix of who rated what and V the values (scaled), the sums over
co-rated items of every ordered pair (a, b) are matrix products::

    n = M Mᵀ,   Σ r_a = V Mᵀ,   Σ r_a² = V² Mᵀ,   Σ r_a·r_b = V Vᵀ

computed here with scipy.sparse, ``block_rows`` users at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp  # type: ignore[import-untyped]


def pair_sum_blocks(
    users: npt.NDArray[np.int64],
    items: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    n_users: int,
    *,
    scale: float | None,
    block_rows: int = 512,
) -> Iterator[tuple[int, int, npt.NDArray[np.int64] | npt.NDArray[np.float64]]]:
    """Yield (lo, hi, sums[lo:hi]) for consecutive row ranges; int64 sums of scale·value when
    ``scale`` is given (exact), float64 sums of the values otherwise."""
    n_items = int(items.max()) + 1 if items.size else 1
    v = values * scale if scale is not None else values
    dtype = np.int64 if scale is not None else np.float64
    shape = (n_users, n_items)
    mask = sp.csr_matrix((np.ones(users.size, dtype=dtype), (users, items)), shape=shape)
    val = sp.csr_matrix((v.astype(dtype), (users, items)), shape=shape)
    sq = sp.csr_matrix(((v * v).astype(dtype), (users, items)), shape=shape)
    mask_t = mask.T.tocsr()
    val_t = val.T.tocsr()
    for lo in range(0, n_users, block_rows):
        hi = min(lo + block_rows, n_users)
        out: Any = np.empty((hi - lo, n_users, 4), dtype=dtype)
        out[:, :, 0] = (mask[lo:hi] @ mask_t).toarray()
        out[:, :, 1] = (val[lo:hi] @ mask_t).toarray()
        out[:, :, 2] = (sq[lo:hi] @ mask_t).toarray()
        out[:, :, 3] = (val[lo:hi] @ val_t).toarray()
        yield lo, hi, out
