"""The engine tests' shared fixtures: the item residual off unless a test asks for it, and its
numpy path for the tests of its own internals.

``UserKNN()`` (knn_baseline) pools an item-based residual of K = 40 item neighbours
(:data:`stream_cf.engine.config.DEFAULT_ITEM_RESIDUAL`); the plain reference's item residual
(tests/engine/reference.py: exact fractions over every candidate item) costs hundreds of times
the engine's at every prediction the oracles check. So in tests/engine ``item_residual=None``
stands for 0, and the reference's default is 0 too, except in tests marked
``default_residual``; the residual's own oracle tests draw K explicitly (test_oracle.py's
``item_residual`` tests, test_item_residual.py, test_item_kernel.py), and its code is the same
for every K.

Predictions read the item residual through the compiled kernel when it is built
(:mod:`stream_cf.engine.item_kernel`); tests/engine/test_item_kernel.py checks its bits against
the numpy path. The test below checks the numpy path's own position array, which the kernel does
not use (it marks raters in an array over the user slots), so it runs on the numpy path.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stream_cf.engine import config, item_kernel

NUMPY_PATH_TESTS = {"test_the_position_array_grows_with_the_items_and_stays_clear"}


@pytest.fixture(autouse=True)
def _numpy_item_residual_for_its_internals(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if request.node.originalname in NUMPY_PATH_TESTS:
        monkeypatch.setattr(item_kernel, "KERNEL", None)


REAL_ITEM_RESIDUAL = dict(config.DEFAULT_ITEM_RESIDUAL)  # config.py's, before the patch below


@pytest.fixture(scope="package", autouse=True)
def _item_residual_off() -> Iterator[None]:
    """For the whole package (before any module-scoped fixture builds a model)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(config.DEFAULT_ITEM_RESIDUAL, "knn_baseline", 0)
        yield


@pytest.fixture(autouse=True)
def _item_residual_default_where_asked(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if request.node.get_closest_marker("default_residual") is not None:
        for predictor, k in REAL_ITEM_RESIDUAL.items():
            monkeypatch.setitem(config.DEFAULT_ITEM_RESIDUAL, predictor, k)
