"""The processor's checkpoints: when one is due, what it holds, writing it and the status line.

:class:`Checkpointer` owns the checkpoint's timing (the interval, and the early checkpoints after a
start that pacing.py paces), builds the :class:`~stream_cf.processor.checkpoint.Checkpoint` from the
processor's parts, writes it atomically (checkpoint.py) and logs one status line per checkpoint.
On start it reads the last checkpoint back and checks it fits these settings. The loop (loop.py)
only asks :meth:`Checkpointer.due` and calls :meth:`Checkpointer.write`; why a checkpoint is
written only after every publish before it was acknowledged is explained there.

Writing in the background. :meth:`Checkpointer.write` takes the snapshot in the caller's thread
(the engine's bytes and copies of the tracker's parts: the state the loop acknowledged up to
now), then encodes it and writes it (a temporary file, ``fsync``, ``os.replace``, see
checkpoint.py) in a thread while the loop goes on, so that a checkpoint does not stall the events
behind it. One write at a time: a write waits for the previous one. A write that failed is raised
in the loop at its next :meth:`Checkpointer.due` (StateWriteError: the processor stops, the
previous checkpoint stays whole). The last checkpoint of a run (``wait=True``) is written before
:meth:`Checkpointer.write` returns. A crash (even SIGKILL) while a write runs leaves the previous
checkpoint, whole, and a temporary file that the next start removes.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from stream_cf.engine import UserKNN
from stream_cf.processor.checkpoint import (
    Checkpoint,
    check_compatible,
    read_checkpoint,
    remove_stale_temporaries,
    write_checkpoint,
)
from stream_cf.processor.pacing import Pacing
from stream_cf.processor.settings import ProcessorSettings
from stream_cf.processor.summary import RunSummary
from stream_cf.processor.tracker import ListTracker

logger = logging.getLogger(__name__)

#: The counters a checkpoint carries over from one run to the next.
_COUNTED = ("events", "dead_letters", "published", "tombstones")


class Checkpointer:
    """The checkpoint file of one processor: its timing, its contents, reading and writing it."""

    def __init__(self, settings: ProcessorSettings, pacing: Pacing) -> None:
        self.settings = settings
        self._pacing = pacing
        self._dirty = False
        # counters of the runs before this one (from the checkpoint), the summary's are added
        self.totals: dict[str, int] = {}
        # (monotonic time, events, lists published) at the last checkpoint, for the rates
        self._last_status = (time.monotonic(), 0, 0)
        # the write running in the background, and what it reports when done
        self._writer: threading.Thread | None = None
        self._written: tuple[int, Checkpoint, _Status] | None = None
        self._error: BaseException | None = None

    def list_settings(self) -> dict[str, Any]:
        """The settings the lists depend on beyond the engine's."""
        return {"n": self.settings.n}

    # ------------------------------------------------------------------ timing
    def started(self) -> None:
        """The work starts now: the first checkpoint is timed from here."""
        self._pacing.started()
        self._dirty = False

    def touched(self) -> None:
        """Something changed since the last checkpoint (a batch applied, lists refreshed)."""
        self._dirty = True

    def due(self) -> bool:
        """Whether something changed and the current delay passed since the start or the last
        checkpoint (early after a start, then every ``checkpoint_interval``, see pacing.py).
        Raises the error of a background write that failed."""
        if self._writer is not None and not self._writer.is_alive():
            self.finish()
        return self._dirty and self._pacing.checkpoint_due()

    def finish(self) -> None:
        """Wait for the background write, if any; raise its error if it failed."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.join()
        error, self._error = self._error, None
        if error is not None:
            raise error
        if self._written is not None:
            size, checkpoint, status = self._written
            self._written = None
            self._log_status(checkpoint, status, size)

    def close(self) -> None:
        """Wait for the background write, if any (its error, if any, is logged: the run is
        ending on another error)."""
        try:
            self.finish()
        except Exception as exc:  # noqa: BLE001 - ending on another error: keep that one
            logger.error("the last checkpoint write failed: %s", exc)

    # ------------------------------------------------------------------ reading
    def load(self) -> tuple[UserKNN, Checkpoint | None]:
        """The engine of the last checkpoint and the checkpoint (a new engine and None if there
        is none). ConfigError if it is of another input topic or other engine settings."""
        path = self.settings.checkpoint_path
        remove_stale_temporaries(path)
        checkpoint = read_checkpoint(path)
        wanted = self.settings.engine_config()
        if checkpoint is None:
            logger.info("no checkpoint at %s: starting from the beginning of the input", path)
            return UserKNN(**wanted), None
        engine = UserKNN.load(io.BytesIO(checkpoint.engine))
        # the pair rows' layout (all users', or the owned ones' under --scale-out) changes no
        # result: a checkpoint of either serves, with its own layout
        results = {key: value for key, value in wanted.items() if key != "pair_rows"}
        check_compatible(
            path,
            checkpoint,
            input_topic=self.settings.input_topic,
            wanted=results,
            have={key: engine.config().get(key) for key in results},
        )
        layout = engine.config().get("pair_rows", "all")
        if layout != wanted.get("pair_rows", "all"):
            logger.warning(
                "the checkpoint %s keeps pair rows for %s users, these settings ask for %s: "
                "keeping the checkpoint's layout (start with a new --state-dir to change it)",
                path,
                layout,
                wanted.get("pair_rows"),
            )
        self.totals = dict(checkpoint.counters)
        return engine, checkpoint

    def count_replayed(self, replay: RunSummary) -> None:
        """Exactly-once restart: the replayed batches were counted by the killed run."""
        for name in ("events", "dead_letters", "tombstones"):
            self.totals[name] = self.totals.get(name, 0) + int(getattr(replay, name))

    # ------------------------------------------------------------------ writing
    def write(
        self,
        engine: UserKNN,
        tracker: ListTracker,
        summary: RunSummary,
        *,
        input_offsets: dict[int, int],
        output_offsets: dict[int, int],
        topic_ids: dict[str, str | None],
        event_time_ms: int | None,
        lag: int | None,
        wait: bool = False,
    ) -> Checkpoint:
        """Take the checkpoint from the processor's parts now and write it in the background
        (with ``wait``: before returning); the status line is logged once it is written."""
        self.finish()  # one write at a time (and the previous one's error first)
        buffer = io.BytesIO()
        engine.save(buffer)
        counters = dict(self.totals)
        for name in _COUNTED:
            counters[name] = counters.get(name, 0) + int(getattr(summary, name))
        checkpoint = Checkpoint(
            input_topic=self.settings.input_topic,
            input_offsets=dict(input_offsets),
            output_topic=self.settings.output_topic,
            output_offsets=dict(output_offsets),
            engine=buffer.getvalue(),
            engine_config=self.settings.engine_config(),
            digests=dict(tracker.digests),
            fallback_users=set(tracker.fallback_users),
            pending_users=set(tracker.pending),
            shown={user: sorted(items) for user, items in tracker.shown.items()},
            event_time_ms=event_time_ms,
            counters=counters,
            topic_ids={t: i for t, i in topic_ids.items() if i is not None},
            list_settings=self.list_settings(),
        )
        self._pacing.checkpointed()
        self._dirty = False
        summary.checkpoints += 1
        summary.input_lag = lag
        path = self.settings.checkpoint_path
        status = _Status(
            engine.n_users, summary.events, summary.published, summary.dead_letters, lag
        )

        def run() -> None:
            try:
                size = write_checkpoint(path, checkpoint)
            except BaseException as exc:  # noqa: BLE001 - raised again in the loop's thread
                self._error = exc
                return
            self._written = (size, checkpoint, status)

        self._writer = threading.Thread(target=run, name="stream-cf-checkpoint", daemon=True)
        self._writer.start()
        if wait:
            self.finish()
        return checkpoint

    def _log_status(self, checkpoint: Checkpoint, status: _Status, size: int) -> None:
        now = time.monotonic()
        then, events, published = self._last_status
        elapsed = max(now - then, 1e-9)
        self._last_status = (now, status.events, status.published)
        logger.info(
            "checkpoint: input offsets %s, lag %s records, %d users, %d pending, %d bytes; "
            "since the last checkpoint %.0f events/s, %.0f lists/s; so far %d events, "
            "%d dead letters",
            checkpoint.input_offsets,
            "unknown" if status.lag is None else status.lag,
            status.users,
            len(checkpoint.pending_users),
            size,
            (status.events - events) / elapsed,
            (status.published - published) / elapsed,
            status.events,
            status.dead_letters,
        )


@dataclass(frozen=True)
class _Status:
    """What the status line of a checkpoint reports, as of its snapshot."""

    users: int
    events: int
    published: int
    dead_letters: int
    lag: int | None
