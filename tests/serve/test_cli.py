"""``stream-cf serve`` as a process: flags, the environment, SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import httpx
import pytest

from stream_cf.cli import run_cli
from tests.kafka_utils import wait_until
from tests.serve.helpers import list_value, path_of, publish

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(60)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_command(kafka_bootstrap: str, output_topic: str) -> None:
    publish(kafka_bootstrap, output_topic, [("1", list_value("1", [("x", 1.0)]))])
    port = _free_port()
    env = {**os.environ, "STREAM_CF_OUTPUT_TOPIC": output_topic, "STREAM_CF_MAX_ID_LENGTH": "8"}
    process = subprocess.Popen(
        [sys.executable, "-m", "stream_cf", "serve", "--bootstrap-servers", kafka_bootstrap,
         "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(url + "/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return process.poll() is not None  # it stopped: the assertions below say why

    try:
        wait_until(ready, timeout=40, what="stream-cf serve to be ready")
        assert process.poll() is None
        assert httpx.get(url + path_of("1")).json()["items"] == [{"item_id": "x", "score": 1.0}]
        assert httpx.get(url + path_of("x" * 9)).status_code == 422  # STREAM_CF_MAX_ID_LENGTH
        assert httpx.get(url + "/openapi.json").json()["info"]["title"] == "stream-cf serve"
        assert b"<title>stream-cf" in httpx.get(url + "/").content
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert f"serving {output_topic} on http://127.0.0.1:{port}/" in err


def test_a_port_in_use_is_one_error(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code = run_cli(["serve", "--bootstrap-servers", kafka_bootstrap, "--port", str(port)])
    assert code == 2
    err = capsys.readouterr().err
    assert f"cannot serve on 127.0.0.1:{port}" in err and "Traceback" not in err
