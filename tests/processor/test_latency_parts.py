"""The latency parts of the loop, without a broker: background checkpoint writes, the actors'
order, early dispatch of records and the deferral of a batch's actors."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from stream_cf.engine import UserKNN
from stream_cf.events import RatingEvent
from stream_cf.exceptions import StateWriteError
from stream_cf.processor import checkpoint as ckpt
from stream_cf.processor.batch import oldest_first
from stream_cf.processor.checkpoint import read_checkpoint
from stream_cf.processor.checkpointing import Checkpointer
from stream_cf.processor.codec import SourceRecord
from stream_cf.processor.loop import Processor
from stream_cf.processor.pacing import Pacing
from stream_cf.processor.publisher import OutgoingRecord, Publisher
from stream_cf.processor.settings import ProcessorSettings, load_settings
from stream_cf.processor.summary import RunSummary
from stream_cf.processor.tracker import ListTracker

pytestmark = pytest.mark.timeout(60)


def _settings(tmp_path: Path, **overrides: Any) -> ProcessorSettings:
    return load_settings(
        bootstrap_servers="localhost:1",
        input_topic="in",
        output_topic="out",
        group_id="g",
        state_dir=str(tmp_path / "state"),
        **overrides,
    )


def _write(checkpointer: Checkpointer, engine: UserKNN, offset: int, *, wait: bool) -> None:
    checkpointer.write(
        engine,
        ListTracker(policy="neighbours", n=10),
        RunSummary(),
        input_offsets={0: offset},
        output_offsets={0: 0},
        topic_ids={},
        event_time_ms=None,
        lag=0,
        wait=wait,
    )


def test_a_checkpoint_is_written_in_the_background_one_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path)
    checkpointer = Checkpointer(settings, Pacing(settings.max_batch, 30.0))
    engine = UserKNN(**settings.engine_config())
    engine.apply(RatingEvent(user_id="u", item_id="i", rating=4.0))
    release = threading.Event()
    real = ckpt._write_atomically
    monkeypatch.setattr(ckpt, "_write_atomically", lambda p, d: release.wait(30) and real(p, d))
    _write(checkpointer, engine, 5, wait=False)  # returns while the write waits
    assert read_checkpoint(settings.checkpoint_path) is None
    release.set()
    _write(checkpointer, engine, 6, wait=True)  # waits for the first, then writes the second
    written = read_checkpoint(settings.checkpoint_path)
    assert written is not None and written.input_offsets == {0: 6}


def test_a_failed_background_write_stops_the_loop_at_its_next_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path)
    checkpointer = Checkpointer(settings, Pacing(settings.max_batch, 30.0))
    engine = UserKNN(**settings.engine_config())

    def read_only(_path: Path, _data: bytes) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(ckpt, "_write_atomically", read_only)
    _write(checkpointer, engine, 5, wait=False)
    with pytest.raises(StateWriteError, match="cannot write the checkpoint"):
        for _ in range(1000):  # the loop asks due() every iteration
            checkpointer.due()
            threading.Event().wait(0.01)
    checkpointer.close()  # nothing left to report


def test_the_actors_come_in_the_order_of_their_first_event() -> None:
    events = [
        RatingEvent(user_id=user, item_id="i", rating=3.0) for user in ("c", "a", "c", "b", "a")
    ]
    assert oldest_first(["a", "b", "c", "z"], events) == ["c", "a", "b", "z"]


class _Producer:
    """The parts of a KafkaProducer that Publisher uses; counts sends."""

    def __init__(self, known: set[str]) -> None:
        self.sent: list[bytes | None] = []
        self.known = known
        self._metadata = self  # the cluster metadata the publisher asks

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return {0} if topic in self.known else None

    def send(self, topic: str, key: bytes | None, value: bytes | None, headers: Any) -> Any:
        self.sent.append(value)
        producer = self

        class _Future:
            exception = None

            def failed(self) -> bool:
                return False

            @property
            def value(self) -> Any:
                return type(
                    "Meta", (), {"topic": topic, "partition": 0, "offset": len(producer.sent)}
                )

        return _Future()

    def flush(self, timeout: float | None = None) -> None:
        return None


def test_a_dispatched_record_is_sent_once_and_waited_for_by_the_publish(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    producer = _Producer(known={"out"})
    monkeypatch.setattr(Publisher, "_make_producer", lambda self, **extra: producer)
    publisher = Publisher({}, stop_requested=lambda: False, backoff_max=1.0, shutdown_timeout=1.0)
    early = OutgoingRecord("out", b"u1", b"list-1")
    late = OutgoingRecord("out", b"u2", b"list-2")
    unknown = OutgoingRecord("gone", b"u3", b"list-3")  # no metadata: a send could block
    publisher.dispatch([early, unknown])
    assert producer.sent == [b"list-1"]
    ends = publisher.publish([early, late])
    assert producer.sent == [b"list-1", b"list-2"]  # the dispatched one is not sent again
    assert ends == {("out", 0): 3}


class _Input:
    def __init__(self, lag: int | None) -> None:
        self._lag = lag

    def lag(self) -> int | None:
        return self._lag


@pytest.mark.parametrize(
    ("polled", "limit", "lag", "behind"),
    [
        (100, 256, 100, False),  # not full
        (256, 256, 300, False),  # full, but only 44 more waiting: its actors' lists now
        (256, 256, 512, True),  # full and a first batch's worth behind it: catching up
        (20_000, 20_000, 27_488, True),  # the last full batch of a backlog: still catching up
        (256, 256, None, True),  # unknown: as before, catching up
    ],
)
def test_a_full_batch_defers_its_actors_only_when_behind(
    tmp_path: Path, polled: int, limit: int, lag: int | None, behind: bool
) -> None:
    processor = Processor(_settings(tmp_path))
    processor.input = _Input(lag)  # type: ignore[assignment]
    records = [SourceRecord("in", 0, offset, 0, None, None) for offset in range(polled)]
    assert processor._behind(records, limit) is behind
