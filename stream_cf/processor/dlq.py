"""Dead letters: rejected input records, kept byte for byte with the reason and the source.

A dead-letter record (topic ``<input topic>.dlq``) has exactly the original key and value bytes
(a null value stays null; bytes that are not UTF-8 are kept as they are) and these headers, all
UTF-8 strings:

===========================  ==========================================================
``stream_cf.reason``         short code, one of :data:`stream_cf.reasons.REASONS`
``stream_cf.error``          the reason in words (characters without a UTF-8 form escaped)
``stream_cf.source.topic``   the input topic
``stream_cf.source.partition``  its partition (decimal)
``stream_cf.source.offset``  the record's offset (decimal)
``stream_cf.source.timestamp``  the record's timestamp in epoch milliseconds (decimal)
===========================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

HEADER_REASON = "stream_cf.reason"
HEADER_ERROR = "stream_cf.error"
HEADER_TOPIC = "stream_cf.source.topic"
HEADER_PARTITION = "stream_cf.source.partition"
HEADER_OFFSET = "stream_cf.source.offset"
HEADER_TIMESTAMP = "stream_cf.source.timestamp"


@dataclass(frozen=True)
class DeadLetter:
    """A rejected record: why, where it came from, and its original bytes."""

    reason: str
    message: str
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None

    def headers(self) -> list[tuple[str, bytes]]:
        """The Kafka headers of the dead-letter record."""
        return [
            (HEADER_REASON, self.reason.encode("utf-8")),
            (HEADER_ERROR, self.message.encode("utf-8", errors="backslashreplace")),
            (HEADER_TOPIC, self.topic.encode("utf-8")),
            (HEADER_PARTITION, str(self.partition).encode("ascii")),
            (HEADER_OFFSET, str(self.offset).encode("ascii")),
            (HEADER_TIMESTAMP, str(self.timestamp_ms).encode("ascii")),
        ]

    @classmethod
    def from_record(
        cls,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]],
    ) -> DeadLetter:
        """Read a dead letter back from a consumed dead-letter record (for tools and tests)."""
        found: Mapping[str, str] = {
            name: (raw or b"").decode("utf-8", errors="replace") for name, raw in headers
        }
        return cls(
            reason=found.get(HEADER_REASON, ""),
            message=found.get(HEADER_ERROR, ""),
            topic=found.get(HEADER_TOPIC, ""),
            partition=int(found.get(HEADER_PARTITION, "-1")),
            offset=int(found.get(HEADER_OFFSET, "-1")),
            timestamp_ms=int(found.get(HEADER_TIMESTAMP, "-1")),
            key=key,
            value=value,
        )
