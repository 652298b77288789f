"""The view, its held lists and the change hub, without Kafka."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from stream_cf.serve.changes import ChangeHub
from stream_cf.serve.held_list import read_list
from stream_cf.serve.progress import TopicProgress
from stream_cf.serve.view import POPULAR_REASON, Change, ListView
from tests.serve.helpers import list_value

pytestmark = pytest.mark.timeout(30)


def _apply(view: ListView, user: str, value: bytes | None, offset: int) -> Change | None:
    return view.apply(user.encode(), value, partition=0, offset=offset, timestamp_ms=1_000_000)


def test_a_record_is_served_as_published() -> None:
    value = list_value("196", [("242", 0.31), ("302", 0.2)], ratings=[4.61, 3.9], input_offset=7)
    held = read_list("196", value, partition=2, offset=17, timestamp_ms=1_700_000_000_000)
    body = orjson.loads(held.response(now_ms=1_700_000_002_500))
    published = orjson.loads(value)
    assert body == {
        **published,
        "age_seconds": 2.5,
        "published_at": "2023-11-14T22:13:20.000Z",
        "partition": 2,
        "offset": 17,
    }
    assert body["items"] == [
        {"item_id": "242", "score": 0.31, "rating": 4.61},
        {"item_id": "302", "score": 0.2, "rating": 3.9},
    ]
    assert orjson.loads(held.response(n=1))["items"] == body["items"][:1]
    assert orjson.loads(held.response(n=5))["items"] == body["items"]
    # a clock behind the broker's gives age 0, not a negative age
    assert orjson.loads(held.response(now_ms=1_600_000_000_000))["age_seconds"] == 0.0


def test_updates_tombstones_and_unreadable_records() -> None:
    view = ListView()
    changes: list[Change] = []
    view.add_listener(changes.append)
    _apply(view, "a", list_value("a", [("x", 1.0)]), 0)
    _apply(view, "b", list_value("b", [("y", 1.0)]), 1)
    _apply(view, "a", list_value("a", [("z", 2.0)]), 2)
    held_a = view.get("a")
    assert held_a is not None and held_a.item_ids == ("z",)
    _apply(view, "b", None, 3)
    assert "b" not in view and len(view) == 1
    assert _apply(view, "c", b"not json", 4) is None
    assert view.apply(None, None, partition=0, offset=5) is None  # a tombstone without a key
    assert (view.records, view.tombstones, view.unreadable) == (6, 1, 2)
    assert [(c.user_id, c.held is None, c.offset) for c in changes] == [
        ("a", False, 0),
        ("b", False, 1),
        ("a", False, 2),
        ("b", True, 3),
    ]


def test_popular_is_the_share_of_held_lists_showing_an_item() -> None:
    view = ListView(popular_size=2, popular_every=0.0)
    _apply(view, "u1", list_value("u1", [("x", 1.0), ("y", 0.5)]), 0)
    _apply(view, "u2", list_value("u2", [("y", 1.0), ("z", 0.5)]), 1)
    _apply(view, "u3", list_value("u3", [("y", 1.0), ("x", 0.5)]), 2)
    assert view.popular(10) == [("y", 1.0), ("x", 2 / 3)]
    _apply(view, "u3", None, 3)  # erased: its items no longer count
    assert view.popular(10) == [("y", 1.0), ("x", 0.5)]  # ties: by item id
    assert view.popular(1) == [("y", 1.0)]
    assert POPULAR_REASON.startswith("unknown user")


def test_users_by_prefix() -> None:
    view = ListView()
    for offset, user in enumerate(["10", "1", "2", "100", "b/c"]):
        _apply(view, user, list_value(user, [("x", 1.0)]), offset)
    assert view.users("1", limit=2) == (["1", "10"], 3)
    assert view.users("", limit=10) == (["1", "10", "100", "2", "b/c"], 5)
    assert view.users("zz") == ([], 0)


def test_readiness_and_lags() -> None:
    progress = TopicProgress()
    assert not progress.ready
    progress.start_from({0: 5, 1: 0})
    progress.read_up_to({0: 4})
    assert not progress.ready
    progress.set_ends({0: 6})
    progress.read_up_to({0: 5})
    assert progress.ready
    assert progress.snapshot().lag == 1  # ready stays once caught up; the lag is its own figure
    progress.sample(records=0, now=99.0)  # before any list: no input rate from this one
    progress.reflect("in", [(0, 10), (1, 3)])
    progress.reflect("in", [(0, 8)])  # an older list: the reflected offset does not go back
    progress.set_input_ends("in", {0: 12, 1: 3})
    progress.sample(records=0, now=100.0)
    progress.reflect("in", [(0, 12)])
    progress.sample(records=12, now=102.0)
    snapshot = progress.snapshot()
    assert snapshot.lists_per_second == 4.0  # 12 records over the 3 s of the window
    (entry,) = snapshot.inputs
    assert (entry.lag, entry.events_per_second) == (0, 1.0)  # 13 -> 15 over 2 s


def test_empty_topic_is_ready_at_once() -> None:
    progress = TopicProgress()
    progress.start_from({0: 0})
    assert progress.ready


def test_hub_delivers_to_watchers_of_the_user_only() -> None:
    async def scenario() -> list[str | None]:
        hub = ChangeHub(depth=2)
        hub.bind(asyncio.get_running_loop())
        seen: list[str | None] = []
        with hub.watch("a") as watcher:
            assert hub.watchers == 1
            for offset, user in enumerate(["b", "a", "a", "a"]):
                hub.publish(Change(user, None, 0, offset))
            await asyncio.sleep(0)  # call_soon_threadsafe: delivered on the next loop turn
            while (change := await watcher.next(0.01)) is not None:
                seen.append(f"{change.user_id}{change.offset}")
            assert watcher.dropped == 1  # depth 2: the oldest of three was dropped
            hub.close()
            assert await watcher.next(10.0) is None and watcher.closed
        assert hub.watchers == 0
        return seen

    assert asyncio.run(scenario()) == ["a2", "a3"]
