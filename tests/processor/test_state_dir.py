"""The state directory: one processor at a time (a lock naming its holder), and a directory that
cannot be written is a clear error at start-up, not a traceback at the first checkpoint."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from stream_cf.events import Event, RatingEvent
from stream_cf.processor.settings import ProcessorSettings
from stream_cf.processor.topics import ensure_topics
from tests.kafka_utils import wait_until
from tests.processor.conftest import produce_events, start_cli

pytestmark = [pytest.mark.timeout(180)]

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
