"""When to send each event: as fast as possible, at a fixed rate, or at a speed-up of event time.

The schedule is absolute (event *i* is due at ``start + i / rate``, or at
``start + (ts_i - ts_0) / speedup``), so sleeping late or a slow send does not make the replay
drift: it catches up instead of accumulating delay.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from stream_cf.events import Event
from stream_cf.exceptions import ConfigError


@dataclass(frozen=True)
class Pacing:
    """How to pace a replay.

    ``fast``: no waiting; ``rate``: ``value`` events per second; ``speedup``: ``value`` seconds of
    event time per second of wall time.
    """

    mode: Literal["fast", "rate", "speedup"] = "fast"
    value: float | None = None

    def __post_init__(self) -> None:
        if self.mode == "fast":
            return
        if self.value is None or not math.isfinite(self.value) or self.value <= 0:
            raise ConfigError(f"--{self.mode} must be a positive number, got {self.value}")

    def describe(self) -> str:
        """``as fast as possible``, ``100 events/s`` or ``x3600 of event time``."""
        if self.mode == "rate":
            return f"{self.value:g} events/s"
        if self.mode == "speedup":
            return f"x{self.value:g} of event time"
        return "as fast as possible"


class Pacer:
    """Blocks in :meth:`wait` until the next event is due under a :class:`Pacing`.

    With ``speedup``, an event without ``ts`` is due at once and does not move the clock; the
    first event with a ``ts`` starts event time. ``clock`` and ``sleep`` are injectable for tests.
    """

    def __init__(
        self,
        pacing: Pacing,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.pacing = pacing
        self.clock = clock
        self.sleep = sleep
        self._start: float | None = None
        self._first_ts: float | None = None
        self._index = 0

    def due(self, event: Event) -> float:
        """The clock value at which ``event`` (the next one) is due; advances the schedule."""
        now = self.clock()
        if self._start is None:
            self._start = now
        index, self._index = self._index, self._index + 1
        if self.pacing.mode == "rate":
            assert self.pacing.value is not None
            return self._start + index / self.pacing.value
        if self.pacing.mode == "speedup" and event.ts is not None:
            assert self.pacing.value is not None
            ts = event.ts.timestamp()
            if self._first_ts is None:
                self._first_ts = ts
            return self._start + max(ts - self._first_ts, 0.0) / self.pacing.value
        return now

    def wait(self, event: Event) -> None:
        """Sleep until ``event`` is due (returns at once when it is already due)."""
        if self.pacing.mode == "fast":
            return
        due = self.due(event)
        while (left := due - self.clock()) > 0:
            self.sleep(min(left, 0.5))
