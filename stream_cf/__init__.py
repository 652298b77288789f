"""stream_cf: real-time user-based collaborative filtering over Kafka.

The public face is small: the engine (:class:`UserKNN`), the validated event models and the
exceptions. The processor, replay, evaluation and the local broker are reached through the
``stream-cf`` command.
"""

import os as _os
import sys as _sys

if "numpy" not in _sys.modules:
    # The engine's matrix products are small: OpenBLAS's thread pool makes them up to 100x slower
    # on a small shared machine. One thread unless the user chose otherwise (set the variable).
    _os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from stream_cf.engine import Explanation, Recommendations, UserKNN
from stream_cf.events import (
    Event,
    ForgetUserEvent,
    PurchaseEvent,
    RatingEvent,
    UnrateEvent,
    parse_event,
)
from stream_cf.exceptions import InvalidEvent, StreamCFError

__version__ = "0.1.0"

__all__ = [
    "Event",
    "Explanation",
    "ForgetUserEvent",
    "InvalidEvent",
    "PurchaseEvent",
    "RatingEvent",
    "Recommendations",
    "StreamCFError",
    "UnrateEvent",
    "UserKNN",
    "__version__",
    "parse_event",
]
