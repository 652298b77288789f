"""The processor's /metrics and /healthz on a real broker, and the text format."""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest

from stream_cf.events import Event, RatingEvent
from stream_cf.exceptions import ConfigError
from stream_cf.processor.loop import Processor
from stream_cf.processor.metrics import Metric, MetricsServer, processor_metrics, render
from stream_cf.processor.settings import ProcessorSettings
from stream_cf.processor.summary import RunSummary
from stream_cf.processor.topics import ensure_topics
from stream_cf.processor.tracker import ListTracker
from tests.kafka_utils import wait_until
from tests.processor.conftest import produce_events

pytestmark = [pytest.mark.timeout(120)]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode("utf-8")


def samples(text: str) -> dict[str, float]:
    """``name{labels}`` -> value of every sample line."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_render_prometheus_text() -> None:
    text = render(
        [
            Metric("a_total", "counter", "things", [({}, 3)]),
            Metric("b", "gauge", "by kind", [({"kind": 'x"y'}, 1.5), ({"kind": "z"}, 2)]),
            Metric("c_total", "counter", "no samples yet"),
        ]
    )
    assert text.splitlines() == [
        "# HELP a_total things",
        "# TYPE a_total counter",
        "a_total 3",
        "# HELP b by kind",
        "# TYPE b gauge",
        'b{kind="x\\"y"} 1.5',
        'b{kind="z"} 2',
        "# HELP c_total no samples yet",
        "# TYPE c_total counter",
    ]


def test_scale_out_families() -> None:
    summary = RunSummary(rebalances=3, gained_users=40, owned_partitions=[1, 3])
    tracker = ListTracker(policy="neighbours", n=10)
    values = {
        metric.name: metric.samples[0][1]
        for metric in processor_metrics(summary, tracker=tracker, users=7, lag=None, running=True)
        if metric.samples
    }
    assert values["stream_cf_rebalances_total"] == 3
    assert values["stream_cf_gained_users_total"] == 40
    assert values["stream_cf_owned_partitions"] == 2


@pytest.mark.kafka
def test_metrics_follow_the_run(
    make_settings: Callable[..., ProcessorSettings], kafka_bootstrap: str
) -> None:
    settings = make_settings(metrics_port=0, max_batch=50)
    ensure_topics(settings)
    events: list[Event | bytes | None] = [
        RatingEvent(user_id=f"u{k % 9}", item_id=f"i{k % 13}", rating=float(1 + k % 5))
        for k in range(120)
    ]
    events += [b"not json", b'{"type": "rating", "user_id": "u1"}']
    produce_events(kafka_bootstrap, settings.input_topic, events)
    processor = Processor(settings)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            processor.run(install_signal_handlers=False)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        server = wait_until(lambda: processor.metrics_server, what="the metrics server")
        host, port = server.address
        base = f"http://{host}:{port}"

        def caught_up() -> dict[str, float] | None:
            status, text = get(base + "/metrics")
            values = samples(text)
            done = status == 200 and values.get("stream_cf_events_total") == 120
            done = done and values.get("stream_cf_input_lag_records") == 0
            # the footprint is read at each checkpoint (every second here)
            return values if done and values.get("stream_cf_pair_bytes", 0) > 0 else None

        values = wait_until(caught_up, timeout=60.0, what="120 events applied, lag 0, footprint")
        assert values["stream_cf_state_bytes"] > values["stream_cf_pair_bytes"]
        assert values['stream_cf_dead_letters_total{reason="invalid_json"}'] == 1
        assert values['stream_cf_dead_letters_total{reason="missing_field"}'] == 1
        assert values["stream_cf_users"] == 9
        assert values["stream_cf_ready"] == 1
        assert values["stream_cf_batches_total"] >= 3  # 122 records, at most 50 per batch
        assert values["stream_cf_lists_published_total"] >= 1
        assert get(base + "/healthz") == (200, "ok\n")
        assert get(base + "/nothing")[0] == 404
    finally:
        processor.stop()
        thread.join(timeout=60.0)
    assert not thread.is_alive() and not errors
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{base}/healthz", timeout=2)  # closed with the run


def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            MetricsServer("127.0.0.1", port, collect=list, ready=lambda: True)
