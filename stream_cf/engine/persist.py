"""Save and load the whole engine state in a versioned, deterministic ``.npz`` file.

The file is a zip of ``.npy`` members readable by ``np.load(..., allow_pickle=False)``:

- ``meta``: a JSON string (a one-element array) with ``format_version``, the constructor
  ``config``, the user and item id lists by slot (``null`` for a released user slot, whose id
  is gone), the free user slots, the event counter ``seq``, ``n_ratings`` and ``total``;
- ``cells``: the ratings as rows (user slot, item slot) with ``cell_values`` and ``cell_seq``;
- ``sums``: the pair sums of the slots in use (users x users x 4), saved rather than recomputed
  so that continuing after a load is bit-identical to never having saved;
- ``item_count``, ``item_sum`` (Σ of each item's ratings, for the baseline predictor; a file
  without it, from before that member existed, gets it summed from the cells) and ``user_since``.

The zip members carry a fixed timestamp, so the same state always gives the same bytes.
Anything unreadable raises :class:`~stream_cf.exceptions.StateFormatError`.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import numpy.typing as npt

from stream_cf.engine.storage import IdMap
from stream_cf.exceptions import ConfigError, StateFormatError

if TYPE_CHECKING:
    from stream_cf.engine.model import UserKNN

FORMAT_VERSION = 1
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _member(zf: zipfile.ZipFile, name: str, array: npt.NDArray[Any]) -> None:
    info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_STORED
    if array.flags.f_contiguous and not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)  # (write_array would store it Fortran-ordered)
    # a strided block (the pair sums of the slots in use) is written in C order chunk by chunk
    # by write_array, and the member from the buffer's memory: the same bytes as a contiguous
    # copy and getvalue() would give, without two transient copies of the largest array
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=False)
    with buf.getbuffer() as data:
        zf.writestr(info, data)


def save_state(model: UserKNN, target: str | os.PathLike[str] | BinaryIO) -> None:
    """Write ``model``'s state to a path or a binary file object."""
    st = model.state
    nu = st.users.high
    ni = st.items.high
    rows, cols = np.nonzero(st.grid.mask[:nu, :ni])
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": "stream_cf.UserKNN",
        "config": model.config(),
        "users": st.users.to_meta(),
        "items": st.items.to_meta(),
        "seq": st.seq,
        "n_ratings": st.n_ratings,
        "total": st.total,
    }
    arrays: dict[str, npt.NDArray[Any]] = {
        "meta": np.array([json.dumps(meta, sort_keys=True)]),
        "cells": np.stack((rows, cols), axis=1).astype(np.int64),
        "cell_values": st.grid.values[rows, cols],
        "cell_seq": st.grid.seq[rows, cols],
        "sums": st.pairs.sums[:nu, :nu],
        "item_count": st.item_count[:ni],
        "item_sum": st.item_sum[:ni],
        "user_since": st.user_since[:nu],
    }
    if isinstance(target, str | os.PathLike):
        with open(target, "wb") as fh:
            _write(fh, arrays)
    else:
        _write(target, arrays)


def _write(fh: BinaryIO, arrays: dict[str, npt.NDArray[Any]]) -> None:
    with zipfile.ZipFile(fh, "w", allowZip64=True) as zf:
        for name, array in arrays.items():
            _member(zf, name, array)


def load_state(cls: type[UserKNN], source: str | os.PathLike[str] | BinaryIO) -> UserKNN:
    """Read a state written by :func:`save_state`; StateFormatError if it cannot be used."""
    try:
        data = np.load(source, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise StateFormatError(f"not a saved UserKNN state: {exc}") from exc
    try:
        with data:
            arrays = {name: data[name] for name in data.files}
        return _restore(cls, arrays)
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


def _restore(cls: type[UserKNN], arrays: dict[str, npt.NDArray[Any]]) -> UserKNN:
    meta = json.loads(str(arrays["meta"].reshape(-1)[0]))
    if not isinstance(meta, dict) or meta.get("kind") != "stream_cf.UserKNN":
        raise StateFormatError("not a saved UserKNN state (no UserKNN metadata)")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise StateFormatError(
            f"unsupported state format_version {version!r} (this version reads {FORMAT_VERSION})"
        )
    config = dict(meta["config"])
    # a file from before the ``predictor`` keyword was written by the KNNWithMeans estimator
    config.setdefault("predictor", "knn_means")
    config["rating_scale"] = tuple(config["rating_scale"])
    model = cls(**config)
    st = model.state
    st.users = IdMap.from_meta(meta["users"])
    st.items = IdMap.from_meta(meta["items"])
    nu = st.users.high
    ni = st.items.high
    st.ensure(nu, ni)
    cells = arrays["cells"].astype(np.int64).reshape(-1, 2)
    values = arrays["cell_values"].astype(np.float64)
    seqs = arrays["cell_seq"].astype(np.int64)
    sums = arrays["sums"].astype(np.float64)
    if values.shape != (cells.shape[0],) or seqs.shape != values.shape:
        raise StateFormatError("corrupt UserKNN state: cell arrays disagree")
    if sums.shape != (nu, nu, 4):
        raise StateFormatError(f"corrupt UserKNN state: sums shape {sums.shape}, {nu} users")
    if cells.size and (cells[:, 0].max() >= nu or cells[:, 1].max() >= ni or cells.min() < 0):
        raise StateFormatError("corrupt UserKNN state: a cell outside the id lists")
    rows, cols = cells[:, 0], cells[:, 1]
    if np.isnan(values).any():
        raise StateFormatError("corrupt UserKNN state: a NaN rating")
    st.note_values(values)
    st.grid.write(rows, cols, values, seqs, twice=st.twice_ok)
    st.pairs.sums[:nu, :nu] = sums
    st.item_count[:ni] = arrays["item_count"].astype(np.int64).reshape(ni)
    if "item_sum" in arrays:
        st.item_sum[:ni] = arrays["item_sum"].astype(np.float64).reshape(ni)
    else:
        st.item_sum[:ni] = np.bincount(cols, weights=values, minlength=ni)
    st.user_since[:nu] = arrays["user_since"].astype(np.int64).reshape(nu)
    st.seq = int(meta["seq"])
    st.n_ratings = int(meta["n_ratings"])
    st.total = float(meta["total"])
    if st.n_ratings != cells.shape[0]:
        raise StateFormatError("corrupt UserKNN state: n_ratings disagrees with the cells")
    return model
