"""Named datasets (event-time order, ids, titles) and the event-file reader."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from stream_cf import datasets
from stream_cf.datasets import dataset_events, item_titles
from stream_cf.event_files import ColumnMapping, Malformed, read_event_file
from stream_cf.events import Event, PurchaseEvent, RatingEvent
from stream_cf.exceptions import ConfigError, DatasetUnavailable
from tests.replay.conftest import requires_instacart, requires_ml100k


@pytest.fixture(scope="module")
def ml100k() -> list[Event]:
    return dataset_events("ml-100k")


@requires_ml100k
def test_ml100k_is_in_event_time_order_ties_by_file_order(ml100k: list[Event]) -> None:
    events = ml100k
    assert len(events) == 100_000
    assert all(isinstance(e, RatingEvent) for e in events)
    assert len({e.user_id for e in events}) == 943
    assert len({e.item_id for e in events}) == 1682
    keys = [(e.ts, int(str(e.event_id).split(":")[1])) for e in events]
    assert keys == sorted(keys)  # by time, then by line number
    assert len({e.event_id for e in events}) == 100_000
    first = events[0]
    assert (first.user_id, first.item_id, first.rating) == ("259", "255", 4.0)
    assert first.ts is not None and first.ts.timestamp() == 874724710


@requires_ml100k
def test_ml100k_limit_is_the_first_events_in_time(ml100k: list[Event]) -> None:
    assert dataset_events("ml-100k", limit=50) == ml100k[:50]
    assert dataset_events("ml-100k", limit=0) == []


@requires_ml100k
def test_ml100k_titles() -> None:
    titles = item_titles("ml-100k")
    assert len(titles) == 1682
    assert titles["1"] == "Toy Story (1995)"
    assert titles["50"] == "Star Wars (1977)"


@requires_instacart
def test_instacart_order_and_timeline() -> None:
    events = dataset_events("instacart")
    assert len(events) == 150_000
    assert all(isinstance(e, PurchaseEvent) and e.quantity == 1.0 for e in events)
    assert len({e.user_id for e in events}) == 593
    assert len({e.item_id for e in events}) == 14_190
    stamps = [e.ts for e in events]
    assert stamps == sorted(stamps)  # type: ignore[type-var]
    # every user's first order is on day 0 of the timeline
    first_day = {}
    for event in events:
        first_day.setdefault(event.user_id, event.ts)
    assert all(ts.date() == datasets.INSTACART_EPOCH.date() for ts in first_day.values())
    assert item_titles("instacart") == {}


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        datasets.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "recbole" else real(name, *a),
    )
    with pytest.raises(DatasetUnavailable, match=r"pip install --no-deps recbole==1\.2\.1"):
        dataset_events("ml-100k")
    with pytest.raises(DatasetUnavailable, match="make datasets"):
        item_titles("ml-100k")


def test_unknown_dataset() -> None:
    with pytest.raises(DatasetUnavailable, match="ml-100k, instacart"):
        dataset_events("movielens-1m")  # type: ignore[arg-type]


def test_csv_with_a_column_mapping(ratings_csv: Path) -> None:
    mapping = ColumnMapping(user="user", item="movie", rating="stars", time="when")
    rows = list(read_event_file(ratings_csv, mapping))
    assert [line for line, _ in rows] == [2, 3, 4, 5, 6]
    first = rows[0][1]
    assert isinstance(first, RatingEvent)
    assert (first.user_id, first.item_id, first.rating) == ("u1", "m1", 4.0)
    assert first.ts is not None and first.ts.timestamp() == 1000


def test_jsonl_with_a_fixed_type(purchases_jsonl: Path) -> None:
    mapping = ColumnMapping(user="who", item="sku", quantity="n", time="at", event_type="purchase")
    rows = list(read_event_file(purchases_jsonl, mapping))
    assert [line for line, _ in rows] == [1, 2, 3]
    events = [event for _, event in rows]
    assert all(isinstance(e, PurchaseEvent) for e in events)
    assert [(e.user_id, e.item_id, e.quantity) for e in events] == [  # type: ignore[union-attr]
        ("c1", "p1", 2.0),
        ("c2", "p2", 1.0),
        ("c1", "p3", 3.0),
    ]


def test_wire_names_need_no_mapping_and_type_column_wins(tmp_path: Path) -> None:
    path = tmp_path / "events.tsv"
    path.write_text(
        "type\tuser_id\titem_id\trating\tquantity\tts\n"
        "rating\t1\t10\t4\t\t5\n"
        "purchase\t1\t11\t\t2\t6\n"
        "unrate\t1\t10\t\t\t7\n"
        "forget_user\t1\t\t\t\t8\n",
        encoding="utf-8",
    )
    types = [event.type for _, event in read_event_file(path)]  # type: ignore[union-attr]
    assert types == ["rating", "purchase", "unrate", "forget_user"]


def test_malformed_lines_are_reported_with_line_numbers(bad_csv: Path, tmp_path: Path) -> None:
    mapping = ColumnMapping(user="user", item="movie", rating="stars", time="when")
    rows = list(read_event_file(bad_csv, mapping))
    bad = {line: item for line, item in rows if isinstance(item, Malformed)}
    assert sorted(bad) == [3, 5]
    assert "rating" in bad[3].reason and "not-a-number" in bad[3].reason
    assert "2 fields" in bad[5].reason
    assert str(bad[3]).startswith("line 3: ")
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text('{"user_id": 1, "item_id": 2, "rating": 3}\n{oops\n\n[1, 2]\n{"user_id": 1}\n')
    rows = list(read_event_file(jsonl))
    assert [(line, type(item).__name__) for line, item in rows] == [
        (1, "RatingEvent"),
        (2, "Malformed"),
        (4, "Malformed"),
        (5, "Malformed"),
    ]


def test_mapping_errors(ratings_csv: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'nope' is not in the header"):
        list(read_event_file(ratings_csv, ColumnMapping(user="nope")))
    with pytest.raises(ConfigError, match="no user column"):
        list(read_event_file(ratings_csv, ColumnMapping()))
    with pytest.raises(ConfigError, match="cannot read"):
        list(read_event_file(tmp_path / "missing.csv"))
    odd = tmp_path / "events.txt"
    odd.write_text("user_id\n")
    with pytest.raises(ConfigError, match="--format"):
        list(read_event_file(odd))
    assert list(read_event_file(odd, fmt="csv")) == []


def test_epoch_milliseconds(tmp_path: Path) -> None:
    path = tmp_path / "ms.csv"
    path.write_text("user_id,item_id,rating,ts\n1,2,3,1700000000123\n")
    ((_, event),) = read_event_file(path, ColumnMapping(time_unit="ms"))
    assert isinstance(event, RatingEvent) and event.ts is not None
    assert event.ts.timestamp() == pytest.approx(1700000000.123)
