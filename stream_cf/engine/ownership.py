"""Which users' pair-sum rows the state keeps (a scaled-out processor's share), and the rows of
gained users built from the ratings.

With M the users x items 0/1 mask, W the values (times 2 while the sums are int32: every 2·value
an integer) and U the gained users, the owned rows are sparse products over the item axis,
only the channels kept (:func:`~stream_cf.engine.owned.channels_for`)::

    n = M_U Mᵀ    Σx = W_U Mᵀ    Σx² = (W∘W)_U Mᵀ    Σxy = W_U Wᵀ    Σy = M_U Wᵀ    Σy² = M_U (W∘W)ᵀ

the diagonal included ([n_u, Σx, Σx², Σx², Σx, Σx²], as the full store holds it). In int32 mode
every partial sum is an integer below 2³¹ (the store is int32 only while
:meth:`~stream_cf.engine.pairs.PairSums.fits` holds), exact in the float64 products in any order:
the rows equal the full store's bit for bit. In float mode the products sum in scipy's order, so
a gained row can differ in the last bits from sums accumulated event by event (as any
re-summation, see :mod:`stream_cf.engine.rebuild`); rows owned since int32 mode stay exact.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from stream_cf.engine.config import EngineConfig
from stream_cf.engine.owned import SX, SXX, SXY, SY, SYY, N, OwnedPairSums, channels_for
from stream_cf.engine.pairs import SCALE
from stream_cf.engine.state import EngineState
from stream_cf.engine.storage import IntArray

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
    cells = st.ratings.live_cells(n)
    users = st.ratings.cell_user[cells].astype(np.int64)
    items = st.ratings.cell_item[cells].astype(np.int64)
    values = st.ratings.cell_value[cells].astype(np.float64)
    w = np.rint(SCALE * values) if store.integer else values
    n_items = int(items.max()) + 1 if items.size else 1
    shape = (n, n_items)
    mask = sp.csr_array((np.ones(users.size), (users, items)), shape=shape)
    vals = sp.csr_array((w, (users, items)), shape=shape)
    squares = sp.csr_array((w * w, (users, items)), shape=shape)
    right = {"m": mask.T.tocsr(), "w": vals.T.tocsr(), "w2": squares.T.tocsr()}
    recipe = {  # channel: (left, right)
        N: (mask, "m"),
        SX: (vals, "m"),
        SXX: (squares, "m"),
        SXY: (vals, "w"),
        SY: (mask, "w"),
        SYY: (mask, "w2"),
    }
    rows = store.take_rows(slots)
    dtype = np.int32 if store.integer else np.float64
    for lo in range(0, slots.size, BLOCK_ROWS):
        part = slots[lo : lo + BLOCK_ROWS]
        block = np.empty((part.size, n, len(store.channels)), dtype=dtype)
        for p, ch in enumerate(store.channels):
            left, key = recipe[ch]
            product = (left[part] @ right[key]).toarray()
            block[:, :, p] = np.rint(product) if store.integer else product
        store.set_row_block(rows[lo : lo + BLOCK_ROWS], block)
    return int(slots.size)


def disown(st: EngineState, slots: IntArray) -> int:
    """Drop these slots' rows (not owned ones are ignored). Returns how many were dropped."""
    store = owned_store(st)
    if store is None:
        return 0
    slots = np.unique(np.asarray(slots, dtype=np.int64))
    held = np.array([store.owns(int(s)) for s in slots.tolist()], dtype=np.bool_)
    store.disown(slots[held] if slots.size else slots)
    return int(held.sum())
