"""A batch's records in: each decoded and validated into an event, or turned into a dead letter.

Bytes -> :func:`~stream_cf.processor.codec.decode` (UTF-8, bounded JSON, the event models, the
rating scale, the id length, the time window) ->
:class:`~stream_cf.processor.semantics.BatchChecker` (what the engine would refuse at that point
of the batch, e.g. the take-back of a rating that does not exist or a weight above the limit). A
rejected record becomes a record for the dead-letter topic: its original key and value, with the
reason and its source in headers (:mod:`stream_cf.processor.dlq`), cut to fit the producer's
``max_request_size`` if it is too large to be published whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from stream_cf.events import Event
from stream_cf.processor.codec import SourceRecord, decode, event_time_ms, rejected
from stream_cf.processor.dlq import DeadLetter, fit_to_size
from stream_cf.processor.publisher import OutgoingRecord

# what a record batch of one record adds to its key, value and headers, with a margin: kafka-python
# refuses a record whose batch would exceed max_request_size
RECORD_OVERHEAD = 1024

if TYPE_CHECKING:
    from stream_cf.processor.semantics import BatchChecker
    from stream_cf.processor.settings import ProcessorSettings


@dataclass
class Intake:
    """The accepted events in order, the dead-letter records and their reasons (one per
    rejected record), and the latest event time seen (ms)."""

    events: list[Event] = field(default_factory=list)
    dead_letters: list[OutgoingRecord] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    # each dead letter's (partition, offset)
    sources: list[tuple[int, int]] = field(default_factory=list)
    event_time_ms: int | None = None


def take_in(
    records: list[SourceRecord], settings: ProcessorSettings, checker: BatchChecker
) -> Intake:
    """Sort a batch's records into events and dead letters (in record order)."""
    out = Intake()
    for record in records:
        result = decode(
            record,
            max_id_length=settings.max_id_length,
            rating_scale=settings.rating_scale,
            max_future_skew=settings.max_future_skew,
        )
        if not isinstance(result, DeadLetter):
            rejection = checker.check(result)
            if rejection is not None:
                result = rejected(record, *rejection)
        if isinstance(result, DeadLetter):
            key, value, headers = fit_to_size(
                record.key,
                record.value,
                tuple(result.headers()),
                settings.max_request_size - RECORD_OVERHEAD,
            )
            out.dead_letters.append(OutgoingRecord(settings.dead_letter_topic, key, value, headers))
            out.reasons.append(result.reason)
            out.sources.append((record.partition, record.offset))
            continue
        out.events.append(result)
        ts = event_time_ms(result, record)
        if ts is not None and (out.event_time_ms is None or ts > out.event_time_ms):
            out.event_time_ms = ts
    return out
