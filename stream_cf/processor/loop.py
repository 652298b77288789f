"""The processor: input events -> UserKNN -> changed lists on the output topic.

One iteration::

    poll -> decode/validate (bad records -> dead letters) -> UserKNN.apply_many
         -> the actors' lists now (recommend_many), other users whose list may have changed
            -> pending (refresh policy, see tracker.py)
         -> publish the lists whose digest changed, tombstones for forgotten users
         -> wait for every acknowledgement -> commit the group offsets
    then a slice of pending refreshes (bounded time), published and acknowledged the same way;
    every checkpoint_interval seconds and at the end: checkpoint (engine + offsets + digests +
    pending users, one file).

Why this order. The checkpoint is the source of truth on restart (the group offsets only serve
monitoring), and a checkpoint is written only after everything published so far has been
acknowledged, so it never records as published a list that is not on the topic. A crash (even
SIGKILL) before the checkpoint makes the restart re-read the input from the previous checkpoint's
offsets: lists may be published again (at least once), none is lost. To know what is really on the
output topic, a restart reads the output records written after the checkpoint (from the output
offsets it recorded) and takes their digests as the last published ones; so a list published after
the checkpoint and superseded on replay is published again, and the last record per user on the
topic is always the list of the final state. Commit before checkpoint or after makes no difference
to correctness: the committed offsets are never read back.

The processor assigns itself every partition of the input topic (one instance per input topic: the
engine state is global). With one partition the events are applied in offset order, so the same
input gives the same state and the same lists whatever the batch sizes and restarts; with several
partitions each user's events keep their order but the interleaving between partitions depends on
fetch timing.
"""

from __future__ import annotations

import io
import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

from stream_cf.engine import UserKNN
from stream_cf.exceptions import StreamCFError, UndecodableInput
from stream_cf.processor.checkpoint import (
    Checkpoint,
    check_compatible,
    read_checkpoint,
    remove_stale_temporaries,
    write_checkpoint,
)
from stream_cf.processor.codec import SourceRecord, encode_key, encode_recommendations
from stream_cf.processor.consumer import InputConsumer, retrying
from stream_cf.processor.intake import take_in
from stream_cf.processor.metrics import Metric, MetricsServer, processor_metrics
from stream_cf.processor.output_tail import read_output_tail
from stream_cf.processor.publisher import OutgoingRecord, Publisher
from stream_cf.processor.semantics import BatchChecker
from stream_cf.processor.settings import ProcessorSettings
from stream_cf.processor.state_dir import StateDir
from stream_cf.processor.summary import RunSummary
from stream_cf.processor.topics import ensure_topics
from stream_cf.processor.tracker import ChangedList, ListTracker

logger = logging.getLogger(__name__)
_T = TypeVar("_T")


class Processor:
    """The stream processor. ``Processor(settings).run(until_end=True)`` returns a summary."""

    def __init__(self, settings: ProcessorSettings) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self.ready = threading.Event()  # set once restored, assigned and about to poll
        self.engine: UserKNN | None = None
        self.tracker = ListTracker(policy=settings.refresh, n=settings.n)
        self.input = InputConsumer(settings, self._stop.is_set)
        self._output_offsets: dict[int, int] = {}
        self._event_time_ms: int | None = None
        self._totals: dict[str, int] = {}
        # (monotonic time, events, lists published) at the last checkpoint, for the rates
        self._last_status = (time.monotonic(), 0, 0)
        # what /metrics reads (kept up to date by the loop; the server never calls Kafka)
        self._summary = RunSummary()
        self._lag: int | None = None
        self._running = False
        self.metrics_server: MetricsServer | None = None

    @property
    def positions(self) -> dict[int, int]:
        """The next input offset per partition (everything before is applied)."""
        return dict(self.input.positions)

    # ------------------------------------------------------------------ control
    def stop(self) -> None:
        """Ask the loop to finish the current batch, checkpoint and return (thread-safe)."""
        self._stop.set()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        logger.info("received %s: finishing the batch, then stopping", signal.Signals(signum).name)
        self.stop()

    # ------------------------------------------------------------------ run
    def run(
        self,
        *,
        until_end: bool = False,
        install_signal_handlers: bool = True,
        on_batch: Callable[[RunSummary], None] | None = None,
    ) -> RunSummary:
        """Process the input until stopped (SIGINT/SIGTERM or :meth:`stop`), or with
        ``until_end`` until every record the input had at start is processed, every list it
        changed is published, and the offsets are committed and checkpointed."""
        started = time.monotonic()
        summary = self._summary = RunSummary()
        previous: dict[signal.Signals, Any] = {}
        state_dir = StateDir(self.settings.state_dir)
        state_dir.open()  # locked and writable, or ConfigError before anything is done
        publisher: Publisher | None = None
        try:
            if self.settings.metrics_port is not None:
                self.metrics_server = MetricsServer(
                    self.settings.metrics_host,
                    self.settings.metrics_port,
                    collect=self._metrics,
                    ready=lambda: self._running,
                )
                self.metrics_server.start()
            if install_signal_handlers and threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGINT, signal.SIGTERM):
                    previous[sig] = signal.signal(sig, self._on_signal)
            ensure_topics(self.settings)
            engine, positions = self._restore(summary)
            self.input.open(positions)
            summary.start_offsets = dict(self.input.positions)
            self._output_offsets = self._retrying(
                "read the output published after the checkpoint",
                lambda: read_output_tail(
                    self.settings.kafka_config(),
                    self.settings.output_topic,
                    self._output_offsets,
                    self.tracker.record_published,
                ),
            )
            targets: dict[int, int] | None = None
            if until_end:
                targets = self.input.end_offsets()
                logger.info("running until the input end offsets %s", targets)
            publisher = self._retrying(
                "connect the producer",
                lambda: Publisher(
                    self.settings.kafka_config(),
                    stop_requested=self._stop.is_set,
                    backoff_max=self.settings.retry_backoff_max,
                    shutdown_timeout=self.settings.shutdown_timeout,
                    max_request_size=self.settings.max_request_size,
                ),
            )
            try:
                self._loop(
                    engine,
                    publisher=publisher,
                    targets=targets,
                    summary=summary,
                    on_batch=on_batch,
                )
            except UndecodableInput as exc:
                # everything before the unreadable batch is applied and published: keep it
                self._running = False
                logger.error("%s", exc)
                self._checkpoint(engine, summary)
                self.input.commit(final=True)
                raise
            self._checkpoint(engine, summary)
            self.input.commit(final=True)
        finally:
            self._running = False
            self.ready.clear()
            self.input.close()
            if publisher is not None:
                publisher.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self.metrics_server is not None:
                self.metrics_server.close()
            state_dir.close()
        summary.end_offsets = dict(self.input.positions)
        summary.seconds = time.monotonic() - started
        logger.info(
            "stopped (%s): %d events, %d dead letters %s, %d lists recomputed, %d lists and %d "
            "tombstones published in %d batches, %d users still pending, %.1fs",
            summary.stopped_by,
            summary.events,
            summary.dead_letters,
            summary.dead_letter_reasons,
            summary.recomputed,
            summary.published,
            summary.tombstones,
            summary.batches,
            len(self.tracker.pending),
            summary.seconds,
        )
        return summary

    def _loop(
        self,
        engine: UserKNN,
        *,
        publisher: Publisher,
        targets: dict[int, int] | None,
        summary: RunSummary,
        on_batch: Callable[[RunSummary], None] | None,
    ) -> None:
        settings = self.settings
        tracker = self.tracker
        last_checkpoint = time.monotonic()
        dirty = False
        self.ready.set()
        self._running = True
        while True:
            input_done = targets is not None and self.input.reached(targets)
            if input_done and not tracker.pending:
                summary.stopped_by = "until_end"
                return
            if self._stop.is_set():
                summary.stopped_by = "stop"
                return
            records: list[SourceRecord] = []
            if not input_done:
                timeout = 0.0 if tracker.pending else settings.poll_timeout
                records = self.input.poll(targets, timeout)
                if records:
                    t0 = time.perf_counter()
                    outgoing = self._process(engine, records, summary)
                    t1 = time.perf_counter()
                    self._publish(publisher, outgoing, summary)
                    t2 = time.perf_counter()
                    self.input.commit()
                    logger.debug(
                        "batch of %d records: processed in %.3fs, %d records published in "
                        "%.3fs, committed in %.3fs; %d users pending",
                        len(records),
                        t1 - t0,
                        len(outgoing),
                        t2 - t1,
                        time.perf_counter() - t2,
                        len(tracker.pending),
                    )
                    summary.batches += 1
                    self._lag = self.input.lag()
                    dirty = True
                    if on_batch is not None:
                        on_batch(summary)
            if tracker.pending:
                # a short slice while events flow (their actors' lists come first), longer idle
                budget = settings.refresh_budget * (1 if records else 5)
                changed = tracker.drain(engine, budget)
                self._publish(publisher, self._list_records(changed, summary), summary)
                dirty = True
            summary.recomputed = tracker.recomputed
            summary.recommend_seconds = tracker.recompute_seconds
            if dirty and time.monotonic() - last_checkpoint >= settings.checkpoint_interval:
                self._checkpoint(engine, summary)
                last_checkpoint = time.monotonic()
                dirty = False

    # ------------------------------------------------------------------ start-up
    def _restore(self, summary: RunSummary) -> tuple[UserKNN, dict[int, int]]:
        """The engine and the input positions of the checkpoint, or a new engine at the start."""
        path = self.settings.checkpoint_path
        remove_stale_temporaries(path)
        checkpoint = read_checkpoint(path)
        wanted = self.settings.engine_config()
        if checkpoint is None:
            logger.info("no checkpoint at %s: starting from the beginning of the input", path)
            self.engine = UserKNN(**wanted)
            return self.engine, {}
        engine = UserKNN.load(io.BytesIO(checkpoint.engine))
        check_compatible(
            path,
            checkpoint,
            input_topic=self.settings.input_topic,
            wanted=wanted,
            have={key: engine.config().get(key) for key in wanted},
        )
        self.engine = engine
        self._output_offsets = dict(checkpoint.output_offsets)
        self.tracker.digests = dict(checkpoint.digests)
        self.tracker.fallback_users = set(checkpoint.fallback_users)
        self.tracker.pending = set(checkpoint.pending_users)
        if checkpoint.shown is not None:
            self.tracker.restore_shown(checkpoint.shown)
        elif engine.lists_follow_item_counts:
            # written before the lists' items were kept: refresh everyone once
            self.tracker.pending = set(engine.users())
        self._event_time_ms = checkpoint.event_time_ms
        self._totals = dict(checkpoint.counters)
        summary.restored = True
        logger.info(
            "restored checkpoint %s: %d users, %d items, %d users pending, input offsets %s",
            path,
            engine.n_users,
            engine.n_items,
            len(checkpoint.pending_users),
            checkpoint.input_offsets,
        )
        return engine, dict(checkpoint.input_offsets)

    # ------------------------------------------------------------------ the batch
    def _process(
        self, engine: UserKNN, records: list[SourceRecord], summary: RunSummary
    ) -> list[OutgoingRecord]:
        """Apply one batch; return its dead letters, changed lists and tombstones."""
        settings = self.settings
        checker = BatchChecker(engine, implicit=settings.feedback == "implicit")
        intake = take_in(records, settings, checker)
        outgoing = intake.dead_letters
        for reason in intake.reasons:
            summary.dead_letter_reasons[reason] = summary.dead_letter_reasons.get(reason, 0) + 1
        summary.dead_letters += len(intake.reasons)
        events = intake.events
        if intake.event_time_ms is not None and (
            self._event_time_ms is None or intake.event_time_ms > self._event_time_ms
        ):
            self._event_time_ms = intake.event_time_ms
        self.input.advance(records)
        if len(events) < len(records):
            logger.warning(
                "%d of %d records sent to the dead-letter topic %s (total %d: %s)",
                len(records) - len(events),
                len(records),
                settings.dead_letter_topic,
                summary.dead_letters,
                summary.dead_letter_reasons,
            )
        summary.events += len(events)
        if not events:
            return outgoing
        before = self.tracker.before_batch(engine, events)
        started = time.perf_counter()
        try:
            effect = engine.apply_many(events)
        except StreamCFError as exc:
            # BatchChecker follows every rule by which the engine refuses a valid event; reaching
            # this is a bug. The state now holds part of the batch: stop without a checkpoint.
            raise StreamCFError(
                f"the engine refused an event the processor accepted ({exc}); stopping "
                f"without checkpointing this batch"
            ) from exc
        summary.apply_seconds += time.perf_counter() - started
        full = len(records) >= settings.max_batch  # behind: defer every refresh (see tracker)
        now = self.tracker.after_batch(engine, effect, before, defer=full)
        outgoing.extend(self._list_records(self.tracker.recompute(engine, now), summary))
        for user in sorted(effect.forgotten):
            outgoing.append(OutgoingRecord(settings.output_topic, encode_key(user), None))
            summary.tombstones += 1
        return outgoing

    def _list_records(
        self, changed: list[ChangedList], summary: RunSummary
    ) -> list[OutgoingRecord]:
        records = [
            OutgoingRecord(
                self.settings.output_topic,
                encode_key(entry.user),
                encode_recommendations(
                    entry.user,
                    entry.items,
                    entry.fallback,
                    event_time_ms=self._event_time_ms,
                    input_topic=self.settings.input_topic,
                    input_offsets=self.input.positions,
                    ratings=entry.ratings,
                ),
            )
            for entry in changed
        ]
        summary.published += len(records)
        return records

    def _publish(
        self, publisher: Publisher, records: list[OutgoingRecord], summary: RunSummary
    ) -> None:
        if not records:
            return
        ends = publisher.publish(records)
        for (topic, partition), end in ends.items():
            if topic == self.settings.output_topic:
                self._output_offsets[partition] = max(self._output_offsets.get(partition, 0), end)

    # ------------------------------------------------------------------ commit and checkpoint
    def _checkpoint(self, engine: UserKNN, summary: RunSummary) -> None:
        buffer = io.BytesIO()
        engine.save(buffer)
        counters = dict(self._totals)
        for name in ("events", "dead_letters", "published", "tombstones"):
            counters[name] = counters.get(name, 0) + int(getattr(summary, name))
        checkpoint = Checkpoint(
            input_topic=self.settings.input_topic,
            input_offsets=dict(self.input.positions),
            output_topic=self.settings.output_topic,
            output_offsets=dict(self._output_offsets),
            engine=buffer.getvalue(),
            engine_config=self.settings.engine_config(),
            digests=dict(self.tracker.digests),
            fallback_users=set(self.tracker.fallback_users),
            pending_users=set(self.tracker.pending),
            shown={user: sorted(items) for user, items in self.tracker.shown.items()},
            event_time_ms=self._event_time_ms,
            counters=counters,
        )
        size = write_checkpoint(self.settings.checkpoint_path, checkpoint)
        summary.checkpoints += 1
        summary.input_lag = self.input.lag()
        now = time.monotonic()
        then, events, published = self._last_status
        elapsed = max(now - then, 1e-9)
        self._last_status = (now, summary.events, summary.published)
        logger.info(
            "checkpoint: input offsets %s, lag %s records, %d users, %d pending, %d bytes; "
            "since the last checkpoint %.0f events/s, %.0f lists/s; so far %d events, "
            "%d dead letters",
            checkpoint.input_offsets,
            "unknown" if summary.input_lag is None else summary.input_lag,
            engine.n_users,
            len(checkpoint.pending_users),
            size,
            (summary.events - events) / elapsed,
            (summary.published - published) / elapsed,
            summary.events,
            summary.dead_letters,
        )

    # ------------------------------------------------------------------ metrics
    def _metrics(self) -> list[Metric]:
        """The /metrics families (read from the server's thread: plain values, no Kafka)."""
        return processor_metrics(
            self._summary,
            tracker=self.tracker,
            users=0 if self.engine is None else self.engine.n_users,
            lag=self._lag,
            running=self._running,
        )

    # ------------------------------------------------------------------ helpers
    def _retrying(self, what: str, action: Callable[[], _T]) -> _T:
        return retrying(
            what,
            action,
            stop_requested=self._stop.is_set,
            backoff_max=self.settings.retry_backoff_max,
        )
