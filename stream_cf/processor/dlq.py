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
``stream_cf.truncated``      only on a cut copy: the original value's size in bytes
``stream_cf.value.sha256``   only on a cut copy: SHA-256 (hex) of the original value
``stream_cf.key.truncated``  only when the key was cut: the original key's size in bytes
``stream_cf.key.sha256``     only when the key was cut: SHA-256 (hex) of the original key
===========================  ==========================================================

A dead letter must fit the producer's ``max_request_size`` (and the topic's
``max.message.bytes``), or no broker would ever accept it. :func:`fit_to_size` cuts the copy of
a record too large for that: the key to an eighth of the limit, the value to what is left, and
says so in the headers above with the original sizes and hashes. The original is still on the
input topic at the offset in the headers (for as long as its retention keeps it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

HEADER_REASON = "stream_cf.reason"
HEADER_ERROR = "stream_cf.error"
HEADER_TOPIC = "stream_cf.source.topic"
HEADER_PARTITION = "stream_cf.source.partition"
HEADER_OFFSET = "stream_cf.source.offset"
HEADER_TIMESTAMP = "stream_cf.source.timestamp"
HEADER_TRUNCATED = "stream_cf.truncated"
HEADER_VALUE_SHA256 = "stream_cf.value.sha256"
HEADER_KEY_TRUNCATED = "stream_cf.key.truncated"
HEADER_KEY_SHA256 = "stream_cf.key.sha256"

Headers = tuple[tuple[str, bytes], ...]


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


def _size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    return (
        len(key or b"")
        + len(value or b"")
        + sum(len(name.encode("utf-8")) + len(raw) for name, raw in headers)
    )


def fit_to_size(
    key: bytes | None, value: bytes | None, headers: Headers, limit: int
) -> tuple[bytes | None, bytes | None, Headers]:
    """``(key, value, headers)`` unchanged if their bytes add up to at most ``limit``; else a
    key cut to ``limit // 8`` bytes and a value cut to what remains, each cut said in a header
    with the original size and SHA-256."""
    if _size(key, value, headers) <= limit:
        return key, value, headers
    out = list(headers)
    key_budget = limit // 8
    if key is not None and len(key) > key_budget:
        out.append((HEADER_KEY_TRUNCATED, str(len(key)).encode("ascii")))
        out.append((HEADER_KEY_SHA256, hashlib.sha256(key).hexdigest().encode("ascii")))
        key = key[:key_budget]
    if value is not None and _size(key, value, tuple(out)) > limit:
        out.append((HEADER_TRUNCATED, str(len(value)).encode("ascii")))
        out.append((HEADER_VALUE_SHA256, hashlib.sha256(value).hexdigest().encode("ascii")))
        value = value[: max(0, limit - _size(key, b"", tuple(out)))]
    return key, value, tuple(out)
