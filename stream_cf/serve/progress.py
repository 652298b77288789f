"""How far the server has read the output topic, and how far the processor has read its input.

The follower records, per output partition, the next offset it will read (``positions``) and the
topic's end (``ends``, the last stable offset: the server reads with ``read_committed``). The
lag is the records between them. Readiness: every partition read up to the end it had when the
server started (:meth:`TopicProgress.caught_up`), once; it is not lost later.

Each list names the input offsets it reflects (``input_offsets``, next offset per input
partition). The highest of these per input partition (``reflected``) against the input topic's
end (``input_ends``) gives the processor's lag as seen from its output: the input records not yet
reflected in any published list (an upper bound: events that changed no list publish nothing),
and their growth over time the processor's throughput in input records per second.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class InputProgress:
    """One input topic as the lists reflect it."""

    topic: str
    reflected: dict[int, int]
    ends: dict[int, int]
    events_per_second: float | None

    @property
    def lag(self) -> int | None:
        """Input records after the reflected offsets (None until the ends are known)."""
        if not self.ends:
            return None
        return sum(max(0, end - self.reflected.get(p, 0)) for p, end in self.ends.items())


@dataclass(frozen=True)
class ProgressSnapshot:
    """A consistent copy of :class:`TopicProgress` for one answer."""

    ready: bool
    positions: dict[int, int]
    ends: dict[int, int]
    lists_per_second: float | None
    inputs: list[InputProgress] = field(default_factory=list)

    @property
    def lag(self) -> int | None:
        """Output records not yet read (None until the ends are known)."""
        if not self.ends:
            return None
        return sum(max(0, end - self.positions.get(p, 0)) for p, end in self.ends.items())


class TopicProgress:
    """Offsets of the output topic and of the input topics its lists reflect (thread-safe)."""

    def __init__(self, window: float = 5.0) -> None:
        self._lock = threading.Lock()
        self._positions: dict[int, int] = {}
        self._ends: dict[int, int] = {}
        self._targets: dict[int, int] | None = None  # the ends at start: ready once reached
        self._ready = threading.Event()
        self._reflected: dict[str, dict[int, int]] = {}
        self._input_ends: dict[str, dict[int, int]] = {}
        self._window = window
        # (monotonic time, records read, {input topic: Σ reflected offsets})
        self._samples: deque[tuple[float, int, dict[str, int]]] = deque()

    @property
    def ready(self) -> bool:
        """Whether the topic was read up to the end it had when the server started."""
        return self._ready.is_set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until ready (or ``timeout`` seconds); whether it is."""
        return self._ready.wait(timeout)

    def start_from(self, ends: dict[int, int]) -> None:
        """The ends when reading starts: ready once every position reaches them."""
        with self._lock:
            self._targets = dict(ends)
            self._ends.update(ends)
        self._check_ready()

    def read_up_to(self, positions: dict[int, int]) -> None:
        """The next offsets to read, after a poll."""
        with self._lock:
            self._positions.update(positions)
        self._check_ready()

    def set_ends(self, ends: dict[int, int]) -> None:
        """The output topic's ends (last stable offsets), from the broker."""
        with self._lock:
            self._ends.update(ends)

    def reflect(self, input_topic: str, offsets: Iterable[tuple[int, int]]) -> None:
        """A list reflects the input up to ``offsets`` (next offset per partition)."""
        with self._lock:
            known = self._reflected.setdefault(input_topic, {})
            for partition, offset in offsets:
                if offset > known.get(partition, -1):
                    known[partition] = offset

    def input_partitions(self) -> dict[str, list[int]]:
        """The input partitions the lists named so far, per topic."""
        with self._lock:
            return {topic: sorted(parts) for topic, parts in self._reflected.items()}

    def set_input_ends(self, topic: str, ends: dict[int, int]) -> None:
        """An input topic's ends, from the broker."""
        with self._lock:
            self._input_ends.setdefault(topic, {}).update(ends)

    def sample(self, records: int, now: float | None = None) -> None:
        """Record the counts now, for the rates (call about once a second)."""
        moment = time.monotonic() if now is None else now
        with self._lock:
            sums = {topic: sum(parts.values()) for topic, parts in self._reflected.items()}
            self._samples.append((moment, records, sums))
            while len(self._samples) > 2 and moment - self._samples[1][0] >= self._window:
                self._samples.popleft()

    def snapshot(self) -> ProgressSnapshot:
        """A copy of the offsets and the rates over the last few seconds."""
        with self._lock:
            lists_rate: float | None = None
            input_rates: dict[str, float] = {}
            if len(self._samples) >= 2:
                (t0, r0, _), (t1, r1, s1) = self._samples[0], self._samples[-1]
                if t1 > t0:
                    lists_rate = (r1 - r0) / (t1 - t0)
                for topic, total in s1.items():
                    # from the oldest sample of the window in which the topic had appeared
                    first = next((sample for sample in self._samples if topic in sample[2]), None)
                    if first is not None and t1 > first[0]:
                        input_rates[topic] = (total - first[2][topic]) / (t1 - first[0])
            inputs = [
                InputProgress(
                    topic=topic,
                    reflected=dict(parts),
                    ends=dict(self._input_ends.get(topic, {})),
                    events_per_second=input_rates.get(topic),
                )
                for topic, parts in sorted(self._reflected.items())
            ]
            return ProgressSnapshot(
                ready=self._ready.is_set(),
                positions=dict(self._positions),
                ends=dict(self._ends),
                lists_per_second=lists_rate,
                inputs=inputs,
            )

    def _check_ready(self) -> None:
        if self._ready.is_set():
            return
        with self._lock:
            targets = self._targets
            reached = targets is not None and all(
                self._positions.get(p, 0) >= end for p, end in targets.items() if end > 0
            )
        if reached:
            self._ready.set()
