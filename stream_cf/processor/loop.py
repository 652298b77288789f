"""The processor: input events -> UserKNN -> changed lists on the output topic.

One iteration::

    poll -> decode/validate (bad records -> dead letters) -> UserKNN.apply_many
         -> the actors' lists now, the user of the oldest event first, each list whose digest
            changed handed to the producer as soon as it is computed (at least once); other
            users whose list may have changed -> pending (refresh policy, see tracker.py)
         -> a slice of pending refreshes (bounded time: while input keeps coming, at most a
            quarter of the batch's time, see BUSY_SHARE)
         -> publish the lists whose digest changed, tombstones for forgotten users, dead
            letters -> wait for every acknowledgement -> commit the group offsets
    every checkpoint_interval seconds and at the end: checkpoint (engine + offsets + digests +
    pending users, one file; the snapshot is taken in the loop, the file written in a background
    thread, see checkpointing.py).

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

The processor assigns itself every partition of the input topic (by default one instance per input
topic: the engine state is global; with ``--scale-out`` several instances in one group each read
every partition and own the users of the partitions the group gives them, see scaleout.py).
With one partition the events are applied in offset order, so the same
input gives the same state and the same lists whatever the batch sizes and restarts; with several
partitions each user's events keep their order but the interleaving between partitions depends on
fetch timing.

Operators' actions (see topic_watch.py, topic_guard.py and pacing.py). The checkpoint records the
Kafka ids of the input and output topics and the list length ``n``. An output topic deleted or
re-created (its id changed, or it ends before the checkpointed offsets, or a publish finds it gone)
is re-created compacted and every user's list is published again. An input topic re-created under
a checkpoint stops the run (exit status 2) unless ``--accept-new-input-topic``. A changed ``n``
refreshes every list. After every start the batches start small and the checkpoints come early, so
that a process killed every few seconds still moves its checkpoint forward.

Exactly once (``--guarantee exactly-once``, see transactions.py). Each publish above is one Kafka
transaction holding the batch's records and the input positions (the group offsets are then the
committed output's position, not only for monitoring), and a checkpoint is written only after the
transactions up to its offsets committed. On restart, after fencing the predecessor, the input
from the checkpoint's offsets to the group's committed ones is applied again without publishing
(those batches' outputs are committed already); the users it touched are owed a recomputation,
and the committed output after the checkpoint (read back) says which lists are on the topic, so
only the lists that differ are published. With one partition the replayed state is the one whose
lists were committed, so no committed list is contradicted without being superseded, and each dead
letter is committed once.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

from stream_cf.engine import UserKNN
from stream_cf.exceptions import (
    UndecodableInput,
)
from stream_cf.processor.batch import BatchProcessor
from stream_cf.processor.checkpointing import Checkpointer
from stream_cf.processor.codec import SourceRecord
from stream_cf.processor.consumer import InputConsumer, Retrying
from stream_cf.processor.cycle import CycleClock
from stream_cf.processor.delivery import Delivery
from stream_cf.processor.metrics import Metric, MetricsServer, processor_metrics
from stream_cf.processor.pacing import Pacing
from stream_cf.processor.publisher import OutgoingRecord
from stream_cf.processor.scaleout import ScaleOut
from stream_cf.processor.settings import ProcessorSettings
from stream_cf.processor.state_dir import StateDir
from stream_cf.processor.summary import RunSummary
from stream_cf.processor.topic_guard import TopicGuard
from stream_cf.processor.topic_watch import TopicWatch
from stream_cf.processor.topics import ensure_topics
from stream_cf.processor.tracker import ListTracker
from stream_cf.processor.transactions import committed_by_this_topic

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

#: While input keeps coming, the pending-refresh slice of an iteration takes at most this share of
#: the time its batch took (and at most ``refresh_budget``): the event-driven lists come first.
BUSY_SHARE = 0.25


class Processor:
    """The stream processor. ``Processor(settings).run(until_end=True)`` returns a summary."""

    def __init__(self, settings: ProcessorSettings) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self._retrying = Retrying(self._stop.is_set, settings.retry_backoff_max)
        self.ready = threading.Event()  # set once restored, assigned and about to poll
        self.engine: UserKNN | None = None
        self.tracker = ListTracker(policy=settings.refresh, n=settings.n)
        self.input = InputConsumer(settings, self._stop.is_set)
        self.scaleout = ScaleOut(settings, self._stop.is_set)
        if settings.scale_out:
            self.tracker.owns = self.scaleout.ownership.owns
        self.batch = BatchProcessor(settings, self.tracker, self.input, self.scaleout)
        self.guard = TopicGuard(settings)
        self.topics = TopicWatch(settings, self.guard, self.tracker, self._stop.is_set)
        self.delivery = Delivery(settings, self.input, self.guard, self.topics, self._stop.is_set)
        self.pacing = Pacing(settings.max_batch, settings.checkpoint_interval)
        self.checkpointer = Checkpointer(settings, self.pacing)
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
            self.topics.read_ids()
            engine, positions = self._restore(summary)
            self.input.open(positions)
            summary.start_offsets = dict(self.input.positions)
            # exactly-once: fences the predecessor and ends its transaction before anything is read
            self.delivery.connect()
            if self.settings.exactly_once:
                self._replay_committed(engine, summary)
            self.topics.read_output_tail(engine)
            self.scaleout.start(len(self.input.partitions))
            if not self.settings.scale_out:  # one instance owns every partition's users
                summary.owned_partitions = sorted(tp.partition for tp in self.input.partitions)
            if self.settings.scale_out:
                self._catch_up(engine, summary)
                self.scaleout.join()
            targets: dict[int, int] | None = None
            if until_end:
                targets = self.input.end_offsets()
                logger.info("running until the input end offsets %s", targets)
            try:
                self._loop(
                    engine,
                    targets=targets,
                    summary=summary,
                    on_batch=on_batch,
                )
            except UndecodableInput as exc:
                # everything before the unreadable batch is applied and published: keep it
                self._running = False
                logger.error("%s", exc)
                self.delivery.commit_final(engine)
                self._checkpoint(engine, summary, wait=True)
                raise
            self.delivery.commit_final(engine)
            self._checkpoint(engine, summary, wait=True)
        finally:
            self._running = False
            self.ready.clear()
            self.checkpointer.close()  # a background write still running ends first
            self.scaleout.close()
            self.input.close()
            self.delivery.close()
            self.guard.close()
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
        targets: dict[int, int] | None,
        summary: RunSummary,
        on_batch: Callable[[RunSummary], None] | None,
    ) -> None:
        settings = self.settings
        tracker = self.tracker
        pacing = self.pacing
        checkpointer = self.checkpointer
        checkpointer.started()
        self.ready.set()
        self._running = True
        scaleout = self.scaleout
        clock = CycleClock()
        while True:
            clock.start()
            # scale-out: rebalances. In one (revoked, not yet assigned) the poll waits a little:
            # the join and sync with the coordinator progress only while it is polled
            handover = scaleout.poll(
                engine, tracker, summary, wait=0.0 if scaleout.settled else 0.2
            )
            if handover:
                self.delivery.publish(engine, handover)
            input_done = targets is not None and self.input.reached(targets)
            if input_done and not tracker.pending and scaleout.settled:
                summary.stopped_by = "until_end"
                return
            if self._stop.is_set():
                summary.stopped_by = "stop"
                return
            records: list[SourceRecord] = []
            outgoing: list[OutgoingRecord] = []
            batch_seconds = 0.0
            if not input_done:
                busy = tracker.pending and scaleout.settled
                timeout = 0.0 if busy else settings.poll_timeout
                limit = pacing.batch_limit
                records = self.input.poll(targets, timeout, limit)
                clock.mark("poll")
                if records:
                    t0 = time.perf_counter()
                    outgoing = self.batch.process(
                        engine,
                        records,
                        summary,
                        full=self._behind(records, limit),
                        dispatch=self.delivery.dispatch,
                    )
                    pacing.batch_done()
                    batch_seconds = time.perf_counter() - t0
                    logger.debug(
                        "batch of %d records: processed in %.3fs, %d records; %d users pending",
                        len(records),
                        batch_seconds,
                        len(outgoing),
                        len(tracker.pending),
                    )
                    summary.batches += 1
                    checkpointer.touched()
                    clock.mark("batch")
            if tracker.pending and scaleout.settled:
                # a short slice, then back to the input: an event arriving meanwhile waits for
                # one slice at most (its actor's list comes first). While records keep coming the
                # slice is at most BUSY_SHARE of the batch's time (at least one list), so that a
                # cycle stays short and the batches small; idle, the whole budget
                budget = settings.refresh_budget
                if records:
                    budget = min(budget, BUSY_SHARE * batch_seconds)
                t3 = time.perf_counter()
                recomputed = tracker.recomputed
                changed = tracker.drain(engine, budget)
                logger.debug(
                    "refresh slice: %d lists in %.3fs (budget %.3fs), %d users pending",
                    tracker.recomputed - recomputed,
                    time.perf_counter() - t3,
                    budget,
                    len(tracker.pending),
                )
                outgoing.extend(self.batch.list_records(changed, summary))
                checkpointer.touched()
                clock.mark("slice")
            # the batch's records (at least once: already handed to the producer as computed)
            # and the slice's lists, acknowledged together (exactly once: with the input
            # positions, in one transaction); then the group offsets (at least once: for
            # monitoring; scale-out: the owned partitions' applied and published positions)
            t4 = time.perf_counter()
            self.delivery.publish(engine, outgoing)
            clock.mark("publish")
            if records:
                self.input.commit()
                scaleout.commit(self.input.positions)
                clock.mark("commit")
                logger.debug(
                    "%d records published and committed in %.3fs",
                    len(outgoing),
                    time.perf_counter() - t4,
                )
                self._lag = self.input.lag()
                if on_batch is not None:
                    on_batch(summary)
            scaleout.build_rows(engine, settings.refresh_budget)  # gained users' pair rows
            summary.recomputed = tracker.recomputed
            summary.recommend_seconds = tracker.recompute_seconds
            if checkpointer.due():
                self.topics.check(engine)
                clock.mark("topics")
                scaleout.trim()
                self._checkpoint(engine, summary)
                clock.mark("checkpoint")
            if records or outgoing:
                clock.log(len(records), len(outgoing))

    def _behind(self, records: list[SourceRecord], limit: int) -> bool:
        """Whether the processor is catching up: the batch filled its limit and at least a
        first batch's worth of records (pacing.py, capped at the limit) was already waiting
        behind it (the last fetch's high watermarks; unknown counts as behind). A batch that is
        full only because the limit is still small after a start while the input is nearly
        drained is not behind: its actors' lists are the latency-critical ones."""
        if len(records) < limit:
            return False
        lag = self.input.lag()  # the positions are not advanced past ``records`` yet
        return lag is None or lag - len(records) >= min(limit, self.pacing.first_batch)

    # ------------------------------------------------------------------ start-up
    def _restore(self, summary: RunSummary) -> tuple[UserKNN, dict[int, int]]:
        """The engine and the input positions of the checkpoint, or a new engine at the start."""
        engine, checkpoint = self.checkpointer.load()
        self.engine = engine
        if checkpoint is None:
            return engine, {}
        self.tracker.digests = dict(checkpoint.digests)
        self.tracker.fallback_users = set(checkpoint.fallback_users)
        self.tracker.pending = set(checkpoint.pending_users)
        if checkpoint.shown is not None:
            self.tracker.restore_shown(checkpoint.shown)
        elif engine.lists_follow_item_counts:
            # written before the lists' items were kept: refresh everyone once
            self.tracker.pending = set(engine.users())
        self.batch.event_time_ms = checkpoint.event_time_ms
        summary.restored = True
        positions = self.topics.check_restored(engine, checkpoint)
        if checkpoint.list_settings != self.checkpointer.list_settings():
            logger.warning(
                "the lists were computed with %s, these settings ask for %s: refreshing every "
                "user's list (%d users)",
                checkpoint.list_settings,
                self.checkpointer.list_settings(),
                engine.n_users,
            )
            self.tracker.pending = set(engine.users())
        logger.info(
            "restored checkpoint %s: %d users, %d items, %d users pending, input offsets %s",
            self.settings.checkpoint_path,
            engine.n_users,
            engine.n_items,
            len(checkpoint.pending_users),
            checkpoint.input_offsets,
        )
        return engine, positions

    def _catch_up(self, engine: UserKNN, summary: RunSummary) -> None:
        """Scale-out: apply the input up to its end offsets now before joining the group, owning
        nobody and publishing nothing (the lists owed wait in pending; dead letters and
        forgotten users are held, see scaleout.py)."""
        targets = self.input.end_offsets()
        started = time.monotonic()
        before = summary.events
        while not self.input.reached(targets) and not self._stop.is_set():
            records = self.input.poll(targets, self.settings.poll_timeout)
            if records:
                self.batch.process(engine, records, summary, full=True)
                summary.batches += 1
                self.checkpointer.touched()
        logger.info(
            "caught up to %s before joining group %s: %d events in %.1fs",
            targets,
            self.settings.group_id,
            summary.events - before,
            time.monotonic() - started,
        )

    def _replay_committed(self, engine: UserKNN, summary: RunSummary) -> None:
        """Exactly-once restart: apply the input from the checkpoint's positions up to the group's
        committed offsets without publishing (those batches' lists, tombstones and dead letters
        are committed already). Their users' lists are owed a recomputation (the batches are
        deferred, see tracker.py); the output tail read next tells which of them are on the
        topic. Offsets committed on another topic of this name are ignored."""
        topic_id = self.topics.ids.get(self.settings.input_topic)
        committed = self._retrying("read the committed offsets", self.input.committed_offsets)
        ends = self.input.end_offsets()
        targets: dict[int, int] = {}
        for partition, (offset, metadata) in committed.items():
            if offset <= self.input.positions.get(partition, 0):
                continue
            if not committed_by_this_topic(metadata, topic_id):
                logger.warning(
                    "offset %d committed on partition %d of %s was not committed by this "
                    "processor on this topic (metadata %r): not replayed",
                    offset,
                    partition,
                    self.settings.input_topic,
                    metadata,
                )
                continue
            targets[partition] = min(offset, ends.get(partition, offset))
        if not targets:
            return
        logger.info(
            "exactly-once restart: applying the input from %s to the committed offsets %s "
            "without publishing (its outputs are committed)",
            self.input.positions,
            targets,
        )
        replay = RunSummary()
        while not self.input.reached(targets) and not self._stop.is_set():
            records = self.input.poll(targets, self.settings.poll_timeout)
            if records:
                self.batch.process(engine, records, replay, full=True)  # outputs dropped: committed
        summary.replayed = replay.events + replay.dead_letters
        self.checkpointer.count_replayed(replay)
        logger.info(
            "replayed %d events and %d dead letters up to %s; %d users owed a refresh",
            replay.events,
            replay.dead_letters,
            self.input.positions,
            len(self.tracker.pending),
        )

    # ------------------------------------------------------------------ commit and checkpoint
    def _checkpoint(self, engine: UserKNN, summary: RunSummary, *, wait: bool = False) -> None:
        """Checkpoint now: the snapshot is taken now, written in the background unless
        ``wait`` (see checkpointing.py)."""
        self.checkpointer.write(
            engine,
            self.tracker,
            summary,
            input_offsets=self.input.positions,
            output_offsets=self.topics.output_offsets,
            topic_ids=self.topics.ids,
            event_time_ms=self.batch.event_time_ms,
            lag=self.input.lag(),
            wait=wait,
        )
        footprint = engine.footprint()
        summary.pair_bytes = footprint["pair_bytes"]
        summary.state_bytes = footprint["total_bytes"]

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
