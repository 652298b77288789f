"""Apache Kafka's broker jars from Maven Central, cached per user outside the repository.

The jars of ``org.apache.kafka:kafka_2.13`` and its runtime dependencies (plus a log4j2 binding for
slf4j, which Kafka's POM leaves out) are copied by ``maven-dependency-plugin`` from a generated POM
into ``${XDG_CACHE_HOME:-~/.cache}/stream-cf/kafka-<version>/``. The directory is filled atomically:
Maven works in a temporary directory beside it, which is renamed into place once complete, so a
half-finished download is never used and a second start needs no network.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from functools import cache
from pathlib import Path

from stream_cf.exceptions import BrokerError

logger = logging.getLogger(__name__)

KAFKA_VERSION = "4.1.2"
"""The Apache Kafka release run by the local broker (``org.apache.kafka:kafka_2.13``)."""

LOG4J_VERSION = "2.24.3"
DEPENDENCY_PLUGIN_VERSION = "3.8.1"
MVN_TIMEOUT_S = 900.0
"""Upper bound on the one-off ``mvn`` download; override with ``STREAM_CF_MVN_TIMEOUT``."""
MIN_JAVA = 17
MANIFEST = "jars.txt"
_SUFFICIENT = "Set KAFKA_BOOTSTRAP_SERVERS=host:port to use a running broker instead."

_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0
                             https://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.stream-cf</groupId>
  <artifactId>kafka-broker-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-api</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""


def cache_root() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/stream-cf``: where the jars of each Kafka version are kept."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stream-cf"


def find_java() -> str:
    """The ``java`` to run the broker with: ``$JAVA_HOME/bin/java``, else ``java`` on PATH.

    Raises BrokerError when there is none or when it is older than Java 17.
    """
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.access(Path(java_home) / "bin" / "java", os.X_OK):
        java = str(Path(java_home) / "bin" / "java")
    else:
        found = shutil.which("java")
        if found is None:
            raise BrokerError(
                "java not found (neither $JAVA_HOME/bin/java nor java on PATH): the local Kafka "
                f"broker needs a Java {MIN_JAVA}+ runtime; install one (e.g. "
                "`apt-get install openjdk-17-jre-headless`) and put it on PATH or set JAVA_HOME. "
                + _SUFFICIENT
            )
        java = found
    _check_java_version(java)
    return java


@cache
def _java_version_text(java: str) -> str:
    try:
        done = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerError(f"cannot run {java} -version: {exc}. {_SUFFICIENT}") from exc
    return done.stderr + done.stdout


def _check_java_version(java: str) -> None:
    text = _java_version_text(java)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if match is None:
        logger.warning("cannot read the Java version from %r", text.strip())
        return
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0_..." style
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise BrokerError(
            f"{java} is Java {major}; Apache Kafka {KAFKA_VERSION} needs Java {MIN_JAVA} or later: "
            f"install one and put it on PATH or set JAVA_HOME. {_SUFFICIENT}"
        )


def _is_complete(directory: Path) -> bool:
    return (directory / MANIFEST).is_file()


def kafka_jars(version: str = KAFKA_VERSION, *, cache_dir: Path | None = None) -> Path:
    """The directory holding the broker's jars, downloading them with Maven on first use.

    ``cache_dir`` defaults to :func:`cache_root`. Concurrent callers (test sessions, the CLI) wait
    on a lock file, so the jars are fetched once. Raises BrokerError when ``mvn`` is missing,
    fails or takes longer than ``STREAM_CF_MVN_TIMEOUT`` seconds (default 900).
    """
    root = cache_dir if cache_dir is not None else cache_root()
    target = root / f"kafka-{version}"
    if _is_complete(target):
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            f"mvn (Apache Maven) not found on PATH: it is needed once to download Apache Kafka "
            f"{version} from Maven Central into {target}; install it (e.g. `apt-get install "
            f"maven`) or copy the jars there by hand. {_SUFFICIENT}"
        )
    timeout = float(os.environ.get("STREAM_CF_MVN_TIMEOUT", MVN_TIMEOUT_S))
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BrokerError(f"cannot create the jar cache {root}: {exc}") from exc
    with _locked(root / f".kafka-{version}.lock", timeout + 60.0):
        if _is_complete(target):  # another process filled it while we waited
            return target
        _download(mvn, version, target, timeout)
    return target


class _locked:
    """An exclusive ``flock`` on ``path``, waited for at most ``timeout`` seconds."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self.fd = -1

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self.fd)
                    raise BrokerError(
                        f"timed out waiting for another process to download the Kafka jars "
                        f"(lock {self.path}); remove the lock file if no download is running"
                    ) from None
                time.sleep(0.5)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _download(mvn: str, version: str, target: Path, timeout: float) -> None:
    logger.info("downloading Apache Kafka %s jars from Maven Central into %s", version, target)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=f".kafka-{version}-", dir=target.parent))
    try:
        (work / "pom.xml").write_text(_POM.format(kafka=version, log4j=LOG4J_VERSION))
        jars = work / "jars"
        command = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(work / "pom.xml"),
            f"-Dmaven.repo.local={work / 'repository'}",
            f"org.apache.maven.plugins:maven-dependency-plugin:{DEPENDENCY_PLUGIN_VERSION}"
            ":copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={jars}",
        ]
        returncode, output = _run_group(command, timeout, mvn, version)
        names = sorted(p.name for p in jars.glob("*.jar")) if jars.is_dir() else []
        if returncode != 0 or not any(n.startswith("kafka_2.13-") for n in names):
            lines = _ANSI.sub("", output).strip().splitlines()
            errors = [line for line in lines if line.startswith("[ERROR]") and line[7:].strip()]
            detail = "\n".join((errors or lines)[:5])
            raise BrokerError(
                f"mvn failed to download Apache Kafka {version} from Maven Central "
                f"(exit {returncode}); check the network access to Maven Central or your "
                f"~/.m2/settings.xml. {_SUFFICIENT}\n{detail}"
            )
        (jars / MANIFEST).write_text("\n".join(names) + "\n")
        try:
            jars.rename(target)
        except OSError:
            if not _is_complete(target):
                raise
        logger.info(
            "downloaded %d jars in %.1f s into %s", len(names), time.monotonic() - started, target
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


_QUIET_CDS = ["-Xshare:auto", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]


def class_archive_options(jars: Path, java: str) -> tuple[list[str], Path | None]:
    """JVM options for a class-data-sharing archive of the broker kept beside its jars.

    The archive (one per Java build) halves the CPU the broker needs to start. When it exists the
    options use it; otherwise the JVM writes one at exit into the returned pending path, which
    :func:`publish_class_archive` renames into place after a clean stop. A JVM that cannot use
    the archive ignores it (``-Xshare:auto``).
    """
    if not os.access(jars, os.W_OK):
        return [], None
    real = os.path.realpath(java)
    fingerprint = hashlib.sha256(f"{real}\n{_java_version_text(java)}".encode()).hexdigest()[:16]
    archive = jars / f"broker-{fingerprint}.jsa"
    if archive.is_file():
        return [*_QUIET_CDS, f"-XX:SharedArchiveFile={archive}"], None
    pending = jars / f".{archive.name}.{uuid.uuid4().hex}.tmp"
    return [*_QUIET_CDS, f"-XX:ArchiveClassesAtExit={pending}"], pending


def publish_class_archive(pending: Path, clean_exit: bool) -> None:
    """Move the archive a JVM wrote at exit into place (only after a clean exit), else drop it."""
    final = pending.parent / pending.name.removeprefix(".").rsplit(".", 2)[0]
    try:
        if clean_exit and pending.is_file() and pending.stat().st_size > 0:
            os.replace(pending, final)
            logger.debug("class-data archive written to %s", final)
        else:
            pending.unlink(missing_ok=True)
    except OSError as exc:
        logger.debug("cannot publish the class-data archive %s: %s", pending, exc)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _run_group(command: list[str], timeout: float, mvn: str, version: str) -> tuple[int, str]:
    """Run ``command`` in its own process group; kill the whole group on a timeout or a signal."""
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    except OSError as exc:
        raise BrokerError(f"cannot run {mvn}: {exc}. {_SUFFICIENT}") from exc
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        _kill_group(process)
        raise BrokerError(
            f"mvn did not finish downloading Apache Kafka {version} within {timeout:.0f} s "
            f"(raise STREAM_CF_MVN_TIMEOUT or check the network access to Maven Central). "
            + _SUFFICIENT
        ) from exc
    except BaseException:
        _kill_group(process)
        raise
    return process.returncode, output


def _kill_group(process: subprocess.Popen[str]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:
        process.kill()
    process.communicate()
