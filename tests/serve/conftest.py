"""Fixtures of the serve tests: a compacted uuid output topic and servers following it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from stream_cf.serve import BackgroundServer, load_serve_settings


@pytest.fixture
def output_topic(unique_topic: Callable[..., str]) -> str:
    """A new compacted topic, as the processor creates its output topic."""
    return unique_topic(prefix="serve", configs={"cleanup.policy": "compact"})


@pytest.fixture
def serve(kafka_bootstrap: str) -> Iterator[Callable[..., BackgroundServer]]:
    """Factory ``start(topic, **settings) -> BackgroundServer`` (started on a free loopback
    port, following ``topic``); every server started is stopped after the test."""
    servers: list[BackgroundServer] = []

    def start(topic: str, **overrides: Any) -> BackgroundServer:
        settings = load_serve_settings(
            bootstrap_servers=kafka_bootstrap,
            output_topic=topic,
            host="127.0.0.1",
            port=0,
            stats_interval=0.2,
            **overrides,
        )
        server = BackgroundServer(settings)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()
