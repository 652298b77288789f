"""Replay events into Kafka and read the recommendations back.

- :mod:`~stream_cf.replay.sources`: a named dataset or an event file, in event-time or file order;
- :mod:`~stream_cf.replay.pacing`: as fast as possible, ``--rate`` or ``--speedup``;
- :mod:`~stream_cf.replay.producer`: keyed, acknowledged sends with counted failures;
- :mod:`~stream_cf.replay.progress`: a progress line on standard error;
- :mod:`~stream_cf.replay.recommendations`: the latest list of each user in the output topic.
"""

from __future__ import annotations

from stream_cf.replay.pacing import Pacer, Pacing
from stream_cf.replay.producer import ReplaySummary, encode_event, make_producer, replay
from stream_cf.replay.progress import Progress
from stream_cf.replay.recommendations import Snapshot, UserList, read_latest
from stream_cf.replay.sources import Source, open_source

__all__ = [
    "Pacer",
    "Pacing",
    "Progress",
    "ReplaySummary",
    "Snapshot",
    "Source",
    "UserList",
    "encode_event",
    "make_producer",
    "open_source",
    "read_latest",
    "replay",
]
