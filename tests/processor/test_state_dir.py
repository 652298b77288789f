"""The state directory: one processor at a time (a lock naming its holder), and a directory that
cannot be written is a clear error at start-up, not a traceback at the first checkpoint."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stream_cf.events import Event, RatingEvent
from stream_cf.processor.settings import ProcessorSettings
from stream_cf.processor.topics import ensure_topics
from tests.kafka_utils import read_all, wait_until
from tests.processor.conftest import produce_events, start_cli

pytestmark = [pytest.mark.timeout(180)]


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """Make ``directory`` refuse new files, also to root: as root (whom chmod does not stop) the
    ext4/xfs immutable attribute (``chattr +i``: even root gets EPERM creating a file in it), else
    mode 0555. Skips the test where neither is possible (e.g. chattr on tmpfs)."""
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        chattr = shutil.which("chattr")
        if chattr is None:
            pytest.skip("running as root without chattr: no way to make a directory read-only")
        done = subprocess.run([chattr, "+i", str(directory)], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"chattr +i is not supported here: {done.stderr.decode().strip()}")
        try:
            yield
        finally:
            subprocess.run([chattr, "-i", str(directory)], check=False)
        return
    directory.chmod(0o555)
    try:
        yield
    finally:
        directory.chmod(0o755)


EVENTS: list[Event] = [
    RatingEvent(user_id=f"u{k % 5}", item_id=f"i{k % 7}", rating=float(1 + k % 5))
    for k in range(40)
]


@pytest.mark.kafka
def test_a_second_processor_on_the_same_state_dir_is_refused(
    make_settings: Callable[..., ProcessorSettings], kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = make_settings(checkpoint_interval=0.2)
    ensure_topics(settings)
    produce_events(kafka_bootstrap, settings.input_topic, EVENTS)
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = start_cli(settings, first_log)
    try:
        wait_until(
            lambda: first.poll() is not None or settings.checkpoint_path.exists(),
            60,
            what="the first processor's checkpoint",
        )
        assert first.poll() is None, first_log.read_text()[-2000:]
        second = start_cli(settings, second_log, "--until-end")
        code = second.wait(timeout=60)
        text = second_log.read_text()
        assert code == 2, text[-2000:]
        assert "in use by another processor" in text
        assert f"pid {first.pid} on host {socket.gethostname()}" in text
        assert "Traceback" not in text
        # the first one is unharmed: it keeps checkpointing and stops cleanly
        assert first.poll() is None, first_log.read_text()[-2000:]
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0, first_log.read_text()[-2000:]
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=10)
    # once the holder is gone, the directory can be used again
    third = start_cli(settings, tmp_path / "third.log", "--until-end")
    assert third.wait(timeout=60) == 0, (tmp_path / "third.log").read_text()[-2000:]


@pytest.mark.kafka
def test_a_read_only_state_dir_is_refused_before_anything_is_published(
    make_settings: Callable[..., ProcessorSettings], kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = make_settings()
    ensure_topics(settings)
    produce_events(kafka_bootstrap, settings.input_topic, EVENTS)
    log = tmp_path / "run.log"
    with read_only(settings.state_dir):
        proc = start_cli(settings, log, "--until-end")
        code = proc.wait(timeout=60)
    text = log.read_text()
    assert code == 2, text[-2000:]
    assert f"the state directory {settings.state_dir} cannot be written" in text, text[-2000:]
    assert "Traceback" not in text
    assert read_all(kafka_bootstrap, settings.output_topic) == []


@pytest.mark.kafka
def test_a_state_dir_that_turns_read_only_is_a_clear_error(
    make_settings: Callable[..., ProcessorSettings], kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = make_settings(checkpoint_interval=0.2)
    ensure_topics(settings)
    produce_events(kafka_bootstrap, settings.input_topic, EVENTS[:20])
    log = tmp_path / "run.log"
    proc = start_cli(settings, log)
    try:
        wait_until(
            lambda: proc.poll() is not None or settings.checkpoint_path.exists(),
            60,
            what="the first checkpoint",
        )
        with read_only(settings.state_dir):
            produce_events(kafka_bootstrap, settings.input_topic, EVENTS[20:])
            code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    text = log.read_text()
    assert code == 2, text[-2000:]
    assert f"cannot write the checkpoint {settings.checkpoint_path}" in text, text[-2000:]
    assert "Traceback" not in text
