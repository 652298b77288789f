"""The per-iteration timer of the loop's debug log (cycle.py): one line per iteration, each phase
with its wall and CPU milliseconds, in the order marked; nothing logged above DEBUG."""

from __future__ import annotations

import logging
import re

import pytest

from stream_cf.processor.cycle import CycleClock

LINE = re.compile(r"cycle: (\d+) records, (\d+) lists; ms wall/cpu: (.*); total (\d+) ms")


def test_one_line_per_iteration_with_each_phase_in_order(caplog: pytest.LogCaptureFixture) -> None:
    clock = CycleClock()
    caplog.set_level(logging.DEBUG, logger="stream_cf.processor.cycle")
    for records in (3, 0):
        clock.start()
        clock.mark("poll")
        sum(range(200_000))  # some CPU in the batch
        clock.mark("batch")
        clock.mark("publish")
        clock.log(records, 2)
    lines = [LINE.fullmatch(r.getMessage()) for r in caplog.records]
    assert len(lines) == 2 and all(lines), [r.getMessage() for r in caplog.records]
    for match, records in zip(lines, (3, 0), strict=True):
        assert match is not None
        assert (int(match.group(1)), int(match.group(2))) == (records, 2)
        phases = re.findall(r"(\w+) (\d+)/(\d+)", match.group(3))
        assert [name for name, _, _ in phases] == ["poll", "batch", "publish"]  # no carry-over


def test_nothing_logged_above_debug(caplog: pytest.LogCaptureFixture) -> None:
    clock = CycleClock()
    caplog.set_level(logging.INFO, logger="stream_cf.processor.cycle")
    clock.start()
    clock.mark("poll")
    clock.log(1, 1)
    assert caplog.records == []
