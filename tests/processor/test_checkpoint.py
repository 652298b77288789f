"""Checkpoints: round trip, corruption detected, atomic replacement even when a write dies."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stream_cf.exceptions import ConfigError, StateFormatError
from stream_cf.processor import checkpoint as ckpt
from stream_cf.processor.checkpoint import (
    Checkpoint,
    check_compatible,
    encode_checkpoint,
    read_checkpoint,
    remove_stale_temporaries,
    write_checkpoint,
)


def _checkpoint(offset: int) -> Checkpoint:
    return Checkpoint(
        input_topic="in",
        input_offsets={0: offset, 1: 3},
        output_topic="out",
        output_offsets={0: 9},
        engine=b"\x00engine-bytes\xff" * 10,
        engine_config={"k": 40, "rating_scale": [1.0, 5.0]},
        digests={"u1": "abc", "u2": "def"},
        fallback_users={"u2"},
        pending_users={"u1"},
        event_time_ms=123,
        counters={"events": offset},
    )


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "state" / "checkpoint.scf"
    assert read_checkpoint(path) is None
    write_checkpoint(path, _checkpoint(5))
    assert read_checkpoint(path) == _checkpoint(5)


@pytest.mark.parametrize("cut", [0, 5, 20, -1])
def test_truncated_or_corrupt_file_is_refused(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "checkpoint.scf"
    data = encode_checkpoint(_checkpoint(5))
    path.write_bytes(data[:cut] if cut >= 0 else data[:40] + b"X" + data[41:])
    with pytest.raises(StateFormatError):
        read_checkpoint(path)


def test_crash_during_write_keeps_the_old_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "checkpoint.scf"
    write_checkpoint(path, _checkpoint(5))

    def dying_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        raise OSError("power cut before the rename")

    monkeypatch.setattr(ckpt.os, "replace", dying_replace)
    with pytest.raises(OSError, match="power cut"):
        write_checkpoint(path, _checkpoint(6))
    monkeypatch.undo()
    assert read_checkpoint(path) == _checkpoint(5)
    assert list(tmp_path.glob("*.tmp")) == []  # the temporary was removed


def test_fsyncs_file_then_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append("fsync-dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync-file")
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        calls.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(ckpt.os, "fsync", fsync)
    monkeypatch.setattr(ckpt.os, "replace", replace)
    write_checkpoint(tmp_path / "checkpoint.scf", _checkpoint(1))
    assert calls == ["fsync-file", "rename", "fsync-dir"]


def test_stale_temporaries_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.scf"
    (tmp_path / ".checkpoint.scf.abc.tmp").write_bytes(b"half")
    assert remove_stale_temporaries(path) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_of_other_settings_is_refused(tmp_path: Path) -> None:
    """A state dir reused with another input topic or other engine settings is an error naming
    both sides; the same settings written as other number types are not."""
    path = tmp_path / "checkpoint.scf"
    saved = {"k": 40, "rating_scale": [1.0, 5.0], "similarity": "pearson"}
    same = {"k": 40.0, "rating_scale": (1, 5), "similarity": "pearson"}
    check_compatible(path, _checkpoint(1), input_topic="in", wanted=same, have=saved)
    with pytest.raises(ConfigError, match="input topic 'in', not 'other'"):
        check_compatible(path, _checkpoint(1), input_topic="other", wanted=same, have=saved)
    for change in ({"k": 20}, {"rating_scale": (1, 10)}, {"similarity": "cosine"}):
        with pytest.raises(ConfigError, match="engine settings"):
            check_compatible(
                path, _checkpoint(1), input_topic="in", wanted={**same, **change}, have=saved
            )
