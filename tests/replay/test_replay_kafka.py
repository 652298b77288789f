"""``stream-cf replay`` into a real topic: counts, keys, order, rate, malformed lines."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from stream_cf.events import parse_event
from tests.kafka_utils import read_all
from tests.replay.conftest import PURCHASES, RATINGS_IN_TIME_ORDER

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

Cli = Callable[..., tuple[int, str, str]]
CSV_MAPPING = ("--user-col", "user", "--item-col", "movie", "--rating-col", "stars")


def test_csv_in_time_order(
    kafka_bootstrap: str, unique_topic: Callable[..., str], ratings_csv: Path, cli: Cli
) -> None:
    topic = unique_topic(prefix="replay-csv")
    code, out, err = cli(
        "replay", str(ratings_csv), "--topic", topic, "--bootstrap-servers", kafka_bootstrap,
        *CSV_MAPPING, "--time-col", "when", "--order", "time", "--json",
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["attempted"], summary["sent"], summary["failed"]) == (5, 5, 0)
    records = read_all(kafka_bootstrap, topic)
    assert len(records) == 5
    events = [parse_event(r.value) for r in records]
    assert [r.key.decode() for r in records] == [e.user_id for e in events]
    got = [(e.user_id, e.item_id, e.rating, e.ts.timestamp()) for e in events]  # type: ignore[union-attr]
    assert got == RATINGS_IN_TIME_ORDER
    assert all(json.loads(r.value)["type"] == "rating" for r in records)


def test_jsonl_with_a_mapping(
    kafka_bootstrap: str, unique_topic: Callable[..., str], purchases_jsonl: Path, cli: Cli
) -> None:
    topic = unique_topic(prefix="replay-jsonl")
    code, _, err = cli(
        "replay", str(purchases_jsonl), "--topic", topic, "--bootstrap-servers", kafka_bootstrap,
        "--user-col", "who", "--item-col", "sku", "--quantity-col", "n", "--time-col", "at",
        "--event-type", "purchase", "--order", "time",
    )  # fmt: skip
    assert code == 0, err
    assert "replayed 3 of 3 events" in err
    records = read_all(kafka_bootstrap, topic)
    values = [json.loads(r.value) for r in records]
    assert [r.key for r in records] == [b"c2", b"c1", b"c1"]
    assert [(v["type"], v["user_id"], v["item_id"], v["quantity"]) for v in values] == [
        ("purchase", p["who"], p["sku"], float(p["n"]))  # type: ignore[arg-type]
        for p in sorted(PURCHASES, key=lambda p: str(p["at"]))
    ]
    stamps = [v["ts"] for v in values]
    assert stamps == sorted(stamps)


def test_rate_is_honoured(
    kafka_bootstrap: str, unique_topic: Callable[..., str], tmp_path: Path, cli: Cli
) -> None:
    path = tmp_path / "many.csv"
    path.write_text("user_id,item_id,rating\n" + "".join(f"u{i % 17},i{i},3\n" for i in range(200)))
    topic = unique_topic(prefix="replay-rate")
    code, out, err = cli(
        "replay", str(path), "--topic", topic, "--bootstrap-servers", kafka_bootstrap,
        "--rate", "100", "--json",
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert summary["sent"] == 200
    records = read_all(kafka_bootstrap, topic)
    assert len(records) == 200
    # record timestamps are taken when each record is sent: 199 intervals of 10 ms
    span = (records[-1].timestamp - records[0].timestamp) / 1000
    assert span == pytest.approx(1.99, rel=0.2)
    assert 199 / span == pytest.approx(100, rel=0.2)


def test_malformed_lines_skipped(
    kafka_bootstrap: str, unique_topic: Callable[..., str], bad_csv: Path, cli: Cli
) -> None:
    topic = unique_topic(prefix="replay-skip")
    code, _, err = cli(
        "replay", str(bad_csv), "--topic", topic, "--bootstrap-servers", kafka_bootstrap,
        *CSV_MAPPING, "--time-col", "when",
    )  # fmt: skip
    assert code == 0, err
    assert "malformed line 3:" in err and "malformed line 5:" in err
    assert "malformed lines: 2 (skipped)" in err
    records = read_all(kafka_bootstrap, topic)
    assert [r.key for r in records] == [b"u1", b"u3", b"u5"]


def test_malformed_line_stops(
    kafka_bootstrap: str, unique_topic: Callable[..., str], bad_csv: Path, cli: Cli
) -> None:
    topic = unique_topic(prefix="replay-stop")
    code, out, err = cli(
        "replay", str(bad_csv), "--topic", topic, "--bootstrap-servers", kafka_bootstrap,
        *CSV_MAPPING, "--time-col", "when", "--on-error", "stop", "--json",
    )  # fmt: skip
    assert code == 1
    assert "malformed line 3:" in err and "line 5" not in err
    summary = json.loads(out)
    assert (summary["sent"], summary["stopped_at_line"]) == (1, 3)
    assert [r.key for r in read_all(kafka_bootstrap, topic)] == [b"u1"]
