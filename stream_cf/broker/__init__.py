"""A local Apache Kafka broker for development, tests and the demo.

``LocalBroker`` runs Apache Kafka's own broker (KRaft, one node) from Maven Central jars with the
machine's Java 17+; :func:`broker_bootstrap` gives tools a bootstrap address: the
``KAFKA_BOOTSTRAP_SERVERS`` environment variable when set, otherwise a local broker for the
duration of a ``with`` block.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stream_cf.broker.jars import KAFKA_VERSION, cache_root, find_java, kafka_jars
from stream_cf.broker.local import LocalBroker
from stream_cf.broker.net import HOST, broker_answers, free_port, port_is_free

__all__ = [
    "BOOTSTRAP_ENV",
    "HOST",
    "KAFKA_VERSION",
    "LocalBroker",
    "broker_answers",
    "broker_bootstrap",
    "cache_root",
    "env_bootstrap",
    "find_java",
    "free_port",
    "kafka_jars",
    "port_is_free",
]

logger = logging.getLogger(__name__)

BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"


def env_bootstrap() -> str | None:
    """``KAFKA_BOOTSTRAP_SERVERS`` when set and not blank, else None."""
    value = os.environ.get(BOOTSTRAP_ENV, "").strip()
    return value or None


@contextmanager
def broker_bootstrap(port: int | None = None, data_dir: Path | str | None = None) -> Iterator[str]:
    """Yield a bootstrap address: ``KAFKA_BOOTSTRAP_SERVERS`` if set, else a local broker's.

    The local broker (started with ``port`` and ``data_dir``) is stopped when the block exits;
    a broker named by the environment is used as is and left running.
    """
    external = env_bootstrap()
    if external is not None:
        logger.info("using the Kafka broker at %s (%s)", external, BOOTSTRAP_ENV)
        yield external
        return
    with LocalBroker(port=port, data_dir=data_dir) as broker:
        yield broker.bootstrap
