"""Metrics in the Prometheus text format and a health check, over HTTP, for operators.

With ``--metrics-port`` the processor serves, on ``--metrics-host`` (127.0.0.1 by default):

- ``GET /metrics``: counters since the process started (events applied, dead letters by reason,
  lists recomputed and published, tombstones, batches, checkpoints, seconds in ``apply_many`` and
  ``recommend_many``) and gauges (input lag in records, users pending a refresh, users in the
  state, the bytes of the pair sums and of the whole engine state at the last checkpoint, whether
  the processor is ready), as ``text/plain; version=0.0.4``;
- ``GET /healthz``: 200 ``ok`` once the processor has restored its state and polls the input, 503
  before that and after it stops.

The server runs in a daemon thread of the standard library's ``ThreadingHTTPServer`` and only
reads values the processor's loop keeps up to date (it never touches the Kafka clients, which are
not thread-safe).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Literal

from stream_cf.exceptions import ConfigError

if TYPE_CHECKING:
    from stream_cf.processor.summary import RunSummary
    from stream_cf.processor.tracker import ListTracker

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Metric:
    """One metric family: name, type, help text and its samples (labels, value)."""

    name: str
    kind: Literal["counter", "gauge"]
    help: str
    samples: Sequence[tuple[dict[str, str], float]] = field(default_factory=tuple)


def render(metrics: Sequence[Metric]) -> str:
    """The Prometheus text exposition of ``metrics``."""
    lines: list[str] = []
    for metric in metrics:
        lines.append(f"# HELP {metric.name} {metric.help}")
        lines.append(f"# TYPE {metric.name} {metric.kind}")
        for labels, value in metric.samples:
            if labels:
                pairs = ",".join(f'{key}="{_escape(val)}"' for key, val in sorted(labels.items()))
                lines.append(f"{metric.name}{{{pairs}}} {_number(value)}")
            else:
                lines.append(f"{metric.name} {_number(value)}")
    return "\n".join(lines) + "\n"


def processor_metrics(
    summary: RunSummary, *, tracker: ListTracker, users: int, lag: int | None, running: bool
) -> list[Metric]:
    """The processor's metric families, from its run summary and refresh tracker."""

    def counter(name: str, text: str, value: float) -> Metric:
        return Metric(f"stream_cf_{name}", "counter", text, [({}, value)])

    def gauge(name: str, text: str, value: float) -> Metric:
        return Metric(f"stream_cf_{name}", "gauge", text, [({}, value)])

    reasons = sorted(dict(summary.dead_letter_reasons).items())
    out = [
        counter("events_total", "input events applied", summary.events),
        Metric(
            "stream_cf_dead_letters_total",
            "counter",
            "input records sent to the dead-letter topic, by reason",
            [({"reason": reason}, count) for reason, count in reasons],
        ),
        counter("lists_recomputed_total", "lists recomputed", tracker.recomputed),
        counter("lists_published_total", "changed lists published", summary.published),
        counter("tombstones_total", "tombstones published", summary.tombstones),
        counter("batches_total", "batches applied", summary.batches),
        counter("checkpoints_total", "checkpoints written", summary.checkpoints),
        counter("apply_seconds_total", "seconds in apply_many", summary.apply_seconds),
        counter("recommend_seconds_total", "seconds in recommend_many", tracker.recompute_seconds),
        gauge("pending_refreshes", "users whose list awaits a refresh", len(tracker.pending)),
        gauge("users", "users in the state", users),
        gauge("pair_bytes", "bytes of the pair sums at the last checkpoint", summary.pair_bytes),
        gauge(
            "state_bytes", "bytes of the engine state at the last checkpoint", summary.state_bytes
        ),
        gauge("ready", "1 once restored and polling, 0 otherwise", float(running)),
        counter("rebalances_total", "scale-out: group assignments received", summary.rebalances),
        counter(
            "gained_users_total", "scale-out: users taken over in rebalances", summary.gained_users
        ),
        gauge(
            "owned_partitions",
            "input partitions whose users this instance owns (all of them without scale-out)",
            len(summary.owned_partitions),
        ),
    ]
    if lag is not None:
        text = "input records after the applied positions (last fetch's high watermark)"
        out.append(gauge("input_lag_records", text, lag))
    return out


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class MetricsServer:
    """``/metrics`` and ``/healthz`` on (host, port); port 0 takes a free port (see
    :attr:`address`)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        collect: Callable[[], Sequence[Metric]],
        ready: Callable[[], bool],
    ) -> None:
        self._collect = collect
        self._ready = ready
        try:
            self._server = ThreadingHTTPServer((host, port), self._handler_class())
        except OSError as exc:  # in use, not an address of this machine, no permission
            raise ConfigError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}; "
                "choose another --metrics-port (0: any free port) or --metrics-host"
            ) from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="stream-cf-metrics", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()
        host, port = self.address
        logger.info("metrics on http://%s:%d/metrics, health on /healthz", host, port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] == "/metrics":
                    body = render(server._collect()).encode("utf-8")
                    self._reply(200, CONTENT_TYPE, body)
                elif self.path.split("?", 1)[0] == "/healthz":
                    ok = server._ready()
                    self._reply(200 if ok else 503, "text/plain", b"ok\n" if ok else b"not ready\n")
                else:
                    self._reply(404, "text/plain", b"not found: /metrics or /healthz\n")

            def _reply(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                logger.debug("metrics request: " + format, *args)

        return Handler
