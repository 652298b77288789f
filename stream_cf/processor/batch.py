"""One batch of input records turned into outgoing records.

:class:`BatchProcessor` owns the step between polling and publishing: the records sorted into
events and dead letters (intake.py, semantics.py), the input positions moved past them, the events
applied to the engine, the actors' lists recomputed now and the other users owed a refresh
(tracker.py), and the outgoing records built: dead letters, changed lists and tombstones. It also
keeps the latest event time seen, which the lists and the checkpoint carry. It publishes nothing
(loop.py does) and knows no similarity formula: it calls the ``UserKNN`` API.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from stream_cf.engine import UserKNN
from stream_cf.events import Event
from stream_cf.exceptions import StreamCFError
from stream_cf.processor.codec import SourceRecord, encode_key, encode_recommendations
from stream_cf.processor.consumer import InputConsumer
from stream_cf.processor.intake import take_in
from stream_cf.processor.publisher import OutgoingRecord
from stream_cf.processor.scaleout import ScaleOut
from stream_cf.processor.semantics import BatchChecker
from stream_cf.processor.settings import ProcessorSettings
from stream_cf.processor.summary import RunSummary
from stream_cf.processor.tracker import ChangedList, ListTracker

logger = logging.getLogger(__name__)


class BatchProcessor:
    """Intake -> engine apply -> the actors' lists -> outgoing records, one batch at a time."""

    def __init__(
        self,
        settings: ProcessorSettings,
        tracker: ListTracker,
        input: InputConsumer,
        scaleout: ScaleOut,
    ) -> None:
        self.settings = settings
        self.tracker = tracker
        self.input = input
        self.scaleout = scaleout
        self.event_time_ms: int | None = None  # the latest event time applied

    def process(
        self,
        engine: UserKNN,
        records: list[SourceRecord],
        summary: RunSummary,
        *,
        full: bool,
        dispatch: Callable[[list[OutgoingRecord]], None] | None = None,
    ) -> list[OutgoingRecord]:
        """Apply one batch; return its dead letters, changed lists and tombstones.

        The actors' lists are computed one by one, the user of the batch's oldest event first,
        and each changed one is handed to ``dispatch`` (if given) as soon as it is computed, so
        that it leaves while the others are computed; all of them are returned too (the caller
        publishes them, which waits for their acknowledgements)."""
        begun = time.perf_counter()
        settings = self.settings
        checker = BatchChecker(engine, implicit=settings.feedback == "implicit")
        intake = take_in(records, settings, checker)
        outgoing: list[OutgoingRecord] = []
        for (partition, offset), letter in zip(intake.sources, intake.dead_letters, strict=True):
            routed = self.scaleout.route_dead_letter(partition, offset, letter)
            if routed is not None:  # else held: another instance owns the partition
                outgoing.append(routed)
        for reason in intake.reasons:
            summary.dead_letter_reasons[reason] = summary.dead_letter_reasons.get(reason, 0) + 1
        summary.dead_letters += len(intake.reasons)
        events = intake.events
        if intake.event_time_ms is not None and (
            self.event_time_ms is None or intake.event_time_ms > self.event_time_ms
        ):
            self.event_time_ms = intake.event_time_ms
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
        taken_in = time.perf_counter()
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
        self.scaleout.own_new_users(engine, effect.users)
        # full: behind, defer every refresh (see tracker); in a rebalance: nobody's list is ours
        defer = full or not self.scaleout.settled
        applied = time.perf_counter()
        now = self.tracker.after_batch(engine, effect, before, defer=defer)
        owed = time.perf_counter()
        if dispatch is not None:
            dispatch(outgoing)  # the dead letters
        for user in oldest_first(now, events):
            lists = self.list_records(self.tracker.recompute(engine, [user]), summary)
            if lists and dispatch is not None:
                dispatch(lists)
            outgoing.extend(lists)
        logger.debug(
            "batch of %d events: intake %.3fs, co-raters before %.3fs, apply %.3fs, owed "
            "%.3fs, %d actors' lists %.3fs",
            len(events),
            taken_in - begun,
            started - taken_in,
            applied - started,
            owed - applied,
            len(now),
            time.perf_counter() - owed,
        )
        for user in sorted(effect.forgotten):
            if self.scaleout.note_forgotten(user):
                outgoing.append(OutgoingRecord(settings.output_topic, encode_key(user), None))
                summary.tombstones += 1
        return outgoing

    def list_records(self, changed: list[ChangedList], summary: RunSummary) -> list[OutgoingRecord]:
        """The changed lists as output records (counted as published in ``summary``)."""
        records = [
            OutgoingRecord(
                self.settings.output_topic,
                encode_key(entry.user),
                encode_recommendations(
                    entry.user,
                    entry.items,
                    entry.fallback,
                    event_time_ms=self.event_time_ms,
                    input_topic=self.settings.input_topic,
                    input_offsets=self.input.positions,
                    ratings=entry.ratings,
                ),
            )
            for entry in changed
        ]
        summary.published += len(records)
        return records


def oldest_first(users: list[str], events: list[Event]) -> list[str]:
    """``users`` ordered by their first event in the batch (the one that waited longest first)."""
    first: dict[str, int] = {}
    for index, event in enumerate(events):
        first.setdefault(event.user_id, index)
    return sorted(users, key=lambda user: first.get(user, len(events)))
