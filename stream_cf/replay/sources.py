"""Where replayed events come from: a named dataset or an event file, in the order asked for.

:func:`open_source` returns a :class:`Source`, an iterable of ``(position, Event | Malformed)``
where the position is the line number in a file (1-based, header = line 1) or the event's rank in
a named dataset. Malformed lines are part of the stream so that the caller reports them (and
skips them or stops) — they are never dropped here.

Order: ``time`` sorts by ``ts`` (ties kept in file order; the default and only order of named
datasets); ``file`` keeps the file's order and streams it without loading it whole. With ``time``
a file is read whole first: its malformed lines come first (in line order), then the events in
time order, so ``--on-error stop`` stops before anything is sent. ``limit`` counts events (not
malformed lines): the first ``limit`` in the chosen order.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from stream_cf.datasets import DATASETS, DatasetName, dataset_events
from stream_cf.event_files import ColumnMapping, FileFormat, Malformed, read_event_file
from stream_cf.events import Event
from stream_cf.exceptions import ConfigError

Order = Literal["time", "file"]
Item = tuple[int, Event | Malformed]


@dataclass
class Source:
    """An iterable of ``(position, Event | Malformed)``; ``total`` is the event count when known."""

    name: str
    items: Iterator[Item]
    total: int | None = None
    dataset: DatasetName | None = None
    order: Order = "time"
    notes: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[Item]:
        return self.items


def is_dataset(source: str) -> bool:
    """Whether ``source`` names a dataset (``ml-100k``, ``instacart``) rather than a file."""
    return source in DATASETS


def open_source(
    source: str | os.PathLike[str],
    *,
    mapping: ColumnMapping | None = None,
    fmt: FileFormat | None = None,
    order: Order | None = None,
    limit: int | None = None,
) -> Source:
    """Open a named dataset or an event file (see the module docstring for order and limit).

    A name that is both a dataset and an existing file is taken as the dataset; write ``./name``
    for the file. Raises :class:`ConfigError` for a missing file or a bad mapping, and
    :class:`~stream_cf.exceptions.DatasetUnavailable` for a dataset whose package is missing.
    """
    if limit is not None and limit < 0:
        raise ConfigError(f"--limit must be >= 0, got {limit}")
    text = os.fspath(source)
    if is_dataset(text):
        if order == "file":
            raise ConfigError(f"the dataset {text!r} is replayed in event-time order only")
        name: DatasetName = "ml-100k" if text == "ml-100k" else "instacart"
        events = dataset_events(name, limit)
        return Source(
            name=text,
            items=iter(enumerate(events, start=1)),
            total=len(events),
            dataset=name,
            order="time",
        )
    path = Path(text)
    if not path.is_file():
        raise ConfigError(
            f"{text!r} is neither a file nor a dataset (datasets: {', '.join(DATASETS)})"
        )
    items = read_event_file(path, mapping, fmt)
    if order != "time":
        return Source(name=text, items=_limit_events(items, limit), order="file")
    return _time_ordered(text, items, limit)


def _limit_events(items: Iterator[Item], limit: int | None) -> Iterator[Item]:
    """Pass everything through until ``limit`` events have gone by."""
    if limit is None:
        yield from items
        return
    sent = 0
    for position, item in items:
        if sent >= limit:
            return
        if not isinstance(item, Malformed):
            sent += 1
        yield position, item


def _time_ordered(name: str, items: Iterator[Item], limit: int | None) -> Source:
    malformed: list[Item] = []
    events: list[tuple[int, Event]] = []
    for position, item in items:
        if isinstance(item, Malformed):
            malformed.append((position, item))
        else:
            events.append((position, item))
    missing = [position for position, event in events if event.ts is None]
    if missing:
        shown = ", ".join(str(p) for p in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise ConfigError(
            f"{name}: ordering by time needs a time on every line, {len(missing)} have none "
            f"(lines {shown}): map the time column (--time-col) or keep the file's order "
            f"(--order file)"
        )
    events.sort(key=lambda pair: (pair[1].ts, pair[0]))
    if limit is not None:
        events = events[:limit]
    chained: Iterator[Item] = itertools.chain(malformed, events)
    return Source(name=name, items=chained, total=len(events), order="time")
