"""stream_cf: real-time user-based collaborative filtering over Kafka.

The public face is small: the engine (:class:`UserKNN`), the validated event models and the
exceptions. The processor, replay, evaluation and the local broker are reached through the
``stream-cf`` command.
"""

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
