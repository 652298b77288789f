"""Pair sums rebuilt from the ratings alone (loading a checkpoint that saved only the ratings).

For users a, b and the items both rated (see :mod:`stream_cf.engine.pairs`)::

    sums[a, b] = [n, Σ r_a, Σ r_a², Σ r_a·r_b]        (diagonal: [n_a, Σ r_a, Σ r_a², Σ r_a²])

With M the users x items 0/1 mask and V the values (0 where there is no rating), each channel is
one matrix product over the item axis, and the diagonal needs nothing apart::

    n = M Mᵀ      Σ r_a = V Mᵀ      Σ r_a² = (V∘V) Mᵀ      Σ r_a·r_b = V Vᵀ

An item rated by n_i users costs n_i² multiply-adds per channel, Σ_i n_i² in all, dominated by
the popular items. So the items are split by popularity:

* popular items (rated by at least ``dense_share`` of the users): dense GEMM on the users x
  popular-items matrices, wasteful per item (every pair of users, co-raters or not) but at BLAS
  speed; channels 0-2 share Mᵀ and are one GEMM of the stacked [M; V; V∘V] rows;
* the long tail: scipy.sparse products (CSR users x items by CSR items x users), which touch only
  co-raters, at ~25 ns per co-rater pair against GEMM's ~0.04 ns per pair of users. A product
  carries two sums at once in the two float64 lanes of complex data: a real left operand x
  against 1 + i·v_b gives Σ x + i·Σ x·v_b. So (1 + i·v²) against 1 gives n and Σ v², and v
  against 1 + i·v gives Σ v_a and Σ v_a·v_b: the four channels in two products, or in one when
  the values are integers ≥ 0 and small enough for bit fields (see ``_SparseOperands``).

Rows come out in blocks of ``block_rows`` users by all columns, never a whole n_users x n_users x 4
array. A block is computed channel-major (four (rows, n_users) buffers: the GEMM output, then the
sparse products added a tile of rows at a time) and interleaved into the (rows, n_users, 4) block
tile by tile, while the tile is in cache. With ``workers`` > 1 that many blocks are computed at
once in threads (scipy.sparse, BLAS and numpy's copies release the GIL).

Exactness with ``scale`` (every scale·value an integer w): the blocks hold [n, Σ w_a, Σ w_a²,
Σ w_a·w_b] in int64. Every partial sum of a pair's channel is at most B = C·max(1, max|w|²) in
absolute value, C the largest number of ratings of one user; so the products run in float32 when
B < 2²⁴ and in float64 when B < 2⁵³ (every partial sum is then an integer the float holds, so
every addition is exact, in any order), else in int64, without the dense part and four sparse
products; B ≥ 2⁶³ is refused.

Without ``scale`` the values are arbitrary floats and the blocks float64: each sum is a float sum
in BLAS's or scipy's order, so it can differ from the engine's incremental sums in the last bits
(relative error ~1e-16 per addition), as any re-summation would.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from stream_cf.engine.storage import BoolArray, FloatArray, IntArray

if TYPE_CHECKING:  # scipy is imported where it is used: it costs ~0.25 s at start-up
    import scipy.sparse as sp

DEFAULT_BLOCK_ROWS = 256
"""Users per block. Each block in hand takes block_rows x n_users x 48 bytes (the int64 block and
four float32 channel buffers; 64 bytes with float64 ones), ~200 MB at 16,000 users: one with one
worker, workers + 1 with more. Add the operands (~100 bytes per rating, 12·n_users bytes per
popular item) and one tile's sparse product per worker: measured ~0.3 GB at 16,000 users with one
worker, ~0.7 GB with two."""

DENSE_SHARE = 0.1
"""Items rated by at least this share of the users go to the dense products. A dense item costs
4·n_users² multiply-adds at ~25 G/s, a sparse one ~n_i² pairs at ~25 ns and the scatter of their
results: about even near 10%. On the benchmark (16,000 users) the total is flat from 5% to 15%."""

TILE_ROWS = 32
"""Rows per sparse product and per interleave: the four channels' rows, the dense scratch and the
block's rows of one tile stay in cache (~5 MB at 16,000 users)."""

FLOAT32_EXACT = 1 << 24
FLOAT64_EXACT = 1 << 53
INT64_LIMIT = 1 << 63

AnyArray = npt.NDArray[Any]
Buffers = tuple[AnyArray, AnyArray, AnyArray]  # block, channel buffers (flat), scratch


def pair_sum_blocks(
    users: IntArray,
    items: IntArray,
    values: FloatArray,
    n_users: int,
    *,
    scale: float | None,
    block_rows: int = DEFAULT_BLOCK_ROWS,
    workers: int = 1,
    dense_share: float = DENSE_SHARE,
) -> Iterator[tuple[int, int, AnyArray]]:
    """The pair sums of these ratings, by blocks of rows.

    One entry per rating: user slot ``users[j]`` (in [0, n_users)) rated item slot ``items[j]``
    (≥ 0) ``values[j]``; each (user, item) at most once; users without ratings get zero rows.
    Yields ``(lo, hi, block)`` for consecutive ranges covering [0, n_users), with
    ``block[a - lo, b] = sums[a, b]``, shape (hi − lo, n_users, 4):

    * ``scale`` given (every scale·value must be an integer): int64, exact, in those units:
      [n, Σ s·r_a, Σ (s·r_a)², Σ (s·r_a)(s·r_b)];
    * ``scale=None``: float64 plain sums (float rounding, see the module docstring).

    ``block`` is one of the generator's buffers, overwritten once the next block is asked for:
    copy out what you keep (as the caller writing rows into its own storage does).
    ``workers`` > 1 computes that many blocks at once in threads (use with one BLAS thread).
    ``dense_share``: see :data:`DENSE_SHARE` (0: every item dense; above 1: none).
    The arguments are checked here, before the first block (ValueError).
    """
    if block_rows < 1:
        raise ValueError(f"block_rows must be at least 1, got {block_rows}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    rebuild = _Rebuild(users, items, values, n_users, scale=scale, dense_share=dense_share)
    return rebuild.blocks(block_rows, workers)


class _Rebuild:
    """One rebuild's operands (checked, split into dense and sparse) and its blocks."""

    def __init__(
        self,
        users: IntArray,
        items: IntArray,
        values: FloatArray,
        n_users: int,
        *,
        scale: float | None,
        dense_share: float,
    ) -> None:
        users = np.asarray(users, dtype=np.int64).ravel()
        items = np.asarray(items, dtype=np.int64).ravel()
        values = np.asarray(values, dtype=np.float64).ravel()
        n_users = int(n_users)
        if not users.size == items.size == values.size:
            raise ValueError("users, items and values must have the same length")
        if n_users < 0:
            raise ValueError(f"n_users must be ≥ 0, got {n_users}")
        if users.size and (users.min() < 0 or users.max() >= n_users):
            raise ValueError(f"user slots must be in [0, {n_users})")
        if items.size and items.min() < 0:
            raise ValueError("item slots must be ≥ 0")
        if not np.isfinite(values).all():
            raise ValueError("values must be finite")
        order = np.lexsort((items, users))  # user-major, items ascending: the CSR order
        users, items, values = users[order], items[order], values[order]
        twice = (users[1:] == users[:-1]) & (items[1:] == items[:-1])
        if twice.any():
            j = int(np.flatnonzero(twice)[0])
            raise ValueError(f"user {users[j]} rated item {items[j]} more than once")
        self.n_users = n_users
        most = int(np.bincount(users).max()) if users.size else 0

        data: AnyArray
        if scale is None:
            data = values
            self.out_dtype: type[np.generic] = np.float64
            self.dtype: type[np.generic] = np.float64
        else:
            if not (np.isfinite(scale) and scale > 0):
                raise ValueError(f"scale must be a positive number, got {scale}")
            scaled = values * float(scale)
            if not np.array_equal(scaled, np.rint(scaled)) or (
                scaled.size and np.abs(scaled).max() >= FLOAT64_EXACT
            ):
                raise ValueError(f"every value times scale={scale} must be an integer")
            data = scaled.astype(np.int64)
            self.out_dtype = np.int64
            widest = int(np.abs(data).max()) if data.size else 0
            bound = most * max(1, widest * widest)
            if bound >= INT64_LIMIT:
                raise ValueError("the pair sums of these values would not fit in int64")
            if bound < FLOAT32_EXACT:
                self.dtype = np.float32
            elif bound < FLOAT64_EXACT:
                self.dtype = np.float64
            else:  # no integer GEMM: everything sparse, in int64
                self.dtype = np.int64
                dense_share = np.inf

        raters = np.bincount(items)
        popular = (raters > 0) & (raters >= dense_share * n_users)
        dense = popular[items]
        self.dense = _DenseOperands(
            users[dense],
            items[dense],
            data[dense],
            n_users=n_users,
            popular=popular,
            dtype=self.dtype,
        )
        sparse = ~dense
        self.sparse = _SparseOperands(
            users[sparse],
            items[sparse],
            data[sparse],
            n_users,
            exact=scale is not None,
            lanes=self.dtype != np.int64,
        )

    def blocks(self, block_rows: int, workers: int) -> Iterator[tuple[int, int, AnyArray]]:
        n = self.n_users
        rows = min(block_rows, max(n, 1))
        ranges = [(lo, min(lo + rows, n)) for lo in range(0, n, rows)]
        if workers == 1:
            buffers = self._buffers(rows)
            for lo, hi in ranges:
                yield lo, hi, self._block(lo, hi, buffers)
            return
        # `workers` blocks in flight and one held by the caller, each with its own buffers
        spare = [self._buffers(rows) for _ in range(min(workers + 1, len(ranges)))]
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pair-sums")
        todo = iter(ranges)
        running: deque[tuple[int, int, Future[AnyArray], Buffers]] = deque()

        def submit() -> None:
            for lo, hi in todo:
                buffers = spare.pop()
                running.append((lo, hi, pool.submit(self._block, lo, hi, buffers), buffers))
                return

        try:
            for _ in range(workers):
                submit()
            while running:
                lo, hi, future, buffers = running.popleft()
                block = future.result()
                submit()
                yield lo, hi, block
                spare.append(buffers)  # the caller is done with it
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _buffers(self, rows: int) -> Buffers:
        n = self.n_users
        block = np.empty((rows, n, 4), dtype=self.out_dtype)
        chans = np.empty(4 * rows * n, dtype=self.dtype)
        scratch = np.empty((min(TILE_ROWS, rows), n), dtype=self.dtype)
        return block, chans, scratch

    def _block(self, lo: int, hi: int, buffers: Buffers) -> AnyArray:
        """Rows lo..hi of the sums, in ``buffers``' block."""
        block, flat, scratch = buffers
        k = hi - lo
        chans = flat[: 4 * k * self.n_users].reshape(4, k, self.n_users)  # C-contiguous
        self.dense.products(lo, hi, chans)
        out = block[:k]
        for t0 in range(0, k, TILE_ROWS):
            t1 = min(t0 + TILE_ROWS, k)
            self.sparse.add(lo + t0, lo + t1, chans[:, t0:t1], scratch)
            for r in range(t0, t1, 2):  # two rows at a time: the four channels' writes coalesce
                r2 = min(r + 2, t1)
                for c in range(4):
                    out[r:r2, :, c] = chans[c, r:r2]
        return out


class _DenseOperands:
    """Users x popular-items mask, values and squares, in the product dtype."""

    def __init__(
        self,
        users: IntArray,
        items: IntArray,
        data: AnyArray,
        *,
        n_users: int,
        popular: BoolArray,
        dtype: type[np.generic],
    ) -> None:
        n_cols = int(popular.sum())
        cols = (np.cumsum(popular) - 1)[items]
        self.mask = np.zeros((n_users, n_cols), dtype=dtype)
        self.vals = np.zeros((n_users, n_cols), dtype=dtype)
        self.mask[users, cols] = 1
        self.vals[users, cols] = data
        self.squares = self.vals * self.vals

    def products(self, lo: int, hi: int, chans: AnyArray) -> None:
        """chans (4, hi − lo, n_users) = the dense products of rows lo..hi (0 without any)."""
        if self.mask.shape[1] == 0:
            chans.fill(0)
            return
        k = hi - lo
        left = np.concatenate((self.mask[lo:hi], self.vals[lo:hi], self.squares[lo:hi]))
        np.matmul(left, self.mask.T, out=chans[:3].reshape(3 * k, -1))
        np.matmul(self.vals[lo:hi], self.vals.T, out=chans[3])


class _SparseOperands:
    """The long tail as CSR, users x items on the left (sliced by rows), items x users on the
    right, and its products by tiles of rows.

    The two float64 lanes of complex data carry two sums per product: with one lane of one
    operand zero, (x + i·y)·r = x·r + i·y·r and x·(r + i·s) = x·r + i·x·s exactly (the other
    terms are exact zeros). So (1 + i·v²) against 1 gives [n, Σ v_a²] and v against 1 + i·v
    gives [Σ v_a, Σ v_a·v_b]: two products for the four channels. With a scale and values ≥ 0,
    one product when the bit fields fit in 53 bits (see :meth:`_layout`, per tile):
    1 + v·2^k1 + v²·2^k2 against 1 + i·v gives [n | Σ v_a | Σ v_a²] in the real lane and
    [Σ v_b | Σ v_a·v_b | Σ v_a²·v_b] in the imaginary one. When the sums need int64 (see the
    module docstring), four int64 products.
    """

    def __init__(
        self,
        users: IntArray,
        items: IntArray,
        data: AnyArray,
        n_users: int,
        *,
        exact: bool,
        lanes: bool,
    ) -> None:
        import scipy.sparse as sp  # noqa: PLC0415 (see the TYPE_CHECKING import)

        _, items = np.unique(items, return_inverse=True)
        n_items = int(items.max()) + 1 if items.size else 0
        wide = max(users.size, n_users, n_items) >= np.iinfo(np.int32).max
        index: type[np.signedinteger[Any]] = np.int64 if wide else np.int32
        self.n_items = n_items
        self.indptr = np.zeros(n_users + 1, dtype=index)
        np.cumsum(np.bincount(users, minlength=n_users), out=self.indptr[1:])
        self.cols = items.astype(index)
        by_item = np.argsort(items, kind="stable")
        item_ptr = np.zeros(n_items + 1, dtype=index)
        np.cumsum(np.bincount(items, minlength=n_items), out=item_ptr[1:])
        item_rows = users[by_item].astype(index)

        def right(vals: AnyArray) -> sp.csr_array:
            return sp.csr_array((vals[by_item], item_rows, item_ptr), shape=(n_items, n_users))

        self.data = data
        self.lanes = lanes
        self.packable = exact and lanes and data.size > 0 and int(data.min()) >= 0
        self.widest = int(np.abs(data).max()) if self.packable else 0
        if lanes:
            v = data.astype(np.float64)
            self.left_squares = 1 + 1j * (v * v)
            self.left_values = v.astype(np.complex128)
            self.right_ones = right(np.ones(v.size, dtype=np.complex128))
            self.right_values = right(1 + 1j * v)
        else:
            self.right_ones = right(np.ones_like(data))
            self.right_values = right(data)

    def add(self, lo: int, hi: int, chans: AnyArray, scratch: AnyArray) -> None:
        """chans (4, hi − lo, n_users) += the sparse products of rows lo..hi (``scratch``: at
        least hi − lo rows of n_users, C-contiguous, overwritten)."""
        import scipy.sparse as sp  # noqa: PLC0415 (see the TYPE_CHECKING import)

        p0, p1 = int(self.indptr[lo]), int(self.indptr[hi])
        if p0 == p1:
            return
        ptr = self.indptr[lo : hi + 1] - p0
        dense = scratch[: hi - lo]

        def product(left_data: AnyArray, right: sp.csr_array) -> sp.csr_array:
            left = sp.csr_array((left_data, self.cols[p0:p1], ptr), shape=(hi - lo, self.n_items))
            result: sp.csr_array = left @ right
            return result

        def scatter(c: int, prod: sp.csr_array, vals: AnyArray) -> None:
            prod.data = vals.astype(dense.dtype)  # same pattern, this channel's values
            dense.fill(0)  # (toarray(out=) zeroes it in recent scipy, not in every one)
            prod.toarray(out=dense)
            chans[c] += dense

        if not self.lanes:
            v = self.data[p0:p1]
            for c, (left_data, right) in enumerate(
                [
                    (np.ones_like(v), self.right_ones),
                    (v, self.right_ones),
                    (v * v, self.right_ones),
                    (v, self.right_values),
                ]
            ):
                prod = product(left_data, right)
                scatter(c, prod, prod.data)
            return
        layout = self._layout(int(np.diff(ptr).max())) if self.packable else None
        if layout is not None:
            k1, k2 = layout
            v = self.data[p0:p1]
            prod = product(
                (1 + (v << k1) + ((v * v) << k2)).astype(np.complex128), self.right_values
            )
            real = prod.data.real.astype(np.int64)
            imag = prod.data.imag.astype(np.int64)
            low, mid = (1 << k1) - 1, (1 << (k2 - k1)) - 1
            fields = [real & low, (real >> k1) & mid, real >> k2, (imag >> k1) & mid]
            for c, field in enumerate(fields):
                scatter(c, prod, field)
            return
        counts = product(self.left_squares[p0:p1], self.right_ones)  # n + i·Σ v_a²
        sums = product(self.left_values[p0:p1], self.right_values)  # Σ v_a + i·Σ v_a·v_b
        lanes = [counts.data, sums.data]  # (scatter replaces each product's data)
        scatter(0, counts, lanes[0].real)
        scatter(2, counts, lanes[0].imag)
        scatter(1, sums, lanes[1].real)
        scatter(3, sums, lanes[1].imag)

    def _layout(self, most: int) -> tuple[int, int] | None:
        """Bit offsets (k1, k2) of the packed product's fields for rows of at most ``most``
        ratings, or None when they do not fit in 53 bits. With values in [0, r] a pair's fields
        are at most: n ≤ most, Σ v_b ≤ r·most (low); Σ v_a ≤ r·most, Σ v_a·v_b ≤ r²·most (mid);
        Σ v_a² ≤ r²·most, Σ v_a²·v_b ≤ r³·most (high), all sums of non-negative integers."""
        r = self.widest
        k1 = max(most, r * most).bit_length()
        k2 = k1 + (r * r * most).bit_length()
        if k2 + max(r * r * most, r**3 * most).bit_length() > 53:
            return None
        return k1, k2
