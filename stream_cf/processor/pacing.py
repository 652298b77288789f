"""Pacing after a start: small first batches and early checkpoints, so a crash loop still advances.

After a (re)start with a backlog, a first batch of ``max_batch`` records (20,000 by default), its
lists and a checkpoint of tens of megabytes can take longer than the process lives when it is
killed every few seconds (an OOM killer, a failing liveness probe): the checkpoint then never
moves and every restart redoes the same work. So after every start:

- the batch limit starts at ``first_batch`` records and doubles after each batch, up to
  ``max_batch``;
- the first checkpoint is due ``first_checkpoint`` seconds after the work started, the next
  ones after twice the previous delay, up to ``checkpoint_interval``.

The batch sizes change nothing in the results (see loop.py: with one partition the events are
applied in offset order whatever the batching), and a checkpoint can be written at any iteration.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Pacing:
    """The batch limit and the checkpoint timing of one run (see module doc)."""

    max_batch: int
    checkpoint_interval: float
    first_batch: int = 256
    first_checkpoint: float = 0.5
    batch_limit: int = field(init=False)
    _delay: float = field(init=False)
    _last: float = field(init=False)

    def __post_init__(self) -> None:
        self.batch_limit = min(self.max_batch, self.first_batch)
        self._delay = min(self.checkpoint_interval, self.first_checkpoint)
        self._last = time.monotonic()

    def started(self) -> None:
        """The work starts now (the first checkpoint is timed from here)."""
        self._last = time.monotonic()

    def batch_done(self) -> None:
        """One batch applied: the next may be twice as large."""
        self.batch_limit = min(self.max_batch, 2 * self.batch_limit)

    def checkpoint_due(self) -> bool:
        """Whether the current delay has passed since the start or the last checkpoint."""
        return time.monotonic() - self._last >= self._delay

    def checkpointed(self) -> None:
        """A checkpoint was written: the next is due after twice the delay (at most the
        interval)."""
        self._last = time.monotonic()
        self._delay = min(self.checkpoint_interval, 2 * self._delay)
