"""``stream-cf broker``: a local Apache Kafka broker in the foreground.

It prints ``bootstrap=127.0.0.1:<port>`` on standard output once the broker accepts clients, runs
until SIGINT or SIGTERM, then stops the broker (no java process is left behind, also when the
signal comes while it is still starting). With ``--data-dir`` a broker started again on the same
directory keeps its topics, records and committed offsets.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from stream_cf.broker import KAFKA_VERSION, LocalBroker
from stream_cf.exceptions import BrokerError

logger = logging.getLogger(__name__)


class _Stop(BaseException):
    """Raised by the SIGTERM handler to leave the wait (BaseException: nothing swallows it)."""


def register(subparsers: Any) -> None:
    """Add the ``broker`` sub-command."""
    parser = subparsers.add_parser(
        "broker",
        help="run a local Apache Kafka broker in the foreground",
        description=(
            f"Run Apache Kafka {KAFKA_VERSION} (KRaft, one node, 127.0.0.1 only) from Maven "
            "Central jars with the machine's Java 17+, until SIGINT or SIGTERM. Prints "
            "'bootstrap=HOST:PORT' once it accepts clients. Needs java (and mvn the first time, "
            "to download the jars into ~/.cache/stream-cf)."
        ),
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="client port on 127.0.0.1 (default: the data dir's last port if free, else any)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep the broker's storage here across restarts (default: a temporary directory)",
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=90.0,
        help="seconds to wait for the broker to answer (default 90)",
    )
    parser.set_defaults(func=run)


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signum)


def run(args: argparse.Namespace) -> int:
    """Start the broker, print its bootstrap line, wait for a signal, stop it."""
    if args.port is not None and not 0 < args.port < 65536:
        raise BrokerError(f"--port {args.port} is not a TCP port (1-65535)")
    broker = LocalBroker(
        port=args.port, data_dir=args.data_dir, startup_timeout=args.startup_timeout
    )
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        bootstrap = broker.start()
        print(f"bootstrap={bootstrap}", flush=True)
        logger.info(
            "local Kafka running at %s (data dir %s, log %s); stop with Ctrl-C or SIGTERM",
            bootstrap,
            broker.data_dir,
            broker.log_file,
        )
        while True:
            code = broker.wait(timeout=1.0)
            if code is not None:
                raise BrokerError(
                    f"the local Kafka broker exited by itself with code {code} "
                    f"(see {broker.log_file})"
                )
    except (_Stop, KeyboardInterrupt):
        logger.info("stopping the local Kafka broker")
        return 0
    finally:
        # A second signal must not interrupt the stop and leave the JVM running.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            broker.stop()
        finally:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            sys.stdout.flush()
