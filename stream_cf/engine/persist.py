"""Save and load the engine state in a versioned, deterministic ``.npz`` file, in proportion to
the ratings.

The file is a zip of ``.npy`` members readable by ``np.load(..., allow_pickle=False)``:

- ``meta``: a JSON string (a one-element array) with ``format_version``, the constructor
  ``config``, the user and item id lists by slot (``null`` for a released user slot, whose id
  is gone), the free user slots, the event counter ``seq``, ``n_ratings``, ``total``,
  ``value_bound`` and whether the pair sums are integers;
- ``cell_user``, ``cell_item`` (int32), ``cell_value``, ``cell_seq``: the ratings, by user slot
  then item slot (24 bytes per rating);
- ``user_since``, ``user_sum``, ``user_sumsq``, ``item_sum``: the running per-user and per-item
  sums as kept (counts are recounted from the cells);
- ``pair_sums``: only when the pair sums are float64 (a value off the half-step grid was stored):
  those are rounded float sums that a recomputation would not reproduce bit for bit. Integer
  pair sums are not saved: :func:`load_state` recomputes them from the ratings
  (:mod:`stream_cf.engine.rebuild`), the same integers, so continuing after a load is
  bit-identical to never having saved and the file grows with the ratings, not with users².
  A model with owned pair rows (``pair_rows="owned"``) saves its ratings only, float or not, and
  loads owning nobody: the processor calls ``own()`` for its users after loading (their rows are
  rebuilt from the ratings, :mod:`stream_cf.engine.ownership`).

Members are stored uncompressed with a fixed timestamp: the same state always gives the same bytes.
Version 1 files (with dense pair sums) are read too: their ratings are kept, their sums rebuilt.
Anything unreadable raises :class:`~stream_cf.exceptions.StateFormatError`.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from stream_cf.engine.config import EngineConfig
from stream_cf.engine.ids import IdMap
from stream_cf.engine.ownership import empty_state, owned_store
from stream_cf.engine.pairs import SCALE
from stream_cf.engine.ratings import Ratings
from stream_cf.engine.rebuild import pair_sum_blocks
from stream_cf.engine.state import EngineState
from stream_cf.engine.storage import RowPool
from stream_cf.exceptions import ConfigError, StateFormatError

FORMAT_VERSION = 2
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _member(zf: zipfile.ZipFile, name: str, array: npt.NDArray[Any]) -> None:
    info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_STORED
    if array.flags.f_contiguous and not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)  # (write_array would store it Fortran-ordered)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=False)
    with buf.getbuffer() as data:
        zf.writestr(info, data)


def save_state(
    st: EngineState, cfg: EngineConfig, target: str | os.PathLike[str] | BinaryIO
) -> None:
    """Write the state to a path or a binary file object."""
    nu = st.users.high
    ni = st.items.high
    ratings = st.ratings
    cells = ratings.live_cells(nu)
    integer = st.pairs is None or st.pairs.integer
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": "stream_cf.UserKNN",
        "config": cfg.keywords(),
        "users": st.users.to_meta(),
        "items": st.items.to_meta(),
        "seq": st.seq,
        "n_ratings": st.n_ratings,
        "total": st.total,
        "value_bound": None if st.value_bound == np.inf else st.value_bound,
        "pairs_integer": integer,
    }
    arrays: dict[str, npt.NDArray[Any]] = {
        "meta": np.array([json.dumps(meta, sort_keys=True)]),
        "cell_user": ratings.cell_user[cells],
        "cell_item": ratings.cell_item[cells],
        "cell_value": ratings.cell_value[cells],
        "cell_seq": ratings.cell_seq[cells],
        "user_since": st.user_since[:nu],
        "user_sum": ratings.user_sum[:nu],
        "user_sumsq": ratings.user_sumsq[:nu],
        "item_sum": ratings.item_sum[:ni],
    }
    if st.pairs is not None and not integer and owned_store(st) is None:
        arrays["pair_sums"] = st.pairs.dense(nu).astype(np.float64)
    if isinstance(target, str | os.PathLike):
        with open(target, "wb") as fh:
            _write(fh, arrays)
    else:
        _write(target, arrays)


def _write(fh: BinaryIO, arrays: dict[str, npt.NDArray[Any]]) -> None:
    with zipfile.ZipFile(fh, "w", allowZip64=True) as zf:
        for name, array in arrays.items():
            _member(zf, name, array)


def load_state(source: str | os.PathLike[str] | BinaryIO) -> tuple[EngineConfig, EngineState]:
    """Read a state written by :func:`save_state`; StateFormatError if it cannot be used."""
    try:
        data = np.load(source, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise StateFormatError(f"not a saved UserKNN state: {exc}") from exc
    try:
        with data:
            arrays = {name: data[name] for name in data.files}
        return _restore(arrays)
    except StateFormatError:
        raise
    except (
        KeyError,
        ValueError,
        TypeError,
        IndexError,
        OSError,
        zipfile.BadZipFile,
        ConfigError,
    ) as exc:
        raise StateFormatError(f"corrupt UserKNN state: {type(exc).__name__}: {exc}") from exc


def _restore(arrays: dict[str, npt.NDArray[Any]]) -> tuple[EngineConfig, EngineState]:
    meta = json.loads(str(arrays["meta"].reshape(-1)[0]))
    if not isinstance(meta, dict) or meta.get("kind") != "stream_cf.UserKNN":
        raise StateFormatError("not a saved UserKNN state (no UserKNN metadata)")
    version = meta.get("format_version")
    if version not in (1, FORMAT_VERSION):
        raise StateFormatError(
            f"unsupported state format_version {version!r} (this version reads 1 and "
            f"{FORMAT_VERSION})"
        )
    config = dict(meta["config"])
    # a file from before the ``predictor`` keyword was written by the KNNWithMeans estimator
    config.setdefault("predictor", "knn_means")
    # ... and one from before ``rank_neighbour_recency`` ranked with every neighbour's item alike
    config.setdefault("rank_neighbour_recency", "none")
    # ... and one from before ``rank_rarity`` counted every shared item alike in w_uv
    config.setdefault("rank_rarity", 0.0)
    config["rating_scale"] = tuple(config["rating_scale"])
    cfg = EngineConfig.create(**config)
    st = empty_state(cfg)
    st.users = IdMap.from_meta(meta["users"])
    st.items = IdMap.from_meta(meta["items"])
    nu = st.users.high
    ni = st.items.high
    if version == 1:
        cells = arrays["cells"].astype(np.int64).reshape(-1, 2)
        users, items = cells[:, 0], cells[:, 1]
        values = arrays["cell_values"].astype(np.float64)
        seqs = arrays["cell_seq"].astype(np.int64)
    else:
        users = arrays["cell_user"].astype(np.int64)
        items = arrays["cell_item"].astype(np.int64)
        values = arrays["cell_value"].astype(np.float64)
        seqs = arrays["cell_seq"].astype(np.int64)
    n = users.size
    if users.shape != (n,) or items.shape != (n,) or values.shape != (n,) or seqs.shape != (n,):
        raise StateFormatError("corrupt UserKNN state: cell arrays disagree")
    if n and (users.max() >= nu or items.max() >= ni or min(users.min(), items.min()) < 0):
        raise StateFormatError("corrupt UserKNN state: a cell outside the id lists")
    if np.isnan(values).any():
        raise StateFormatError("corrupt UserKNN state: a NaN rating")
    if n and np.unique(users * max(ni, 1) + items).size != n:
        raise StateFormatError("corrupt UserKNN state: a rating saved twice")
    if int(meta["n_ratings"]) != n:
        raise StateFormatError("corrupt UserKNN state: n_ratings disagrees with the cells")
    st.ensure(nu, ni)
    st.ratings = _ratings(users, items, values, seqs, nu=nu, ni=ni)
    st.ratings.ensure(max(nu, 1), max(ni, 1))
    _sums_from_cells(st.ratings, users, items, values, nu=nu, ni=ni)  # (for files without them)
    for name, size in (("user_sum", nu), ("user_sumsq", nu), ("item_sum", ni)):
        if name in arrays:
            getattr(st.ratings, name)[:size] = arrays[name].astype(np.float64).reshape(size)
    st.user_since[:nu] = arrays["user_since"].astype(np.int64).reshape(nu)
    st.seq = int(meta["seq"])
    st.n_ratings = n
    st.total = float(meta["total"])
    bound = meta.get("value_bound", 0.0)
    st.value_bound = np.inf if bound is None else float(bound)
    st.note_values(values)
    if st.pairs is not None:
        _restore_pairs(st, arrays, meta, (users, items, values))
    return cfg, st


def _event_order(
    users: npt.NDArray[np.int64], seqs: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """The cells by user, each user's in the order of its events (the order rows are kept in
    while the stream runs; the lists read a row in order without sorting it): one stable sort of
    a combined key (the saved cells come by user, so it is nearly sorted: ~0.15 s for 6.9 million
    cells, where a lexsort takes ~4 s), a lexsort if the key could pass int64."""
    top = int(seqs.max()) + 1 if seqs.size else 1
    if users.size and (int(users.max()) + 1) * top >= 2**62:
        return np.lexsort((seqs, users)).astype(np.int64)
    order: npt.NDArray[np.int64] = np.argsort(users * top + seqs, kind="stable")
    return order


def _ratings(
    users: npt.NDArray[np.int64],
    items: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    seqs: npt.NDArray[np.int64],
    *,
    nu: int,
    ni: int,
) -> Ratings:
    """The ratings with cell ids 0..n-1 in the saved order."""
    out = Ratings()
    n = users.size
    out.cell_user = users.astype(np.int32)
    out.cell_item = items.astype(np.int32)
    out.cell_value = values.copy()
    out.cell_seq = seqs.copy()
    out.cell_high = n
    out.max_value = float(np.max(np.abs(values))) if n else 0.0
    ids = np.arange(n, dtype=np.int64)
    by_user = _event_order(users, seqs)
    out.by_user = RowPool.from_arrays(np.bincount(users, minlength=nu), ids[by_user])
    by_item = np.argsort(items, kind="stable")
    out.by_item = RowPool.from_arrays(np.bincount(items, minlength=ni), ids[by_item])
    out.item_users = RowPool.from_arrays(np.bincount(items, minlength=ni), users[by_item])
    out.item_values = RowPool.from_arrays(
        np.bincount(items, minlength=ni), values[by_item], np.float64
    )
    out.renumber_all(ni)
    out.user_count = np.bincount(users, minlength=nu).astype(np.int64)
    out.item_count = np.bincount(items, minlength=ni).astype(np.int64)
    out.user_sum = np.zeros(nu, dtype=np.float64)
    out.user_sumsq = np.zeros(nu, dtype=np.float64)
    out.item_sum = np.zeros(ni, dtype=np.float64)
    return out


def _sums_from_cells(
    ratings: Ratings,
    users: npt.NDArray[np.int64],
    items: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    *,
    nu: int,
    ni: int,
) -> None:
    """Per-user and per-item sums recomputed (older files did not keep them all)."""
    ratings.user_sum[:nu] = np.bincount(users, weights=values, minlength=nu)
    ratings.user_sumsq[:nu] = np.bincount(users, weights=values * values, minlength=nu)
    ratings.item_sum[:ni] = np.bincount(items, weights=values, minlength=ni)


def _restore_pairs(
    st: EngineState,
    arrays: dict[str, npt.NDArray[Any]],
    meta: dict[str, Any],
    cells: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]],
) -> None:
    """The pair sums: read (float64) or recomputed from the ratings (integers)."""
    pairs = st.pairs
    assert pairs is not None
    nu = st.users.high
    if owned_store(st) is not None:  # no row owned yet: the processor calls own() after loading
        pairs.ensure(nu)
        if not meta.get("pairs_integer", True):
            pairs.to_float()
        return
    if "pair_sums" in arrays:
        saved = arrays["pair_sums"].astype(np.float64)
        if saved.shape != (nu, nu, 4):
            raise StateFormatError(f"corrupt UserKNN state: pair sums of shape {saved.shape}")
        pairs.to_float()
        pairs.set_rows(0, saved)
        return
    users, items, values = cells
    most = int(st.ratings.user_count[:nu].max(initial=0))
    if not meta.get("pairs_integer", True) or not pairs.fits(most, st.value_bound):
        pairs.to_float()
        if owned_store(st) is not None:
            return
        for lo, _hi, block in pair_sum_blocks(users, items, values, nu, scale=None):
            pairs.set_rows(lo, block)
        return
    for lo, _hi, block in pair_sum_blocks(users, items, values, nu, scale=SCALE):
        pairs.set_rows(lo, block.astype(np.int32))
