"""A small progress line on standard error with the rate in events per second.

Drawn only when the stream is a terminal (``enabled=None``), so pipes, logs and CI stay clean;
redrawn at most every ``interval`` seconds so that it costs nothing per event.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self, TextIO

_WIDTH = 24


def _human(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    """``label [#####.......]  42%  42,000/100,000  12,345 ev/s  eta 5s  (failed 0)``.

    ``total=None`` shows a count without a bar. ``extra`` returns a short text appended to the
    line (for example the failures so far). ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        total: int | None,
        *,
        label: str = "",
        stream: TextIO | None = None,
        enabled: bool | None = None,
        interval: float = 0.25,
        extra: Callable[[], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.label = label
        self.stream: TextIO = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty()) if callable(isatty) else False
        self.enabled = enabled
        self.interval = interval
        self.extra = extra
        self.clock = clock
        self.count = 0
        self.started = clock()
        self._last = -float("inf")
        self._width = 0

    def update(self, n: int = 1) -> None:
        """Count ``n`` more events; redraw when ``interval`` has passed since the last draw."""
        self.count += n
        if self.enabled:
            now = self.clock()
            if now - self._last >= self.interval:
                self._last = now
                self._draw(now)

    def render(self, now: float | None = None) -> str:
        """The progress text (no carriage return)."""
        now = self.clock() if now is None else now
        elapsed = now - self.started
        rate = self.count / elapsed if elapsed > 0 else 0.0
        parts = [self.label] if self.label else []
        if self.total:
            frac = min(self.count / self.total, 1.0)
            filled = int(frac * _WIDTH)
            parts.append(f"[{'#' * filled}{'.' * (_WIDTH - filled)}] {frac:4.0%}")
            parts.append(f"{self.count:,}/{self.total:,}")
        else:
            parts.append(f"{self.count:,}")
        parts.append(f"{rate:,.0f} ev/s")
        if self.total and rate > 0 and self.count < self.total:
            parts.append(f"eta {_human((self.total - self.count) / rate)}")
        if self.extra is not None and (text := self.extra()):
            parts.append(text)
        return "  ".join(parts)

    def _draw(self, now: float) -> None:
        text = self.render(now)
        pad = " " * max(self._width - len(text), 0)
        self._width = len(text)
        self.stream.write("\r" + text + pad)
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state and end the line (nothing when disabled)."""
        if self.enabled:
            self._draw(self.clock())
            self.stream.write("\n")
            self.stream.flush()
            self.enabled = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
