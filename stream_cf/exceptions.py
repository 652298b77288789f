"""The exceptions of stream_cf: one base class and small, specific subclasses.

Third-party errors are wrapped with ``raise X(...) from exc`` so that callers catch
:class:`StreamCFError` and still see the cause.
"""

from __future__ import annotations

from stream_cf.reasons import Reason


class StreamCFError(Exception):
    """Base class of every error raised by stream_cf."""


class InvalidEvent(StreamCFError, ValueError):
    """An event that cannot be applied: bad bytes, bad JSON, a bad field, a value off the scale.

    ``reason`` is a short machine-readable code, one of :data:`stream_cf.reasons.REASONS`; the
    message says what was wrong in words.
    """

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class UnknownUser(StreamCFError, KeyError):
    """The user id is not in the state."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else "unknown user"


class UnknownRating(StreamCFError, KeyError):
    """An ``unrate`` of a (user, item) pair that has no rating."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown rating"


class StateFormatError(StreamCFError):
    """A saved state or checkpoint that cannot be read (wrong format, wrong version, corrupt)."""


class ConfigError(StreamCFError, ValueError):
    """Settings that contradict each other or cannot be used; the message names the values."""


class BrokerError(StreamCFError):
    """The local Kafka broker could not be built, started or reached."""


class DatasetUnavailable(StreamCFError):
    """A named dataset whose package is not installed; the message says how to install it."""


class UndecodableInput(BrokerError):
    """Input records the consumer cannot decode (a compression codec that is not installed, a
    corrupt batch): the processor stops instead of skipping them; the message names the topic,
    partition, offset and cause."""


class RecordRejected(BrokerError):
    """A record the broker will never accept (too large, invalid, not authorized): publishing
    stops instead of retrying it forever; the message names the topic, the size and the cause."""


class StateWriteError(StreamCFError, OSError):
    """The state directory could not be written (read-only, full, gone) after start-up: the
    processor stops; what was published since the last checkpoint is published again on restart."""


class TopicVanished(BrokerError):
    """A topic the processor publishes to no longer exists (deleted while it ran); ``topic`` names
    it. The processor re-creates it (see :mod:`stream_cf.processor.topic_guard`)."""

    def __init__(self, topic: str, message: str) -> None:
        super().__init__(message)
        self.topic = topic


class ProducerFenced(BrokerError):
    """Exactly-once: another producer with the same transactional id started (another instance of
    the processor took over): this one stops without committing or checkpointing its batch."""


class InputTopicChanged(ConfigError):
    """The input topic is not the one the checkpoint's offsets refer to (deleted and re-created,
    or truncated): the processor stops rather than re-apply or skip records silently."""


class OutputBehind(StreamCFError):
    """The output topic ends before the offsets the checkpoint recorded: it is not the topic the
    checkpoint's digests describe (deleted and re-created); the processor republishes every list."""
