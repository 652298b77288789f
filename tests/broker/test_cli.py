"""``stream-cf broker`` as a subprocess: bootstrap line, round trip, persistence, clean stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.broker.procs import alive, kafka_children
from tests.kafka_utils import (
    committed_offsets,
    consume,
    create_topic,
    produce,
    read_all,
    wait_until,
)

pytestmark = pytest.mark.kafka


class BrokerProcess:
    """``python -m stream_cf broker ...`` with its standard output read by a thread."""

    def __init__(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stream_cf", "broker", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self.stderr = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def bootstrap(self, timeout: float = 90.0) -> str:
        def line() -> str | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"stream-cf broker exited: {self.finish()}")
            return next((x for x in self.lines if x.startswith("bootstrap=")), None)

        found: str = wait_until(line, timeout, what="the bootstrap line")
        return found.removeprefix("bootstrap=")

    def terminate(self, timeout: float = 60.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def finish(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
        _, err = self.proc.communicate(timeout=30)
        self.stderr += err or ""
        return self.stderr


@pytest.fixture
def run_broker() -> Iterator[Callable[..., BrokerProcess]]:
    started: list[BrokerProcess] = []

    def start(*args: str) -> BrokerProcess:
        process = BrokerProcess(*args)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.terminate()
        process.finish()


@pytest.mark.timeout(180)
def test_cli_round_trip_persists_records_and_offsets(
    tmp_path: Path, run_broker: Callable[..., BrokerProcess]
) -> None:
    data_dir = tmp_path / "kafka"
    first = run_broker("--data-dir", str(data_dir))
    bootstrap = first.bootstrap()
    assert first.lines[0] == f"bootstrap={bootstrap}"
    assert bootstrap.startswith("127.0.0.1:")
    java = kafka_children(first.proc.pid)
    assert len(java) == 1

    topic = create_topic(bootstrap, partitions=2)
    produce(bootstrap, topic, [f"v{i}" for i in range(10)], keys=[str(i) for i in range(10)])
    consume(bootstrap, topic, count=10, group_id="g-persist", commit=True)
    before = committed_offsets(bootstrap, "g-persist", topic)
    assert sum(before.values()) == 10

    assert first.terminate() == 0
    assert not alive(java[0])

    second = run_broker("--data-dir", str(data_dir))
    assert second.bootstrap() == bootstrap  # the same port: clients reconnect
    records = read_all(bootstrap, topic)
    assert sorted(r.value for r in records) == sorted(f"v{i}".encode() for i in range(10))
    assert committed_offsets(bootstrap, "g-persist", topic) == before
    # The group resumes after its committed offsets: only new records.
    produce(bootstrap, topic, ["late"], keys=["x"])
    resumed = consume(bootstrap, topic, count=1, group_id="g-persist")
    assert [r.value for r in resumed] == [b"late"]
    java = kafka_children(second.proc.pid)
    assert second.terminate() == 0
    assert java and not any(alive(pid) for pid in java)


@pytest.mark.timeout(120)
def test_sigterm_while_starting_leaves_no_java(
    tmp_path: Path, run_broker: Callable[..., BrokerProcess]
) -> None:
    process = run_broker("--data-dir", str(tmp_path / "kafka"))
    java = wait_until(lambda: kafka_children(process.proc.pid), 60, 0.02, "a java child")
    assert not process.lines  # still starting
    code = process.terminate()
    assert code == 0, process.finish()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in java) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in java)


@pytest.mark.timeout(60)
def test_port_in_use_is_one_clear_error(run_broker: Callable[..., BrokerProcess]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        process = run_broker("--port", str(port))
        assert process.proc.wait(timeout=50) == 2
        err = process.finish()
    assert f"port {port}" in err
    assert "in use" in err
    assert "Traceback" not in err
    assert not process.lines
