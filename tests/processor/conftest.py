"""Helpers of the processor tests: settings on uuid topics, running the processor, the oracle."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from stream_cf.engine import UserKNN
from stream_cf.events import Event, event_to_dict
from stream_cf.processor.codec import decode_recommendations
from stream_cf.processor.settings import ProcessorSettings, load_settings
from tests.kafka_utils import produce, read_all, unique_name

Lists = dict[str, tuple[list[tuple[str, float]], str | None] | None]


def event_bytes(event: Event) -> bytes:
    return json.dumps(event_to_dict(event)).encode("utf-8")


def produce_events(bootstrap: str, topic: str, events: Sequence[Event | bytes | None]) -> int:
    """Produce events (models, raw bytes or None) keyed by user id where there is one."""
    values: list[bytes | None] = []
    keys: list[bytes | None] = []
    for event in events:
        if event is None or isinstance(event, bytes):
            values.append(event)
            keys.append(b"raw")
        else:
            values.append(event_bytes(event))
            keys.append(event.user_id.encode("utf-8"))
    return produce(bootstrap, topic, values, keys=keys, partition=0, timeout=60.0)


@pytest.fixture
def make_settings(kafka_bootstrap: str, tmp_path: Path) -> Callable[..., ProcessorSettings]:
    """Factory: settings on fresh uuid topics (created by the processor) and a fresh state dir."""

    def make(bootstrap: str | None = None, **overrides: Any) -> ProcessorSettings:
        base = unique_name("proc")
        values: dict[str, Any] = {
            "bootstrap_servers": bootstrap or kafka_bootstrap,
            "input_topic": f"{base}.in",
            "output_topic": f"{base}.out",
            "group_id": unique_name("group"),
            "state_dir": str(tmp_path / base),
            "checkpoint_interval": 1.0,
            "retry_backoff_max": 1.0,
            "max_batch": 500,
        }
        values.update(overrides)
        return load_settings(**values)

    return make


def last_lists(bootstrap: str, topic: str) -> Lists:
    """The last record per user on the output topic: (items, fallback), or None for a tombstone.
    Read with read_committed: records of aborted transactions are not there for readers."""
    result: Lists = {}
    for record in read_all(bootstrap, topic, timeout=60.0, read_committed=True):
        user = record.key.decode("utf-8")
        if record.value is None:
            result[user] = None
        else:
            _, items, fallback = decode_recommendations(record.value)
            result[user] = (items, fallback)
    return result


def oracle_engine(settings: ProcessorSettings, events: Iterable[Event]) -> UserKNN:
    """The engine built from every event in one batch."""
    engine = UserKNN(**settings.engine_config())
    engine.apply_many(list(events))
    return engine


def oracle_lists(settings: ProcessorSettings, events: Iterable[Event]) -> Lists:
    engine = oracle_engine(settings, events)
    expected: Lists = {}
    for user, recs in engine.recommend_many(engine.users(), n=settings.n).items():
        expected[user] = (list(recs.items), recs.fallback)
    return expected


def assert_same_lists(actual: Lists, expected: Lists) -> None:
    """Same users, same items in the same order, same fallbacks, scores equal to 1e-9."""
    assert sorted(actual) == sorted(expected), (
        f"users differ: only published {sorted(set(actual) - set(expected))[:10]}, "
        f"only expected {sorted(set(expected) - set(actual))[:10]}"
    )
    for user, want in expected.items():
        got = actual[user]
        if want is None or got is None:
            assert got == want, user
            continue
        assert [i for i, _ in got[0]] == [i for i, _ in want[0]], f"user {user}: {got} != {want}"
        assert got[1] == want[1], user
        for (_, a), (_, b) in zip(got[0], want[0], strict=True):
            assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), (user, a, b)


def cli_command(settings: ProcessorSettings, *extra: str, log_level: str = "INFO") -> list[str]:
    """``python -m stream_cf run`` with the flags of these settings."""
    return [
        sys.executable,
        "-m",
        "stream_cf",
        "--log-level",
        log_level,
        "run",
        "--bootstrap-servers",
        settings.bootstrap_servers,
        "--input-topic",
        settings.input_topic,
        "--output-topic",
        settings.output_topic,
        "--group-id",
        settings.group_id,
        "--state-dir",
        str(settings.state_dir),
        "--checkpoint-interval",
        str(settings.checkpoint_interval),
        "--max-batch",
        str(settings.max_batch),
        "--refresh",
        settings.refresh,
        "--n",
        str(settings.n),
        *extra,
    ]


def start_cli(
    settings: ProcessorSettings, log: Path, *extra: str, log_level: str = "INFO"
) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    handle = log.open("ab")
    return subprocess.Popen(
        cli_command(settings, *extra, log_level=log_level),
        stdout=handle,
        stderr=subprocess.STDOUT,
        env=env,
    )
