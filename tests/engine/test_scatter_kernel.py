"""The compiled single-cell update of the int32 pair sums gives numpy's words.

``scatter.scatter_cell`` adds one changed cell's deltas into the pair cells through the compiled
``scatter_cell`` of stream_cf/engine/_item_kernel.c where it is built, else by numpy's
fancy-indexed addition. Two models fed the same events, one of them with the kernel off, must
hold the same int32 cells (compared as bytes over the slots in use) after every event of random
sequences with take-backs, and after ML-100K's first 20,000 ratings. With ``CI=true`` the kernel
must be there.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings

from stream_cf.datasets import dataset_available, dataset_events
from stream_cf.engine import UserKNN, scatter
from stream_cf.engine.pairs import PairSums
from tests.engine.strategies import apply_op
from tests.engine.test_user_kernel import events

needs_kernel = pytest.mark.skipif(
    scatter.KERNEL is None, reason="the kernel is not built (no C compiler?)"
)


def used_cells(model: UserKNN) -> bytes:
    """The int32 cells of the slots in use, tile by tile (lower triangle)."""
    pairs = model.state.pairs
    assert isinstance(pairs, PairSums)
    high = model.state.users.high
    if pairs.blocks == 0:  # no user yet: no tile
        return b""
    assert pairs.scatter_ready
    tile = pairs.tiles[0][0].shape[0]
    out = []
    for bi in range(-(-high // tile)):
        for bj in range(bi + 1):
            rows = min(tile, high - bi * tile)
            cols = min(tile, high - bj * tile)
            out.append(np.ascontiguousarray(pairs.tiles[bi][bj][:rows, :cols]).tobytes())
    return b"".join(out)


def test_the_kernel_is_built_in_ci() -> None:
    if os.environ.get("CI", "").lower() != "true":
        pytest.skip("only required where CI=true")
    assert scatter.KERNEL is not None, "stream_cf.engine._item_kernel has no scatter_cell"


@needs_kernel
@settings(max_examples=60, deadline=None)
@given(raws=events)
def test_kernel_equals_numpy_after_every_event(raws: list[tuple[Any, ...]]) -> None:
    compiled, reference = UserKNN(), UserKNN()
    for raw in raws:
        apply_op(compiled, raw)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(scatter, "KERNEL", None)
            apply_op(reference, raw)
        assert used_cells(compiled) == used_cells(reference), raw


@needs_kernel
def test_a_wrong_rater_raises_and_changes_nothing() -> None:
    model = UserKNN()
    for user, item, value in (("a", "x", 4.0), ("b", "x", 3.0), ("c", "x", 5.0)):
        model.rate(user, item, value)
    pairs = model.state.pairs
    assert isinstance(pairs, PairSums)
    before = used_cells(model)
    layout = pairs.layout()
    v_lo, v_hi = pairs.word_tables()
    with pytest.raises(ValueError, match="rater"):
        scatter.scatter_cell(
            pairs.flat(),
            layout,
            1,
            others=np.array([0, 1], dtype=np.int64),  # x itself among the others
            other_twice=np.array([8, 6], dtype=np.int64),
            change=(1, 8, 64),
            words_of=(v_lo, v_hi),
        )
    assert used_cells(model) == before


@needs_kernel
@pytest.mark.skipif(not dataset_available("ml-100k"), reason="ml-100k is not installed")
def test_kernel_equals_numpy_on_movielens() -> None:
    """ML-100K's first 20,000 ratings (two tiles of cells), compared every 5,000."""
    compiled, reference = UserKNN(), UserKNN()
    for n, event in enumerate(dataset_events("ml-100k")[:20000], start=1):
        compiled.apply(event)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(scatter, "KERNEL", None)
            reference.apply(event)
        if n % 5000 == 0:
            assert used_cells(compiled) == used_cells(reference), n
