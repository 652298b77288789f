"""``stream-cf demo`` end to end against the session broker (a shortened replay)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.kafka_utils import admin_client, wait_until
from tests.replay.conftest import requires_ml100k

pytestmark = [pytest.mark.kafka, requires_ml100k]

Cli = Callable[..., tuple[int, str, str]]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_demo(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, cli: Cli) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    code, out, err = cli("demo", "--limit", "5000", "--show", "2", "--top", "3")
    assert code == 0, out + err
    assert f"using the Kafka broker at {kafka_bootstrap}" in out
    assert "start the local Kafka broker" not in out  # no second broker
    assert "5,000 events sent" in out
    assert "5,000 events applied, 0 dead letters" in out
    shown = re.findall(r"^user (\S+)", out, re.M)
    assert len(shown) == 2
    ranked = re.findall(r"^\s+\d\.\s+\d\.\d{3}\s+(.+)  \[\d+\]$", out, re.M)
    assert len(ranked) == 6
    assert all(re.search(r"\(\d{4}\)$", title) for title in ranked)  # "Title (year)"
    for step in ("create the topics", "replay ml-100k", "run the processor", "total"):
        assert re.search(rf"^  {re.escape(step)}.*\d+\.\d s$", out, re.M), step
    # everything the demo made on a broker it did not start is gone
    (suffix,) = set(re.findall(r"demo-([0-9a-f]{12})\.", out))
    admin = admin_client(kafka_bootstrap)
    try:
        wait_until(
            lambda: not [t for t in admin.list_topics() if suffix in t],
            timeout=30,
            what="the demo topics to be deleted",
        )
    finally:
        admin.close()
