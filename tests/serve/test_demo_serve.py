"""``stream-cf demo --serve``: the page's address printed, reachable while the demo runs and after
it until Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.replay.conftest import requires_ml100k

pytestmark = [pytest.mark.kafka, pytest.mark.slow, requires_ml100k, pytest.mark.timeout(150)]


def test_demo_serves_the_lists(kafka_bootstrap: str) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    process = subprocess.Popen(
        [sys.executable, "-m", "stream_cf", "--log-level", "WARNING", "demo", "--limit", "3000",
         "--show", "1", "--serve", "--serve-port", "0", "--serve-for", "60"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")))  # type: ignore[union-attr]
    reader.start()

    def line_with(text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in list(lines) if text in line]
            if found:
                return found[0]
            if process.poll() is not None and not reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line with {text!r} in:\n{''.join(lines)}")

    try:
        page = line_with("live page: http://", 60).split("live page: ", 1)[1].split()[0]
        assert httpx.get(page, timeout=10).status_code == 200  # while the demo runs
        lingering = line_with("serving the lists at ", 120)
        user_page = lingering.split("serving the lists at ", 1)[1].split()[0]
        user = user_page.split("?user=", 1)[1]
        answer = httpx.get(f"{page}users/{user}/recommendations", timeout=10)
        assert answer.status_code == 200 and answer.json()["items"]
        assert httpx.get(page + "healthz", timeout=10).status_code == 200
        process.send_signal(signal.SIGINT)  # Ctrl-C ends the serving, then the demo cleans up
        assert process.wait(timeout=60) == 0, "".join(lines)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        reader.join(10)
    out = "".join(lines)
    assert "stopping" in out and "time per step:" in out
