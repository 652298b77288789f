"""The list's reads (:mod:`stream_cf.engine.gather`) take a path by size: rows copied as slices
or through an index, sums over every key slot or over the distinct keys, neighbours selected
above a probed floor or not. Small test streams take one side of each; here every side is forced
and the lists are compared with the plain reference after every event, and each helper with a
plain computation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream_cf.engine import gather, knn

from .test_oracle import SETTINGS
from .test_ranking import events, lists_match_reference, rank_config

# each side of every size test: (rows as slices, sums over distinct keys, probed floor)
SIDES = {
    "index-dense-plain": {"SLICE_FROM": 10**9, "SPARSE_BELOW": 0.0, "PROBE_FROM": 10**9},
    "slices-sparse-floor": {"SLICE_FROM": 0, "SPARSE_BELOW": 10.0**9, "PROBE_FROM": 0, "PROBE": 1},
}


@contextmanager
def sides(name: str) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for key, value in SIDES[name].items():
            mp.setattr(gather, key, value)
        yield


@pytest.mark.parametrize("side", sorted(SIDES))
@SETTINGS
@given(config=rank_config, raws=events)
def test_every_path_gives_the_reference_lists(
    side: str, config: dict[str, Any], raws: list[tuple[Any, ...]]
) -> None:
    with sides(side):
        lists_match_reference(config, raws)


def test_row_entries_as_slices_or_through_an_index() -> None:
    rng = np.random.default_rng(1)
    pool = rng.integers(0, 1000, 500).astype(np.int32)
    starts = rng.integers(0, 400, 30).astype(np.int64)
    lengths = rng.integers(0, 100, 30).astype(np.int64)
    want = np.concatenate([pool[s : s + n] for s, n in zip(starts, lengths, strict=True)])
    for slice_from in (0, 10**9):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(gather, "SLICE_FROM", slice_from)
            got = gather.row_entries(starts, lengths, pool)
        assert got.dtype == np.int32
        assert np.array_equal(got, want)
    empty = np.zeros(0, dtype=np.int64)
    assert gather.row_entries(empty, empty, pool).size == 0


@given(
    keys=st.lists(st.integers(0, 20), max_size=60),
    sparse=st.booleans(),
)
def test_sum_by_adds_in_input_order_either_way(keys: list[int], sparse: bool) -> None:
    k = np.array(keys, dtype=np.int64)
    weights = np.array([0.1 * (j % 7) + 1e-3 * j for j in range(k.size)], dtype=np.float64)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gather, "SPARSE_BELOW", 10.0**9 if sparse else 0.0)
        distinct, sums = gather.sum_by(k, weights, 21)
    want: dict[int, float] = {}
    for key, weight in zip(keys, weights.tolist(), strict=True):
        want[key] = want.get(key, 0.0) + weight
    assert distinct.tolist() == sorted(want)
    assert sums.tolist() == [want[key] for key in sorted(want)]  # bit for bit


@given(
    runs=st.lists(
        st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=8), max_size=6
    ),
    backward=st.booleans(),
)
def test_group_running_min_restarts_with_each_group(
    runs: list[list[float]], backward: bool
) -> None:
    values = np.array([v for run in runs for v in run], dtype=np.float64)
    groups = np.repeat(np.arange(len(runs), dtype=np.int64), [len(run) for run in runs])
    want: list[float] = []
    for run in runs:
        seq = run[::-1] if backward else run
        acc = list(np.minimum.accumulate(np.array(seq))) if seq else []
        want.extend(acc[::-1] if backward else acc)
    got = gather.group_running_min(values, groups, backward=backward)
    assert got.tolist() == want


@given(
    totals=st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0]), min_size=1, max_size=80),
    counts=st.lists(st.integers(1, 9), min_size=80, max_size=80),
    k=st.integers(1, 6),
    probe=st.integers(1, 4),
)
def test_ratio_floor_keeps_the_top_k(
    totals: list[float], counts: list[int], k: int, probe: int
) -> None:
    """Selecting above the floor gives the same top k (ties included) as selecting over all."""
    total = np.array(totals, dtype=np.float64)
    count = np.array(counts[: total.size], dtype=np.int64)
    since = np.arange(total.size, dtype=np.int64)[::-1].copy()
    entries = np.flatnonzero(total > 0).astype(np.int32)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gather, "PROBE_FROM", 0)
        mp.setattr(gather, "PROBE", probe)
        floor = gather.ratio_floor(total, count, entries, k)
    cand = np.flatnonzero(total > 0)
    w = total[cand] / np.sqrt(count[cand].astype(np.float64))
    want = cand[knn.top_n(w, since[cand], k)]
    kept = np.flatnonzero(total >= floor) if floor > 0 else cand
    wk = total[kept] / np.sqrt(count[kept].astype(np.float64))
    keep = wk >= floor
    got = kept[keep][knn.top_n(wk[keep], since[kept[keep]], k)]
    assert got.tolist() == want.tolist()
