"""Checkpoints: the engine state and the stream positions together in one file, written atomically.

A checkpoint is the source of truth on restart: the processor loads the engine from it and seeks the
input to its offsets (committed group offsets only serve monitoring). It also holds what the
processor needs to publish exactly the lists that changed: the digest of the last list published
per user, the users whose list is a fallback, the users whose list is owed a refresh, the
output topic's end offsets when it was written, the Kafka ids of the input and output topics (so
that a topic re-created since is noticed, see topic_guard.py) and the settings the lists depend on
beyond the engine's (``n``: a change refreshes every list).

File layout (``<state dir>/checkpoint.scf``)::

    b"SCFCKPT1"                      magic and format version
    u64 big-endian  n                length of the metadata
    n bytes                          metadata, UTF-8 JSON
    u64 big-endian  m                length of the engine state
    m bytes                          UserKNN.save() output
    32 bytes                         SHA-256 of everything above

Writing: a temporary file in the same directory, ``fsync``, ``os.replace`` over the old file, then
``fsync`` of the directory. A crash at any point leaves either the old or the new checkpoint, whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream_cf.exceptions import ConfigError, StateFormatError, StateWriteError
from stream_cf.processor.state_dir import describe_os_error

logger = logging.getLogger(__name__)

MAGIC = b"SCFCKPT1"
_LEN = struct.Struct(">Q")
_HASH_SIZE = 32


@dataclass
class Checkpoint:
    """What a checkpoint holds. ``engine`` is the bytes written by ``UserKNN.save``."""

    input_topic: str
    input_offsets: dict[int, int]
    output_topic: str
    output_offsets: dict[int, int]
    engine: bytes
    engine_config: dict[str, Any] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    fallback_users: set[str] = field(default_factory=set)
    pending_users: set[str] = field(default_factory=set)
    # the items of each user's last computed list (None: a checkpoint written before it was kept)
    shown: dict[str, list[str]] | None = None
    event_time_ms: int | None = None
    counters: dict[str, int] = field(default_factory=dict)
    # topic name -> Kafka topic id when written (empty: written before ids were kept)
    topic_ids: dict[str, str] = field(default_factory=dict)
    # the settings the lists depend on beyond the engine's (``n``); None: not kept yet
    list_settings: dict[str, Any] | None = None

    def metadata(self) -> dict[str, Any]:
        """The JSON-ready metadata part."""
        return {
            "input_topic": self.input_topic,
            "input_offsets": {str(p): o for p, o in sorted(self.input_offsets.items())},
            "output_topic": self.output_topic,
            "output_offsets": {str(p): o for p, o in sorted(self.output_offsets.items())},
            "engine_config": self.engine_config,
            "digests": dict(sorted(self.digests.items())),
            "fallback_users": sorted(self.fallback_users),
            "pending_users": sorted(self.pending_users),
            "shown": None if self.shown is None else dict(sorted(self.shown.items())),
            "event_time_ms": self.event_time_ms,
            "counters": dict(sorted(self.counters.items())),
            "topic_ids": dict(sorted(self.topic_ids.items())),
            "list_settings": self.list_settings,
        }


def encode_checkpoint(checkpoint: Checkpoint) -> bytes:
    """The bytes of a checkpoint file."""
    meta = json.dumps(checkpoint.metadata(), separators=(",", ":")).encode("utf-8")
    body = b"".join(
        [MAGIC, _LEN.pack(len(meta)), meta, _LEN.pack(len(checkpoint.engine)), checkpoint.engine]
    )
    return body + hashlib.sha256(body).digest()


def decode_checkpoint(data: bytes) -> Checkpoint:
    """Parse checkpoint bytes; StateFormatError if truncated, corrupt or of another format."""
    if len(data) < len(MAGIC) + 2 * _LEN.size + _HASH_SIZE or not data.startswith(MAGIC):
        raise StateFormatError("not a stream_cf checkpoint (bad magic or too short)")
    body, checksum = data[:-_HASH_SIZE], data[-_HASH_SIZE:]
    if hashlib.sha256(body).digest() != checksum:
        raise StateFormatError("checkpoint checksum mismatch (corrupt or truncated file)")
    pos = len(MAGIC)
    (n,) = _LEN.unpack_from(body, pos)
    pos += _LEN.size
    meta_bytes = body[pos : pos + n]
    pos += n
    (m,) = _LEN.unpack_from(body, pos)
    pos += _LEN.size
    engine = body[pos : pos + m]
    if pos + m != len(body):
        raise StateFormatError("checkpoint lengths do not add up")
    try:
        meta = json.loads(meta_bytes.decode("utf-8"))
        return Checkpoint(
            input_topic=str(meta["input_topic"]),
            input_offsets={int(p): int(o) for p, o in meta["input_offsets"].items()},
            output_topic=str(meta["output_topic"]),
            output_offsets={int(p): int(o) for p, o in meta["output_offsets"].items()},
            engine=engine,
            engine_config=dict(meta["engine_config"]),
            digests={str(u): str(d) for u, d in meta["digests"].items()},
            fallback_users={str(u) for u in meta["fallback_users"]},
            pending_users={str(u) for u in meta["pending_users"]},
            shown=_shown(meta.get("shown")),
            event_time_ms=None if meta["event_time_ms"] is None else int(meta["event_time_ms"]),
            counters={str(k): int(v) for k, v in meta["counters"].items()},
            topic_ids={str(t): str(i) for t, i in (meta.get("topic_ids") or {}).items()},
            list_settings=None
            if meta.get("list_settings") is None
            else dict(meta["list_settings"]),
        )
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise StateFormatError(f"checkpoint metadata unreadable: {exc}") from exc


def _shown(value: Any) -> dict[str, list[str]] | None:
    if value is None:
        return None
    return {str(user): [str(item) for item in items] for user, items in dict(value).items()}


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_checkpoint(path: Path, checkpoint: Checkpoint) -> int:
    """Write ``checkpoint`` to ``path`` atomically and durably; return its size in bytes.

    StateWriteError (naming the file and the cause) if the directory cannot be written; the
    previous checkpoint, if any, is then left whole."""
    data = encode_checkpoint(checkpoint)
    try:
        return _write_atomically(path, data)
    except OSError as exc:
        raise StateWriteError(
            f"cannot write the checkpoint {path}: {describe_os_error(exc)}; stopped (a restart "
            f"resumes from the previous checkpoint and publishes again what followed it)"
        ) from exc


def _write_atomically(path: Path, data: bytes) -> int:
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # keep the first error (a read-only or full disk)
            tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(directory)
    return len(data)


def read_checkpoint(path: Path) -> Checkpoint | None:
    """The checkpoint at ``path``, or None if there is none; StateFormatError if unreadable."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFormatError(f"cannot read checkpoint {path}: {exc}") from exc
    try:
        return decode_checkpoint(data)
    except StateFormatError as exc:
        raise StateFormatError(f"{path}: {exc}") from exc


def remove_stale_temporaries(path: Path) -> int:
    """Delete temporary files left by a crash during a write; return how many were removed."""
    removed = 0
    if path.parent.is_dir():
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
            removed += 1
    if removed:
        logger.info("removed %d unfinished checkpoint temporaries in %s", removed, path.parent)
    return removed


def check_compatible(
    path: Path,
    checkpoint: Checkpoint,
    *,
    input_topic: str,
    wanted: dict[str, Any],
    have: dict[str, Any],
) -> None:
    """Refuse (ConfigError) a checkpoint of another input topic, or whose engine settings
    ``have`` differ from the ``wanted`` ones (numbers compared as floats, sequences as tuples)."""
    if checkpoint.input_topic != input_topic:
        raise ConfigError(
            f"the checkpoint {path} is of input topic {checkpoint.input_topic!r}, "
            f"not {input_topic!r}; use another --state-dir"
        )
    if _normalise(have) != _normalise(wanted):
        raise ConfigError(
            f"the checkpoint {path} was made with engine settings {have}, "
            f"but these settings ask for {wanted}; use the same settings or another --state-dir"
        )


def _normalise(config: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, list | tuple):
            out[key] = tuple(float(v) for v in value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = float(value)
        else:
            out[key] = value
    return out
