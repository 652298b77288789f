"""Sources (order, limit), pacing schedules, the progress line and failure counting (no broker)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from stream_cf.event_files import ColumnMapping, Malformed
from stream_cf.events import RatingEvent
from stream_cf.exceptions import ConfigError
from stream_cf.replay import Pacer, Pacing, Progress, open_source, replay
from tests.replay.conftest import RATINGS_IN_TIME_ORDER

MAPPING = ColumnMapping(user="user", item="movie", rating="stars", time="when")


def _events(items: Any) -> list[tuple[str, str, float, float]]:
    return [
        (e.user_id, e.item_id, e.rating, e.ts.timestamp())
        for _, e in items
        if isinstance(e, RatingEvent) and e.ts is not None
    ]


def test_time_order_and_limit(ratings_csv: Path) -> None:
    source = open_source(ratings_csv, mapping=MAPPING, order="time")
    assert source.total == 5
    assert _events(source) == RATINGS_IN_TIME_ORDER
    limited = open_source(ratings_csv, mapping=MAPPING, order="time", limit=2)
    assert _events(limited) == RATINGS_IN_TIME_ORDER[:2]


def test_file_order_is_the_default_for_files(ratings_csv: Path) -> None:
    source = open_source(ratings_csv, mapping=MAPPING, limit=3)
    assert source.order == "file"
    assert [u for u, *_ in _events(source)] == ["u1", "u2", "u1"]


def test_time_order_puts_malformed_lines_first(bad_csv: Path) -> None:
    items = list(open_source(bad_csv, mapping=MAPPING, order="time"))
    assert [(line, isinstance(item, Malformed)) for line, item in items] == [
        (3, True),
        (5, True),
        (2, False),
        (4, False),
        (6, False),
    ]


def test_time_order_needs_times(ratings_csv: Path) -> None:
    with pytest.raises(ConfigError, match="--time-col"):
        open_source(ratings_csv, mapping=ColumnMapping(user="user", item="movie"), order="time")


def test_not_a_file_nor_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither a file nor a dataset"):
        open_source(tmp_path / "nothing.csv")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _rating(ts: float) -> RatingEvent:
    return RatingEvent(user_id="u", item_id="i", rating=1.0, ts=ts)


def test_rate_schedule_is_absolute() -> None:
    clock = FakeClock()
    pacer = Pacer(Pacing("rate", 4.0), clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(9):
        pacer.wait(_rating(0))
        times.append(clock.now - 100.0)
        clock.now += 0.01  # the send takes time: the schedule does not drift
    assert times == pytest.approx([i / 4 for i in range(9)], abs=1e-9)


def test_speedup_follows_event_time() -> None:
    clock = FakeClock()
    pacer = Pacer(Pacing("speedup", 10.0), clock=clock, sleep=clock.sleep)
    times = []
    for ts in (1000, 1010, 1010, 1050):
        pacer.wait(_rating(ts))
        times.append(clock.now - 100.0)
    assert times == pytest.approx([0.0, 1.0, 1.0, 5.0])


def test_pacing_values_are_checked() -> None:
    with pytest.raises(ConfigError, match="--rate must be a positive number"):
        Pacing("rate", 0)
    with pytest.raises(ConfigError, match="--speedup"):
        Pacing("speedup", float("nan"))


def test_progress_is_quiet_when_not_a_terminal() -> None:
    stream = io.StringIO()
    with Progress(10, stream=stream) as progress:
        progress.update(10)
    assert stream.getvalue() == ""


def test_progress_line() -> None:
    stream = io.StringIO()
    clock = FakeClock()
    progress = Progress(200, label="replay", stream=stream, enabled=True, clock=clock)
    clock.now += 2.0
    progress.update(100)
    text = progress.render()
    assert "replay" in text and "50%" in text and "100/200" in text and "50 ev/s" in text
    assert "eta 2s" in text
    progress.close()
    assert stream.getvalue().endswith("\n") and "\r" in stream.getvalue()


class _Future:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def add_callback(self, fn: Any) -> None:
        if self.error is None:
            fn(object())

    def add_errback(self, fn: Any) -> None:
        if self.error is not None:
            fn(self.error)


class FakeProducer:
    """Fails every third send through its future, and raises on the tenth send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.calls = 0

    def send(self, topic: str, *, key: bytes, value: bytes) -> _Future:
        from kafka.errors import KafkaTimeoutError  # noqa: PLC0415

        self.calls += 1
        if self.calls == 10:
            raise KafkaTimeoutError("metadata not available")
        self.sent.append((topic, key, value))
        return _Future(RuntimeError("broker said no") if self.calls % 3 == 0 else None)

    def flush(self, timeout: float | None = None) -> None:
        return None


def test_failures_are_counted_not_dropped() -> None:
    items = [(i, _rating(i)) for i in range(1, 13)]
    summary = replay(items, "t", producer=FakeProducer())
    # sends 3, 6, 9, 12 fail in their futures; send 10 raises
    assert (summary.attempted, summary.sent, summary.failed) == (12, 7, 5)
    assert not summary.ok
    assert any("broker said no" in e for e in summary.errors)
    assert any("metadata not available" in e for e in summary.errors)


def test_malformed_skip_or_stop() -> None:
    bad = Malformed(3, "rating must be a number", "x")
    items = [(2, _rating(1)), (3, bad), (4, _rating(2))]
    seen: list[Malformed] = []
    skipped = replay(items, "t", producer=FakeProducer(), on_malformed=seen.append)
    assert (skipped.sent, skipped.malformed, skipped.stopped_at, skipped.ok) == (2, 1, None, True)
    assert seen == [bad]
    stopped = replay(items, "t", producer=FakeProducer(), on_error="stop")
    assert (stopped.sent, stopped.malformed, stopped.stopped_at, stopped.ok) == (1, 1, 3, False)


def test_interrupt_flushes_and_reports() -> None:
    def items() -> Any:
        yield 1, _rating(1)
        yield 2, _rating(2)
        raise KeyboardInterrupt

    summary = replay(items(), "t", producer=FakeProducer())
    assert (summary.sent, summary.interrupted, summary.ok) == (2, True, False)


def test_security_settings_come_from_the_processor_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stream_cf.replay.clients import client_config  # noqa: PLC0415

    assert "security_protocol" not in client_config("a:1,b:2", "x")
    monkeypatch.setenv("STREAM_CF_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("STREAM_CF_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("STREAM_CF_SASL_PLAIN_USERNAME", "alice")
    monkeypatch.setenv("STREAM_CF_SASL_PLAIN_PASSWORD", "s3cret")
    config = client_config("a:1,b:2", "x", acks="all")
    assert config["bootstrap_servers"] == ["a:1", "b:2"]
    assert config["security_protocol"] == "SASL_PLAINTEXT"
    assert (config["sasl_plain_username"], config["sasl_plain_password"]) == ("alice", "s3cret")
    assert config["acks"] == "all"
    monkeypatch.delenv("STREAM_CF_SASL_MECHANISM")
    with pytest.raises(ConfigError, match="sasl_mechanism"):
        client_config("a:1", "x")
