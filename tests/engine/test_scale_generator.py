"""The stream generator of benchmarks/scale.py, and one tiny size through its child process."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "scale.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_scale", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # the dataclass looks its module up
    spec.loader.exec_module(module)
    return module


scale = _load()


@pytest.fixture(scope="module")
def explicit() -> Any:
    return scale.generate(500, 2_000, mean=20, seed=3)


@pytest.fixture(scope="module")
def implicit() -> Any:
    return scale.generate(500, 2_000, implicit=True, mean=10, seed=3)


def _arrays(stream: Any) -> list[np.ndarray]:
    return [getattr(stream, name) for name in ("users", "items", "values", "ts", "earlier")]


def test_deterministic_for_a_seed(explicit: Any, implicit: Any) -> None:
    for stream, kwargs in ((explicit, {}), (implicit, {"implicit": True})):
        again = scale.generate(500, 2_000, mean=20 if not kwargs else 10, seed=3, **kwargs)
        for a, b in zip(_arrays(stream), _arrays(again), strict=True):
            assert np.array_equal(a, b)
    other = scale.generate(500, 2_000, mean=20, seed=4)
    assert not np.array_equal(other.items[:100], explicit.items[:100])


def test_shape_of_the_explicit_stream(explicit: Any) -> None:
    s = explicit
    n = len(s)
    keys = s.users.astype(np.int64) * s.n_items + s.items
    assert np.unique(keys).size == n  # distinct (user, item)
    assert np.all(np.diff(s.ts) >= 0)
    assert set(np.unique(s.values).tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    per_user = np.bincount(s.users, minlength=500)
    assert per_user.min() >= 1
    assert 14 <= per_user.mean() <= 26  # around the mean of 20
    assert per_user.max() > 4 * np.median(per_user)  # heavy-tailed
    counts = np.bincount(s.items, minlength=2_000)
    assert counts.max() > 20 * max(1.0, float(np.median(counts)))  # Zipf: a head and a long tail
    # sessions interleave: the stream switches user far more often than once per user
    assert np.count_nonzero(np.diff(s.users)) > 3 * 500
    first_seen = np.unique(s.users, return_index=True)[1]
    assert np.median(first_seen) > n / 5  # users keep arriving along the stream


def test_shape_of_the_implicit_stream(implicit: Any) -> None:
    s = implicit
    assert np.all(s.values == 1.0)
    assert np.all(np.diff(s.ts) >= 0)
    keys = s.users.astype(np.int64) * s.n_items + s.items
    repeats = 1 - np.unique(keys).size / keys.size
    assert 0.1 < repeats < 0.5  # re-purchases at about the rate asked for (30 % after the first)


def _earlier_by_loop(users: list[int], items: list[int]) -> list[int]:
    raters: dict[int, set[int]] = {}
    out = []
    for user, item in zip(users, items, strict=True):
        seen = raters.setdefault(item, set())
        out.append(len(seen - {user}))
        seen.add(user)
    return out


@pytest.mark.parametrize("implicit", [False, True])
def test_earlier_raters_equals_a_plain_loop(implicit: bool) -> None:
    s = scale.generate(60, 40, implicit=implicit, mean=8, seed=11)
    expected = _earlier_by_loop(s.users.tolist(), s.items.tolist())
    assert s.earlier.tolist() == expected
    assert s.pair_updates == sum(expected)
    if implicit:  # re-purchases: some events find their own user among the item's raters
        keys = s.users.astype(np.int64) * s.n_items + s.items
        assert np.unique(keys).size < keys.size


def test_events_are_engine_events() -> None:
    s = scale.generate(20, 50, mean=5, seed=1)
    events = s.events(0, 10)
    assert [e.type for e in events] == ["rating"] * 10
    assert events[0].user_id == f"u{s.users[0]}" and events[0].item_id == f"i{s.items[0]}"
    bought = scale.generate(20, 50, implicit=True, mean=5, seed=1).events(0, 3)
    assert [(e.type, e.quantity) for e in bought] == [("purchase", 1.0)] * 3


def test_footprint_figures() -> None:
    class Compact:
        def footprint(self) -> dict[str, int]:
            return {"ratings_bytes": 1_200, "pair_bytes": 1_600, "pairs": 100, "total_bytes": 3_000}

    fp = scale.footprint_of(Compact())
    figures = scale.footprint_figures(fp, 100)
    assert figures["bytes_per_rating"] == 12.0 and figures["bytes_per_pair"] == 16.0
    assert figures["footprint_total_bytes"] == 3_000
    no_pairs = scale.footprint_figures({**fp, "pairs": 0, "pair_bytes": 0}, 100)
    assert no_pairs["bytes_per_pair"] is None and no_pairs["footprint_pairs"] == 0
    assert scale.footprint_of(object()) is None
    absent = scale.footprint_figures(None, 100)
    assert set(absent.values()) == {None}


def test_one_tiny_size_through_the_child() -> None:
    args = scale.parser().parse_args(["--seed", "0"])
    assert isinstance(args, argparse.Namespace)
    row = scale.run_size(
        "explicit", 200, scale.items_for("explicit", 200), args, timeout=60.0, mem_limit=None
    )
    assert row["status"] == "ok", row
    keys = {
        "users", "items", "events", "generate_s", "rss_start_bytes", "rss_after_generate_bytes",
        "peak_rss_after_generate_bytes", "rss_before_apply_bytes", "apply_s",
        "apply_events_per_s", "batch_p50_s", "batch_p99_s", "batch_max_s",
        "batch_max_over_median", "pair_updates", "pair_updates_per_s", "rss_after_apply_bytes",
        "peak_rss_after_apply_bytes", "engine_rss_bytes", "n_ratings", "n_users", "footprint",
        "footprint_ratings_bytes", "footprint_pair_bytes", "footprint_pairs",
        "footprint_total_bytes", "bytes_per_rating", "bytes_per_pair", "list_p50_s",
        "list_p99_s", "checkpoint_bytes", "save_s", "load_s", "restart_s", "restored_equal",
        "peak_rss_bytes", "child_s",
    }  # fmt: skip
    assert keys <= row.keys()
    assert row["users"] == row["n_users"] == 200
    assert row["n_ratings"] == row["events"] > 200  # explicit: one rating per event
    assert row["batches"] == -(-row["events"] // 1_000)
    assert 0 < row["batch_p50_s"] <= row["batch_p99_s"] <= row["batch_max_s"] <= row["apply_s"]
    assert row["apply_events_per_s"] > 0 and row["pair_updates"] > 0
    assert 0 < row["list_p50_s"] <= row["list_p99_s"] < 5
    assert row["checkpoint_bytes"] > 0 and row["save_s"] > 0 and row["restart_s"] >= row["load_s"]
    assert row["restored_equal"] is True
    assert (
        row["rss_start_bytes"]
        <= row["peak_rss_after_generate_bytes"]
        <= row["peak_rss_after_apply_bytes"]
        <= row["peak_rss_bytes"]
    )
    if row["footprint"] is None:  # today's engine: no footprint() yet
        assert row["bytes_per_rating"] is None and row["footprint_total_bytes"] is None
    else:
        assert row["footprint_total_bytes"] > 0 and row["bytes_per_rating"] > 0
    fitted = scale.fits([row, {**row, "users": 400, "events": 2 * row["events"]}])
    assert fitted["events"]["slope"] == pytest.approx(1.0)
