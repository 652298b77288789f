"""A single-node Apache Kafka broker (KRaft, broker and controller in one JVM) on 127.0.0.1.

:class:`LocalBroker` writes ``server.properties`` and a log4j2 configuration into its data
directory, formats the storage once (the cluster id stays in the directory), runs
``java -cp '<jars>/*' kafka.Kafka server.properties`` and waits until an admin client answers.
Stopping sends SIGTERM and kills after a timeout. Started again on the same data directory it
keeps its topics, records and committed offsets, and it listens on the same ports, so clients
reconnect by themselves.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from stream_cf.broker.jars import (
    KAFKA_VERSION,
    class_archive_options,
    find_java,
    kafka_jars,
    publish_class_archive,
)
from stream_cf.broker.net import HOST, accepts, broker_answers, free_port, port_is_free
from stream_cf.exceptions import BrokerError

logger = logging.getLogger(__name__)

STATE_FILE = "stream-cf-broker.json"
SERVER_LOG = "server.log"
_SUFFICIENT = "Set KAFKA_BOOTSTRAP_SERVERS=host:port to use a running broker instead."


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """Ask Linux to SIGTERM the broker when the thread that started it dies (PR_SET_PDEATHSIG)."""
    import ctypes  # noqa: PLC0415

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class LocalBroker:
    """Apache Kafka (``kafka_2.13``, KRaft) run from Maven Central jars with the machine's Java.

    ``port``: the client port (default: the one this data dir last used if free, else a free one);
    ``data_dir``: where the storage, configuration and ``server.log`` live (default: a temporary
    directory removed by :meth:`stop`). A data directory keeps the cluster id, the topics, the
    records and the committed offsets across stops and starts. :meth:`start` returns the bootstrap
    address ``"127.0.0.1:<port>"``; calling it again after :meth:`stop` restarts on the same ports.
    """

    def __init__(
        self,
        port: int | None = None,
        data_dir: Path | str | None = None,
        *,
        controller_port: int | None = None,
        version: str = KAFKA_VERSION,
        cache_dir: Path | None = None,
        startup_timeout: float = 90.0,
        stop_timeout: float = 30.0,
        heap: str = "512m",
        log_level: str = "INFO",
        jvm_options: Sequence[str] = (),
        class_archive: bool = True,
    ) -> None:
        self.version = version
        self.cache_dir = cache_dir
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.heap = heap
        self.log_level = log_level
        self.jvm_options = list(jvm_options)
        self.class_archive = class_archive
        self._pending_archive: Path | None = None
        self._ready = False
        self._given_data_dir = Path(data_dir).resolve() if data_dir is not None else None
        self._data_dir: Path | None = self._given_data_dir
        self._state = self._read_state()
        self._port = port if port is not None else self._reusable("port")
        self._controller_port = (
            controller_port if controller_port is not None else self._reusable("controller_port")
        )
        self._process: subprocess.Popen[bytes] | None = None

    # -- properties -------------------------------------------------------------------------
    @property
    def port(self) -> int | None:
        """The client port (known once started, or when given)."""
        return self._port

    @property
    def bootstrap(self) -> str:
        """``"127.0.0.1:<port>"``; raises BrokerError before the first :meth:`start`."""
        if self._port is None:
            raise BrokerError("the local broker has no port yet: call start() first")
        return f"{HOST}:{self._port}"

    @property
    def data_dir(self) -> Path | None:
        """The data directory (a temporary one exists only while running)."""
        return self._data_dir

    @property
    def pid(self) -> int | None:
        """The process id of the broker's JVM while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def log_file(self) -> Path | None:
        """The broker's own log (log4j2, ``server.log`` in the data directory)."""
        return self._data_dir / SERVER_LOG if self._data_dir is not None else None

    def is_running(self) -> bool:
        """Whether the JVM was started and has not exited."""
        return self._process is not None and self._process.poll() is None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> str:
        """Start the broker, wait until it answers clients and return its bootstrap address.

        Raises BrokerError (and leaves no process behind) when java or the jars are missing, a
        port is in use, the broker exits or it does not answer within ``startup_timeout``.
        """
        if self.is_running():
            return self.bootstrap
        java = find_java()
        jars = kafka_jars(self.version, cache_dir=self.cache_dir)
        started = time.monotonic()
        self._ready = False
        try:
            self._launch(java, jars)
            self._wait_ready(started)
            self._ready = True
        except BaseException:
            self.stop()
            raise
        logger.info(
            "local Kafka %s ready at %s in %.1f s (data dir %s)",
            self.version,
            self.bootstrap,
            time.monotonic() - started,
            self._data_dir,
        )
        return self.bootstrap

    def stop(self) -> None:
        """SIGTERM the broker, SIGKILL it after ``stop_timeout`` s; remove a temporary data dir.

        Safe to call twice, or when the broker never started.
        """
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    logger.warning(
                        "the broker did not stop in %.0f s: killing it", self.stop_timeout
                    )
                    process.kill()
                    process.wait(timeout=30)
            logger.info("local Kafka stopped (exit %s)", process.returncode)
            if self._pending_archive is not None:
                # Only a broker that came up has loaded the classes worth archiving.
                clean = self._ready and process.returncode in (0, 128 + signal.SIGTERM)
                publish_class_archive(self._pending_archive, clean)
                self._pending_archive = None
        if self._given_data_dir is None and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None

    def kill(self) -> None:
        """SIGKILL the broker at once (a crash, for tests); the data directory stays."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=30)

    def restart(self) -> str:
        """Stop and start again on the same data directory and ports."""
        if self._given_data_dir is None:
            raise BrokerError("restart() needs a data_dir: a temporary one is removed by stop()")
        self.stop()
        return self.start()

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the JVM to exit (at most ``timeout`` s); its exit code, or None if running."""
        if self._process is None:
            return None
        try:
            return self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"LocalBroker(port={self._port}, data_dir={self._data_dir}, {state})"

    # -- internals --------------------------------------------------------------------------
    def _read_state(self) -> dict[str, Any]:
        if self._given_data_dir is None:
            return {}
        try:
            state: dict[str, Any] = json.loads((self._given_data_dir / STATE_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return state

    def _reusable(self, key: str) -> int | None:
        value = self._state.get(key)
        return value if isinstance(value, int) and port_is_free(value) else None

    def _launch(self, java: str, jars: Path) -> None:
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="stream-cf-kafka-"))
        data = self._data_dir
        try:
            data.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BrokerError(f"cannot create the broker data dir {data}: {exc}") from exc
        if self._port is None:
            self._port = free_port()
        if self._controller_port is None or self._controller_port == self._port:
            self._controller_port = free_port()
        for name, port in (("client", self._port), ("controller", self._controller_port)):
            if not port_is_free(port):
                raise BrokerError(
                    f"port {port} on {HOST} (the broker's {name} port) is in use: choose another "
                    f"with --port / LocalBroker(port=...), or leave it out to pick a free one. "
                    + _SUFFICIENT
                )
        meta = data / "kraft" / "meta.properties"
        formatted = meta.is_file()
        cluster_id = _formatted_cluster_id(meta) if formatted else _cluster_id()
        self._write_config(data, cluster_id)
        self._state = {
            "cluster_id": cluster_id,
            "port": self._port,
            "controller_port": self._controller_port,
            "version": self.version,
        }
        (data / STATE_FILE).write_text(json.dumps(self._state, indent=2) + "\n")
        classpath = f"{jars}/*"
        jvm = [
            java,
            f"-Xmx{self.heap}",
            "-Xms64m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",  # C1 only: a third less CPU to start, ample for tests
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={data / 'log4j2.properties'}",
            *self.jvm_options,
        ]
        if not formatted:
            self._format([*jvm, "-cp", classpath], data, cluster_id)
        archive: list[str] = []
        if self.class_archive:
            archive, self._pending_archive = class_archive_options(jars, java)
        preexec: Callable[[], None] | None = _die_with_parent if sys.platform == "linux" else None
        with (data / "stdout.log").open("ab") as out:
            try:
                self._process = subprocess.Popen(
                    [
                        *jvm,
                        *archive,
                        "-cp",
                        classpath,
                        "kafka.Kafka",
                        str(data / "server.properties"),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=data,
                    start_new_session=True,
                    preexec_fn=preexec,  # noqa: PLW1509 - only prctl(), no locks touched
                )
            except OSError as exc:
                raise BrokerError(f"cannot run {java}: {exc}. {_SUFFICIENT}") from exc

    def _format(self, jvm: list[str], data: Path, cluster_id: str) -> None:
        command = [
            *jvm,
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={cluster_id}",  # one token, whatever the id starts with
            "-c",
            str(data / "server.properties"),
            "--ignore-formatted",
        ]
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=max(self.startup_timeout, 30.0),
                check=False,
                stdin=subprocess.DEVNULL,
                cwd=data,
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(
                f"formatting the broker storage in {data} took longer than "
                f"{max(self.startup_timeout, 30.0):.0f} s. {_SUFFICIENT}"
            ) from exc
        if done.returncode != 0:
            raise BrokerError(
                f"formatting the broker storage in {data} failed (exit {done.returncode}): "
                f"{(done.stdout + done.stderr).strip()[-2000:]}"
            )

    def _write_config(self, data: Path, cluster_id: str) -> None:
        assert self._port is not None and self._controller_port is not None
        properties = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{self._controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{self._port},CONTROLLER://{HOST}:{self._controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self._port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(data / "kraft"),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "delete.topic.enable": "true",
            "num.io.threads": "2",
            "num.network.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            "log.retention.hours": "-1",
            "log.segment.bytes": str(64 * 1024 * 1024),
        }
        text = "".join(f"{key}={value}\n" for key, value in properties.items())
        (data / "server.properties").write_text(
            f"# Written by stream_cf.broker for Apache Kafka {self.version}; cluster {cluster_id}\n"
            + text
        )
        (data / "log4j2.properties").write_text(
            _LOG4J2.format(log=data / SERVER_LOG, level=self.log_level)
        )

    def _wait_ready(self, started: float) -> None:
        deadline = started + self.startup_timeout
        while True:
            process = self._process
            assert process is not None
            if process.poll() is not None:
                raise BrokerError(
                    f"the local Kafka broker exited with code {process.returncode} while starting"
                    f"{self._why_failed()}. {_SUFFICIENT}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerError(
                    f"the local Kafka broker did not answer at {self.bootstrap} within "
                    f"{self.startup_timeout:.0f} s (see {self.log_file}). {_SUFFICIENT}"
                )
            assert self._port is not None
            if accepts(self._port, min(remaining, 1.0)) and broker_answers(
                self.bootstrap, timeout=min(remaining, 5.0)
            ):
                return
            time.sleep(min(0.2, max(remaining, 0.0)))

    def _why_failed(self) -> str:
        if self._data_dir is None:
            return ""
        lines: list[str] = []
        for name in (SERVER_LOG, "stdout.log"):
            with contextlib.suppress(OSError):
                lines += (self._data_dir / name).read_text(errors="replace").splitlines()
        errors = [line for line in lines if "ERROR" in line or "Exception" in line]
        if any("Address already in use" in line for line in lines):
            return " because a port is in use (choose another with --port)"
        return (": " + " | ".join(errors[-3:])[:1500]) if errors else f" (see {self.log_file})"


def _formatted_cluster_id(meta: Path) -> str:
    """The cluster id that formatting wrote into ``meta.properties``."""
    try:
        for line in meta.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "cluster.id" and value.strip():
                return value.strip()
    except OSError as exc:
        raise BrokerError(f"cannot read {meta}: {exc}") from exc
    raise BrokerError(f"{meta} has no cluster.id: remove the data directory to start afresh")


def _cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (22 characters), never
    starting with "-" (a command-line parser takes that for an option; Kafka's own
    ``Uuid.randomUuid`` draws again in that case too)."""
    import base64  # noqa: PLC0415

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


_LOG4J2 = """\
# Written by stream_cf.broker: the broker logs to a file in its data directory.
status = warn
name = stream-cf-broker
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.file.ref = FILE
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
"""
