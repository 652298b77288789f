"""The engine tests' shared fixture: the item residual's numpy path for the tests of its own
internals.

Predictions read the item residual through the compiled kernel when it is built
(:mod:`stream_cf.engine.item_kernel`); tests/engine/test_item_kernel.py checks its bits against
the numpy path. The test below checks the numpy path's own position array, which the kernel does
not use (it marks raters in an array over the user slots), so it runs on the numpy path.
"""

from __future__ import annotations

import pytest

from stream_cf.engine import item_kernel

NUMPY_PATH_TESTS = {"test_the_position_array_grows_with_the_items_and_stays_clear"}


@pytest.fixture(autouse=True)
def _numpy_item_residual_for_its_internals(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if request.node.originalname in NUMPY_PATH_TESTS:
        monkeypatch.setattr(item_kernel, "KERNEL", None)
