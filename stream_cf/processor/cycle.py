"""The timing of one loop iteration, phase by phase, for the debug log.

:class:`CycleClock` takes a mark at the end of each phase of an iteration (poll, batch, refresh
slice, publish, commit, the topic check and the checkpoint's snapshot) and logs one debug line per
iteration with each phase's wall time and the loop thread's CPU time in it (``time.thread_time``).
Wall well above CPU means the thread was waiting: for the broker, for a core (other processes), or
for the GIL (kafka-python's I/O and sender threads). It measures and changes nothing.
"""

from __future__ import annotations

import logging
import time

logger = logging.getLogger(__name__)


class CycleClock:
    """Marks of one iteration: ``start()``, then ``mark(phase)`` after each phase, ``log()``."""

    def __init__(self) -> None:
        self._phases: list[tuple[str, float, float]] = []
        self._wall = 0.0
        self._cpu = 0.0
        self._begun = 0.0
        self._on = False

    def start(self) -> None:
        """A new iteration starts now (timed only while the debug log is on: otherwise the marks
        cost nothing)."""
        self._phases.clear()
        self._on = logger.isEnabledFor(logging.DEBUG)
        if not self._on:
            return
        self._wall = self._begun = time.perf_counter()
        self._cpu = time.thread_time()

    def mark(self, phase: str) -> None:
        """``phase`` ended now (its time is counted from the previous mark)."""
        if not self._on:
            return
        wall, cpu = time.perf_counter(), time.thread_time()
        self._phases.append((phase, wall - self._wall, cpu - self._cpu))
        self._wall, self._cpu = wall, cpu

    def log(self, records: int, lists: int) -> None:
        """One debug line: the iteration's records and published lists, each phase's wall and CPU
        milliseconds, and the total wall time."""
        if not self._on:
            return
        parts = " ".join(
            f"{phase} {1000 * wall:.0f}/{1000 * cpu:.0f}" for phase, wall, cpu in self._phases
        )
        logger.debug(
            "cycle: %d records, %d lists; ms wall/cpu: %s; total %.0f ms",
            records,
            lists,
            parts,
            1000 * (time.perf_counter() - self._begun),
        )
