"""The reads a ranked list is computed from, each in as few numpy calls as it takes.

A list (:mod:`stream_cf.engine.ranking`) gathers the raters of the user's items (Σ n_i entries:
~10^6 on a million users with Zipf popularity), the histories of the user's neighbours, and sums
weights per user or per item. These helpers return exactly what the plain reads of
:class:`~stream_cf.engine.ratings.Ratings` would (the same entries in the same order, the same
sums in the same order of addition), only cheaper:

* :func:`raters`: the raters of many items straight from the per-item row pool, without the
  per-entry row index or the values the ranking never reads; long rows are copied as slices.
* :func:`histories`: the neighbours' cells latest first without a sort where each row is already
  stored in the order of its events (a row only leaves that order when a cell is changed again:
  a re-rating or a re-purchase), else with one sort.
* :func:`sum_by`: per-key sums and the keys present, through a bincount over every key slot or,
  when the entries are few next to the slots, over the distinct keys only.
* :func:`group_running_min`: a running minimum that restarts with each group, exact (no offset
  arithmetic), in one 1-D accumulate.
"""

from __future__ import annotations

import numpy as np

from stream_cf.engine.state import EngineState
from stream_cf.engine.storage import FloatArray, Int32Array, IntArray, ranges

PROBE = 64  # users probed per neighbour wanted by ratio_floor
PROBE_FROM = 65_536  # rater entries from which ratio_floor probes (fewer: no floor)
SLICE_FROM = 256  # mean entries per row from which rows are copied as slices (one call per row)
SPARSE_BELOW = 0.25  # entries / key slots under which sum_by sums over the distinct keys only


def row_entries(starts: IntArray, lengths: IntArray, pool: Int32Array) -> Int32Array:
    """``pool[starts[r] : starts[r] + lengths[r]]`` concatenated over the rows r, in order."""
    total = int(lengths.sum())
    if starts.size == 0 or total == 0:
        return np.zeros(0, dtype=np.int32)
    if total >= SLICE_FROM * starts.size:
        # few long rows: a slice copy each (memcpy), no index array of the total's size
        out: Int32Array = np.concatenate(
            [pool[s : s + n] for s, n in zip(starts.tolist(), lengths.tolist(), strict=True)]
        )
        return out
    return pool[ranges(starts, lengths)]


def raters(st: EngineState, items: IntArray) -> tuple[IntArray, Int32Array]:
    """The raters of ``items``, concatenated in the order of ``items`` (within an item in no
    particular order): (raters per item, rater slots) — ``Ratings.items_rows``' raters."""
    pool = st.ratings.item_users
    lengths = pool.length[items]
    return lengths, row_entries(pool.start[items], lengths, pool.pool)


def latest_first_rows(
    st: EngineState, slots: IntArray
) -> tuple[IntArray, IntArray, Int32Array, IntArray]:
    """The cells of the users ``slots`` in the order of ``slots``, each row read backwards:
    (row lengths, position in ``slots`` per cell, cell ids, sequence numbers)."""
    pool = st.ratings.by_user
    lengths = pool.length[slots]
    total = int(lengths.sum())
    ends = pool.start[slots] + lengths - 1
    first = np.cumsum(lengths) - lengths  # each row's first place in the output
    index = np.repeat(ends + first, lengths) - np.arange(total, dtype=np.int64)
    cells = pool.pool[index]
    where = np.repeat(np.arange(slots.size, dtype=np.int64), lengths)
    return lengths, where, cells, st.ratings.cell_seq[cells]


def ratio_floor(total: FloatArray, counts: IntArray, entries: Int32Array, k: int) -> float:
    """A floor under the k-th largest w_v = total[v] / √counts[v] over the users with
    total[v] > 0, from a probe of the users in ``entries`` (each with total ≥ 0; the probe is
    strided, so the same data give the same floor), 0.0 when there is no cheap one.

    Exact for top-k selection: the k-th largest w of a subset is at most the k-th largest of all,
    so every user of the top k (and every user tied with the k-th) has w ≥ floor, and, as
    counts[v] ≥ 1 for a rater, total[v] ≥ w ≥ floor (the float division by √n ≥ 1 rounds to at
    most total[v]): the users with total ≥ floor, then those with w ≥ floor, hold the top k."""
    if entries.size < PROBE_FROM:
        return 0.0
    probe = np.unique(entries[:: max(1, entries.size // (PROBE * k))])
    probe = probe[total[probe] > 0]
    if probe.size < k:
        return 0.0
    w = total[probe] / np.sqrt(counts[probe].astype(np.float64))
    return float(np.partition(w, probe.size - k)[probe.size - k])


def histories(st: EngineState, slots: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    """The cells of the users ``slots``, grouped in the order of ``slots`` and each user's latest
    first: (position in ``slots``, item slot, pos_v(i)) per cell. Sequence numbers are distinct
    within a user, so "latest first" is one order, however it is found."""
    lengths, where, cells, seqs = latest_first_rows(st, slots)
    if seqs.size > 1:
        # a later cell after an earlier one within a row: that row is sorted (in its place)
        later = np.flatnonzero((seqs[1:] > seqs[:-1]) & (where[1:] == where[:-1]))
        if later.size:
            unsorted = np.zeros(slots.size, dtype=np.bool_)
            unsorted[where[later]] = True
            redo = np.flatnonzero(unsorted[where])
            cells[redo] = cells[redo[by_group_latest_first(where[redo], seqs[redo])]]
    items = st.ratings.cell_item[cells].astype(np.int64)
    first = np.cumsum(lengths) - lengths
    pos = np.arange(where.size, dtype=np.int64) - first[where]
    return where, items, pos


def by_group_latest_first(where: IntArray, seqs: IntArray) -> IntArray:
    """The order that groups cells by ``where`` (ascending) and puts each group's latest first
    (the largest sequence number): one sort of a combined key (a lexsort is several times slower),
    or a lexsort when the key could pass int64. The sort is numpy's stable one (timsort): the
    cells come mostly in order, which timsort takes in about linear time; the keys are distinct,
    so the order is the same as any sort's."""
    top = int(seqs.max()) + 1 if seqs.size else 1
    if where.size and (int(where.max()) + 1) * top >= 2**62:
        return np.lexsort((-seqs, where)).astype(np.int64)
    order: IntArray = np.argsort(where * top + (top - 1 - seqs), kind="stable")
    return order


def sum_by(keys: IntArray, weights: FloatArray, high: int) -> tuple[IntArray, FloatArray]:
    """The distinct ``keys`` (ascending, each in [0, high)) and Σ weights per key, each sum taken
    in input order (np.bincount adds in input order, whichever way it is indexed)."""
    if keys.size < SPARSE_BELOW * high:
        distinct, inverse = np.unique(keys, return_inverse=True)
        sums = np.bincount(inverse.ravel(), weights=weights, minlength=distinct.size)
        return distinct.astype(np.int64), sums.astype(np.float64)
    total = np.bincount(keys, weights=weights, minlength=high)
    present = np.flatnonzero(np.bincount(keys, minlength=high)).astype(np.int64)
    return present, total[present].astype(np.float64)


def group_running_min(
    values: FloatArray, groups: IntArray, *, backward: bool = False
) -> FloatArray:
    """The running minimum of ``values`` (finite) within each run of equal ``groups`` (the runs
    contiguous and ascending), forward or backward. One accumulate over complex numbers, which
    numpy orders by the real part, then the imaginary: real = the group, ordered so that each new
    run starts below every earlier one (it restarts the minimum), imaginary = the value (compared
    exactly, never added to)."""
    z = np.empty(values.size, dtype=np.complex128)
    if backward:
        z.real = groups[::-1]
        z.imag = values[::-1]
        out: FloatArray = np.minimum.accumulate(z).imag[::-1].copy()
        return out
    z.real = -groups
    z.imag = values
    out = np.minimum.accumulate(z).imag.copy()
    return out
