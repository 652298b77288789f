"""``stream-cf recommendations``: the latest list per user, tombstones, table and JSON."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from stream_cf.replay import read_latest
from tests.kafka_utils import produce
from tests.replay.conftest import requires_ml100k

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

Cli = Callable[..., tuple[int, str, str]]


def _list(user: str, *items: tuple[str, float], fallback: str | None = None) -> dict[str, object]:
    return {
        "user_id": user,
        "items": [{"item_id": i, "score": s} for i, s in items],
        "fallback": fallback,
        "event_time": "1998-04-22T23:10:38.000Z",
        "input_topic": "cf.events",
        "input_offsets": {"0": 1},
    }


@pytest.fixture
def output_topic(kafka_bootstrap: str, unique_topic: Callable[..., str]) -> str:
    topic = unique_topic(prefix="recs", partitions=2)
    values = [
        _list("1", ("50", 4.5), ("1", 4.0)),
        _list("2", ("1", 3.0)),
        _list("3", ("2", 2.5), fallback="unknown user: popularity"),
        _list("1", ("1", 4.9), ("181", 4.2), ("50", 4.1)),  # replaces user 1's first list
        None,  # user 2 forgotten
        b"not json",
    ]
    keys = ["1", "2", "3", "1", "2", "9"]
    produce(kafka_bootstrap, topic, values, keys=keys, partition=None)
    return topic


def test_read_latest(kafka_bootstrap: str, output_topic: str) -> None:
    snapshot = read_latest(kafka_bootstrap, output_topic, timeout=60)
    assert sorted(snapshot.lists) == ["1", "3"]
    assert snapshot.lists["1"].items == [("1", 4.9), ("181", 4.2), ("50", 4.1)]
    assert snapshot.lists["3"].fallback == "unknown user: popularity"
    assert (snapshot.records, snapshot.tombstones, snapshot.unreadable) == (6, 1, 1)


@requires_ml100k
def test_table_with_titles(kafka_bootstrap: str, output_topic: str, cli: Cli) -> None:
    code, out, err = cli(
        "recommendations", "--topic", output_topic, "--bootstrap-servers", kafka_bootstrap,
        "--titles", "ml-100k",
    )  # fmt: skip
    assert code == 0, err
    assert out.index("user 1") < out.index("user 3")
    assert "Toy Story (1995)  [1]" in out and "Star Wars (1977)  [50]" in out
    assert "fallback: unknown user: popularity" in out
    assert "user 2" not in out
    assert "2 users with a list" in err


def test_json_and_user_selection(kafka_bootstrap: str, output_topic: str, cli: Cli) -> None:
    code, out, _ = cli(
        "recommendations", "1", "--topic", output_topic, "--bootstrap-servers", kafka_bootstrap,
        "--json", "-n", "2",
    )  # fmt: skip
    assert code == 0
    (line,) = out.splitlines()
    body = json.loads(line)
    assert body["user_id"] == "1"
    assert body["items"] == [{"item_id": "1", "score": 4.9}, {"item_id": "181", "score": 4.2}]
    code, out, err = cli(
        "recommendations", "2", "3", "--topic", output_topic,
        "--bootstrap-servers", kafka_bootstrap, "--json",
    )  # fmt: skip
    assert code == 1  # user 2 was forgotten
    assert [json.loads(x)["user_id"] for x in out.splitlines()] == ["3"]
    assert "no recommendations for: 2" in err


def test_missing_topic_is_an_error(kafka_bootstrap: str, cli: Cli) -> None:
    code, _, err = cli(
        "recommendations", "--topic", "no-such-topic-4f1c", "--bootstrap-servers", kafka_bootstrap,
        "--timeout", "20",
    )  # fmt: skip
    assert code == 2
    assert "the topic 'no-such-topic-4f1c' does not exist" in err
