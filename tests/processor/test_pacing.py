"""Pacing after a start: batches double from small to max_batch, checkpoint delays double from
short to the interval."""

from __future__ import annotations

import time

from stream_cf.processor.pacing import Pacing
from tests.kafka_utils import wait_until


def test_batches_double_up_to_max_batch() -> None:
    pacing = Pacing(max_batch=20_000, checkpoint_interval=30.0)
    limits = []
    for _ in range(10):
        limits.append(pacing.batch_limit)
        pacing.batch_done()
    assert limits == [256, 512, 1024, 2048, 4096, 8192, 16384, 20000, 20000, 20000]
    assert Pacing(max_batch=40, checkpoint_interval=30.0).batch_limit == 40


def test_checkpoints_come_early_then_at_the_interval() -> None:
    pacing = Pacing(max_batch=10, checkpoint_interval=0.3, first_checkpoint=0.05)
    pacing.started()
    assert not pacing.checkpoint_due()
    wait_until(pacing.checkpoint_due, timeout=5, interval=0.01, what="the first checkpoint due")
    delays = []
    for _ in range(4):
        pacing.checkpointed()
        delays.append(pacing._delay)
    assert delays == [0.1, 0.2, 0.3, 0.3]
    started = time.monotonic()
    wait_until(pacing.checkpoint_due, timeout=5, interval=0.01, what="the next checkpoint due")
    assert time.monotonic() - started >= 0.25
