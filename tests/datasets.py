"""The named datasets' events, read once per test session.

``dataset_events`` parses the whole file at every call (Instacart ~2 s, MovieLens 100K ~0.7-3 s of
CPU), and the processor tests ask for a prefix of the same two datasets about twenty times. The
events are frozen models, so one tuple per dataset is shared; each caller gets its own list.
"""

from __future__ import annotations

import functools

from stream_cf.datasets import DatasetName, dataset_events
from stream_cf.events import Event


@functools.cache
def _every_event(name: DatasetName) -> tuple[Event, ...]:
    return tuple(dataset_events(name))


def first_events(name: DatasetName, count: int) -> list[Event]:
    """``dataset_events(name, limit=count)``, from the session's one read of the dataset."""
    return list(_every_event(name)[:count])
