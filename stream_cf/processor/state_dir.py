"""The state directory: owned by one processor at a time, and known to be writable at start-up.

:meth:`StateDir.open` (before anything is read or published):

1. creates the directory if needed;
2. takes an exclusive ``fcntl.flock`` on ``<state dir>/lock``, held until :meth:`StateDir.close`
   or the process ends (the kernel releases it even after SIGKILL), and writes the holder's pid
   and host into the file; a second processor on the same directory gets a
   :class:`~stream_cf.exceptions.ConfigError` naming the holder, instead of deleting the first
   one's checkpoint temporary under it;
3. writes, fsyncs and removes a probe file, so that a read-only or full directory is a clear
   error at start-up rather than a traceback at the first checkpoint, after lists were published.

``flock`` locks are per open file and work on local file systems; on NFS they are emulated with
byte-range locks (Linux), which is enough for processes on one host.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
import time
from pathlib import Path

from stream_cf.exceptions import ConfigError

logger = logging.getLogger(__name__)

LOCK_NAME = "lock"
PROBE_NAME = ".write-probe"


def describe_os_error(exc: OSError) -> str:
    """``strerror`` with a hint for the causes an operator can fix."""
    text = exc.strerror or str(exc)
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{text} (make it writable by this user, or choose another --state-dir)"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{text} (free space on its file system, or choose another --state-dir)"
    return text


class StateDir:
    """The lock on a state directory and the start-up check that it can be written."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_NAME

    def open(self) -> None:
        """Create, lock and probe the directory; ConfigError saying why it cannot be used."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the state directory {self.path}: {describe_os_error(exc)}"
            ) from exc
        self._lock()
        try:
            self._probe()
        except ConfigError:
            self.close()
            raise

    def close(self) -> None:
        """Release the lock (idempotent). The lock file stays: removing it would race."""
        if self._fd is None:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def _lock(self) -> None:
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(
                f"the state directory {self.path} cannot be written: cannot open its lock file "
                f"{self.lock_path}: {describe_os_error(exc)}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", errors="replace").strip()
            os.close(fd)
            raise ConfigError(
                f"the state directory {self.path} is in use by another processor "
                f"({holder or 'holder unknown'}); run one processor per state directory, or "
                f"give this one another --state-dir"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise ConfigError(f"cannot lock {self.lock_path}: {describe_os_error(exc)}") from exc
        self._fd = fd
        me = (
            f"pid {os.getpid()} on host {socket.gethostname()}, "
            f"since {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n"
        )
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, me.encode(), 0)
        except OSError as exc:  # a full disk: the lock itself holds, the probe will say more
            logger.warning("could not write the holder into %s: %s", self.lock_path, exc)

    def _probe(self) -> None:
        probe = self.path / PROBE_NAME
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, b"stream-cf write probe\n" * 64)
                os.fsync(fd)
            finally:
                os.close(fd)
            probe.unlink()
        except OSError as exc:
            with contextlib.suppress(OSError):
                probe.unlink(missing_ok=True)
            raise ConfigError(
                f"the state directory {self.path} cannot be written: {describe_os_error(exc)}"
            ) from exc
