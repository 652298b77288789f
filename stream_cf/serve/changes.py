"""Per-user change notification, from the follower's thread to the event loop's SSE streams.

:meth:`ChangeHub.publish` is the view's listener: it runs in the follower's thread for every
change and, only when someone watches that user, hands the change to the event loop with
``call_soon_threadsafe`` (no cost for the users nobody watches). Each watcher
(:meth:`ChangeHub.watch`) has its own bounded queue: every change reaches it in order, and a
watcher more than ``depth`` changes behind loses the oldest (the newest list always arrives).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterator

from stream_cf.serve.view import Change


class Watcher:
    """One watcher's queue of changes of one user."""

    def __init__(self, user_id: str, depth: int) -> None:
        self.user_id = user_id
        self._changes: deque[Change] = deque(maxlen=depth)
        self._arrived = asyncio.Event()
        self.dropped = 0
        self.closed = False

    def close(self) -> None:
        """The server stops: :meth:`next` returns None at once from now on."""
        self.closed = True
        self._arrived.set()

    def put(self, change: Change) -> None:
        if len(self._changes) == self._changes.maxlen:
            self.dropped += 1
        self._changes.append(change)
        self._arrived.set()

    async def next(self, timeout: float) -> Change | None:
        """The next change, or None after ``timeout`` seconds without one (or once closed)."""
        if not self._changes and not self.closed:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout)
        return self._changes.popleft() if self._changes else None


class ChangeHub:
    """The watchers of each user; bound to the event loop that serves them (:meth:`bind`)."""

    def __init__(self, depth: int = 64) -> None:
        self._depth = depth
        self._watchers: dict[str, set[Watcher]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver changes on ``loop`` (the server's, at start-up)."""
        self._loop = loop

    @property
    def watchers(self) -> int:
        """How many watchers there are (SSE streams open)."""
        return sum(len(group) for group in list(self._watchers.values()))

    def close(self) -> None:
        """Close every watcher (in the event loop, when the server stops): the SSE streams end."""
        self._closed = True
        for group in list(self._watchers.values()):
            for watcher in list(group):
                watcher.close()

    def publish(self, change: Change) -> None:
        """A change from the follower's thread: queued for the user's watchers, if any."""
        loop = self._loop
        if change.user_id in self._watchers and loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between: nobody waits
                loop.call_soon_threadsafe(self._deliver, change)

    @contextlib.contextmanager
    def watch(self, user_id: str) -> Iterator[Watcher]:
        """A watcher of ``user_id`` for the duration of the block (in the event loop)."""
        watcher = Watcher(user_id, self._depth)
        if self._closed:
            watcher.close()
        self._watchers.setdefault(user_id, set()).add(watcher)
        try:
            yield watcher
        finally:
            group = self._watchers.get(user_id)
            if group is not None:
                group.discard(watcher)
                if not group:
                    del self._watchers[user_id]

    def _deliver(self, change: Change) -> None:
        for watcher in list(self._watchers.get(change.user_id, ())):
            watcher.put(change)
