"""Which users' pair-sum rows the state keeps (a scaled-out processor's share), and the rows of
gained users built from the ratings.

With M the users x items 0/1 mask, W the values (times 2 while the sums are int32: every 2·value
an integer) and U the gained users, the owned rows are sparse products over the item axis,
only the channels kept (:func:`~stream_cf.engine.owned.channels_for`)::

    n = M_U Mᵀ    Σx = W_U Mᵀ    Σx² = (W∘W)_U Mᵀ    Σxy = W_U Wᵀ    Σy = M_U Wᵀ    Σy² = M_U (W∘W)ᵀ

the diagonal included ([n_u, Σx, Σx², Σx², Σx, Σx²], as the full store holds it). As in the
full rebuild (:mod:`stream_cf.engine.rebuild`) the popular items go through dense products (BLAS)
and the long tail through scipy.sparse ones (co-raters only). In int32 mode
every partial sum is an integer below 2³¹ (the store is int32 only while
:meth:`~stream_cf.engine.pairs.PairSums.fits` holds), exact in the float64 products in any order:
the rows equal the full store's bit for bit. In float mode the products sum in scipy's order, so
a gained row can differ in the last bits from sums accumulated event by event (as any
re-summation, see :mod:`stream_cf.engine.rebuild`); rows owned since int32 mode stay exact.
"""

from __future__ import annotations

import numpy as np

from stream_cf.engine.config import EngineConfig
from stream_cf.engine.owned import SX, SXX, SXY, SY, SYY, N, OwnedPairSums, channels_for
from stream_cf.engine.pairs import SCALE
from stream_cf.engine.rebuild import DENSE_SHARE
from stream_cf.engine.state import EngineState
from stream_cf.engine.storage import FloatArray, IntArray

BLOCK_ROWS = 256  # gained rows per product (a block: BLOCK_ROWS x users x channels floats)


def empty_state(cfg: EngineConfig) -> EngineState:
    """An empty state keeping the pair sums the configuration asks for (every pair, the owned
    users' rows with the channels its similarity reads, or none)."""
    if cfg.pair_rows == "owned":
        channels = channels_for(cfg.similarity, cfg.implicit)
        return EngineState(pair_sums=True, owned_channels=channels)
    return EngineState(pair_sums=cfg.pair_sums)


def owned_store(st: EngineState) -> OwnedPairSums | None:
    """The state's pair sums when they hold owned rows only."""
    return st.pairs if isinstance(st.pairs, OwnedPairSums) else None


def own(st: EngineState, slots: IntArray) -> int:
    """Own these user slots: build their rows from the ratings. Returns how many were gained
    (slots already owned are left as they are)."""
    store = owned_store(st)
    if store is None:
        return 0
    slots = np.unique(np.asarray(slots, dtype=np.int64))
    slots = slots[[not store.owns(int(s)) for s in slots.tolist()]]
    if slots.size == 0:
        return 0
    n = st.users.high
    store.ensure(n)
    # only the items the gained users rated enter their rows (the other columns of M_U are 0):
    # the cells of those items, so that owning a new user costs its items' raters, not every
    # rating; by user, then item (a canonical order)
    _, theirs, _ = st.ratings.users_rows(slots)
    theirs = np.unique(theirs)
    where, users, values = st.ratings.items_rows(theirs)
    items = theirs[where]
    order = np.lexsort((items, users))
    users, items = users[order].astype(np.int64), items[order].astype(np.int64)
    values = values[order].astype(np.float64)
    w = np.rint(SCALE * values) if store.integer else values
    products = _Products(users, items, w, n)
    rows = store.take_rows(slots)
    dtype = np.int32 if store.integer else np.float64
    for lo in range(0, slots.size, BLOCK_ROWS):
        part = slots[lo : lo + BLOCK_ROWS]
        block = np.empty((part.size, n, len(store.channels)), dtype=dtype)
        for p, ch in enumerate(store.channels):
            product = products.channel(ch, part)
            block[:, :, p] = np.rint(product) if store.integer else product
        store.set_row_block(rows[lo : lo + BLOCK_ROWS], block)
    return int(slots.size)


class _Products:
    """The operands of the products: items rated by at least
    :data:`~stream_cf.engine.rebuild.DENSE_SHARE` of the users as dense users x items arrays
    (BLAS), the others as scipy.sparse (co-raters only), as in the full rebuild."""

    def __init__(self, users: IntArray, items: IntArray, w: FloatArray, n: int) -> None:
        import scipy.sparse as sp  # noqa: PLC0415 (~0.25 s to import: not at start-up)

        n_items = int(items.max()) + 1 if items.size else 1
        raters = np.bincount(items, minlength=n_items)
        popular = raters >= max(1.0, DENSE_SHARE * n)
        dense = popular[items]
        cols = (np.cumsum(popular) - 1)[items[dense]]
        self.dense = {
            "m": np.zeros((n, int(popular.sum()))),
            "w": np.zeros((n, int(popular.sum()))),
        }
        self.dense["m"][users[dense], cols] = 1.0
        self.dense["w"][users[dense], cols] = w[dense]
        self.dense["w2"] = self.dense["w"] * self.dense["w"]
        tail = ~dense
        shape = (n, n_items)
        where = (users[tail], items[tail])
        tw = w[tail]
        self.left = {
            "m": sp.csr_array((np.ones(tw.size), where), shape=shape),
            "w": sp.csr_array((tw, where), shape=shape),
            "w2": sp.csr_array((tw * tw, where), shape=shape),
        }
        self.right = {key: m.T.tocsr() for key, m in self.left.items()}

    def channel(self, ch: int, rows: IntArray) -> FloatArray:
        """One channel's rows (len(rows) x n, float64)."""
        left, right = _RECIPE[ch]
        out: FloatArray = self.dense[left][rows] @ self.dense[right].T
        out += (self.left[left][rows] @ self.right[right]).toarray()
        return out


_RECIPE = {  # channel: (left operand, right operand) of its product
    N: ("m", "m"),
    SX: ("w", "m"),
    SXX: ("w2", "m"),
    SXY: ("w", "w"),
    SY: ("m", "w"),
    SYY: ("m", "w2"),
}


def disown(st: EngineState, slots: IntArray) -> int:
    """Drop these slots' rows (not owned ones are ignored). Returns how many were dropped."""
    store = owned_store(st)
    if store is None:
        return 0
    slots = np.unique(np.asarray(slots, dtype=np.int64))
    held = np.array([store.owns(int(s)) for s in slots.tolist()], dtype=np.bool_)
    store.disown(slots[held] if slots.size else slots)
    return int(held.sum())
