"""``GET /metrics``: the server's Prometheus metrics (prometheus_client, one registry per app).

- ``stream_cf_serve_requests_total{route,method,status}``: answered requests, by route template
  (``/users/{user_id}/recommendations``; ``other`` for paths no route matches);
- ``stream_cf_serve_request_seconds{route}``: a histogram of the time to the answer's start
  (headers; an SSE stream's duration is not counted);
- ``stream_cf_serve_lists``: users with a list held; ``stream_cf_serve_records_total``,
  ``stream_cf_serve_tombstones_total``, ``stream_cf_serve_unreadable_records_total``: output
  records read; ``stream_cf_serve_topic_lag_records``: output records not yet read;
  ``stream_cf_serve_ready``; ``stream_cf_serve_sse_streams``: open SSE streams;
- ``stream_cf_serve_processor_input_lag_records{input_topic}`` and
  ``stream_cf_serve_processor_input_offset_total{input_topic}``: the processor's lag and progress
  as its lists show them (see :mod:`stream_cf.serve.progress`).

The request metrics are taken by :class:`RequestMetrics`, a plain ASGI middleware (a few µs per
request); the others are read from the view when scraped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from stream_cf.serve.progress import ProgressSnapshot
from stream_cf.serve.view import ListView

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

ASGIApp = Callable[..., Any]


class ServeMetrics:
    """The registry of one app: request counts and latencies, and the view's gauges."""

    def __init__(
        self,
        view: ListView,
        progress: Callable[[], ProgressSnapshot],
        sse_streams: Callable[[], int],
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "stream_cf_serve_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "stream_cf_serve_request_seconds",
            "seconds from a request to the start of its answer, by route template",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_ViewCollector(view, progress, sse_streams))
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(route=route, method=method, status=str(status)),
                self.latency.labels(route=route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)


class RequestMetrics:
    """ASGI middleware: counts every HTTP request and times it to its answer's start."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        observed = False

        async def timed_send(message: dict[str, Any]) -> None:
            nonlocal observed
            if message["type"] == "http.response.start" and not observed:
                observed = True
                route = scope.get("route")  # set by the router
                template = getattr(route, "path", None) or "other"
                self.metrics.observe(
                    template.replace(":anytext", ""),
                    scope["method"],
                    message["status"],
                    time.perf_counter() - started,
                )
            await send(message)

        await self.app(scope, receive, timed_send)


class _ViewCollector(Collector):
    def __init__(
        self,
        view: ListView,
        progress: Callable[[], ProgressSnapshot],
        sse_streams: Callable[[], int],
    ) -> None:
        self._view = view
        self._progress = progress
        self._sse_streams = sse_streams

    def collect(self) -> Iterator[Metric]:
        view = self._view
        snapshot = self._progress()
        yield GaugeMetricFamily("stream_cf_serve_lists", "users with a list held", len(view))
        yield CounterMetricFamily(
            "stream_cf_serve_records", "output records read", value=view.records
        )
        yield CounterMetricFamily(
            "stream_cf_serve_tombstones", "tombstones read (users erased)", value=view.tombstones
        )
        yield CounterMetricFamily(
            "stream_cf_serve_unreadable_records",
            "output records skipped: not a list",
            value=view.unreadable,
        )
        yield GaugeMetricFamily(
            "stream_cf_serve_ready", "1 once caught up with the topic", float(snapshot.ready)
        )
        if snapshot.lag is not None:
            yield GaugeMetricFamily(
                "stream_cf_serve_topic_lag_records",
                "output records not yet read (end offsets minus positions)",
                snapshot.lag,
            )
        yield GaugeMetricFamily(
            "stream_cf_serve_sse_streams", "SSE streams open", self._sse_streams()
        )
        lag = GaugeMetricFamily(
            "stream_cf_serve_processor_input_lag_records",
            "input records after the offsets the newest lists reflect",
            labels=["input_topic"],
        )
        offsets = CounterMetricFamily(
            "stream_cf_serve_processor_input_offset",
            "sum over the input partitions of the offsets the lists reflect",
            labels=["input_topic"],
        )
        for entry in snapshot.inputs:
            if entry.lag is not None:
                lag.add_metric([entry.topic], entry.lag)
            offsets.add_metric([entry.topic], sum(entry.reflected.values()))
        yield lag
        yield offsets
