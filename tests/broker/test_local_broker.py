"""LocalBroker: restart on the same port with live clients, and its errors."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaProducer

from stream_cf.broker import LocalBroker, broker_bootstrap, kafka_jars
from stream_cf.broker import local as local_module
from stream_cf.exceptions import BrokerError
from tests.broker.procs import alive
from tests.kafka_utils import create_topic, read_all


@pytest.mark.kafka
@pytest.mark.timeout(120)
def test_restart_keeps_port_and_clients_reconnect(
    local_broker: Callable[..., LocalBroker],
) -> None:
    broker = local_broker()
    bootstrap = broker.start()
    topic = create_topic(bootstrap, partitions=1)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_block_ms=30_000)
    try:
        producer.send(topic, b"before").get(timeout=30)
        pid = broker.pid
        assert broker.restart() == bootstrap
        assert pid is not None and not alive(pid)
        producer.send(topic, b"after").get(timeout=60)  # the same client, reconnected
    finally:
        producer.close(timeout=5)
    assert [r.value for r in read_all(bootstrap, topic)] == [b"before", b"after"]
    broker.stop()
    assert not broker.is_running()
    assert broker.data_dir is not None and broker.data_dir.is_dir()  # a given data dir stays


def test_broker_bootstrap_prefers_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "10.9.8.7:9092")
    with broker_bootstrap() as bootstrap:
        assert bootstrap == "10.9.8.7:9092"


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(
            BrokerError, match=rf"port {port} .* is in use.*KAFKA_BOOTSTRAP_SERVERS"
        ):
            LocalBroker(port=port, data_dir=tmp_path).start()


def test_missing_java(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(BrokerError, match=r"java not found.*JAVA_HOME.*KAFKA_BOOTSTRAP_SERVERS"):
        LocalBroker(data_dir=tmp_path / "d").start()


def test_missing_mvn_with_an_empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrokerError, match=r"mvn \(Apache Maven\) not found.*install"):
        kafka_jars(cache_dir=tmp_path / "cache")


@pytest.mark.kafka
def test_start_timeout_leaves_no_process(local_broker: Callable[..., LocalBroker]) -> None:
    broker = local_broker(startup_timeout=0.3)
    started: list[int] = []
    original = broker._launch

    def launch(java: str, jars: Path) -> None:
        original(java, jars)
        assert broker.pid is not None
        started.append(broker.pid)

    broker._launch = launch  # type: ignore[method-assign]
    with pytest.raises(BrokerError, match=r"did not answer .* within 0 s"):
        broker.start()
    assert started and not alive(started[0])
    assert not broker.is_running()


def _fake_mvn(directory: Path, script: str) -> None:
    directory.mkdir()
    mvn = directory / "mvn"
    mvn.write_text(f"#!/bin/sh\n{script}\n")
    mvn.chmod(0o755)


def test_failed_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_mvn(tmp_path / "bin", 'echo "[ERROR] Could not resolve dependencies"; exit 1')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    with pytest.raises(BrokerError, match=r"mvn failed .*exit 1.*\n.*Could not resolve") as info:
        kafka_jars(cache_dir=tmp_path / "cache")
    assert "KAFKA_BOOTSTRAP_SERVERS" in str(info.value)
    assert list((tmp_path / "cache").iterdir()) == [tmp_path / "cache" / ".kafka-4.1.2.lock"]


@pytest.mark.timeout(30)
def test_download_timeout_kills_mvn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_mvn(tmp_path / "bin", "sleep 60 & sleep 60")  # a child holding the pipe, too
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setenv("STREAM_CF_MVN_TIMEOUT", "1")
    with pytest.raises(BrokerError, match=r"did not finish .* within 1 s.*STREAM_CF_MVN_TIMEOUT"):
        kafka_jars(cache_dir=tmp_path / "cache")


# 16 bytes whose URL-safe base64 starts with "-" (first byte 0xF8: its top six bits are 62)
DASH_BYTES = bytes([0xF8]) + bytes(range(1, 16))


def test_cluster_ids_never_start_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh id starting with "-" is drawn again (1 in 64 ids would: the command-line parser of
    Kafka's storage tool takes it for an option)."""
    draws = iter([uuid.UUID(bytes=DASH_BYTES), uuid.UUID(int=12345)])
    monkeypatch.setattr(local_module.uuid, "uuid4", lambda: next(draws))
    cluster_id = local_module._cluster_id()
    assert not cluster_id.startswith("-")
    assert len(cluster_id) == 22
    assert next(draws, None) is None  # the dash id was drawn, then refused


@pytest.mark.kafka
@pytest.mark.timeout(120)
def test_storage_formats_with_an_id_starting_with_a_dash(
    local_broker: Callable[..., LocalBroker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even an id starting with "-" (e.g. one written by another tool) formats and starts: the
    id is passed as one --cluster-id=... token."""
    import base64  # noqa: PLC0415

    dash_id = base64.urlsafe_b64encode(DASH_BYTES).decode().rstrip("=")
    assert dash_id.startswith("-")
    monkeypatch.setattr(local_module, "_cluster_id", lambda: dash_id)
    broker = local_broker()
    bootstrap = broker.start()
    topic = create_topic(bootstrap, partitions=1)
    assert read_all(bootstrap, topic, timeout=10.0) == []
    meta = (broker.data_dir or Path()).rglob("meta.properties")
    assert any(f"cluster.id={dash_id}" in path.read_text() for path in meta)
