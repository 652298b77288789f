"""Benchmark of ``stream-cf serve``: GET throughput and latency, memory, SSE latency.

    python benchmarks/serve.py [--json] [--users 943 100000] [--seconds 10] [--connections 8]
                               [--update-rate 200] [--sse-samples 50] [--end-to-end 20000]
                               [--e2e-samples 40]

Broker: ``KAFKA_BOOTSTRAP_SERVERS`` if set, else a local Apache Kafka broker (stream_cf.broker).

For each topic size (default: ML-100K's 943 users, then 100,000 synthetic users):

1. Lists of 10 items with predicted ratings (the processor's own encoder,
   ``encode_recommendations``; items drawn from 1,682 items for 943 users, from 50,000 for larger
   topics) are produced into a fresh compacted topic, one per user.
2. ``stream-cf serve`` starts as its own process (uvicorn + httptools + uvloop, one process) on a
   free loopback port; the time until ``/healthz`` answers 200 (the topic read to its end) and the
   process's resident memory (VmRSS) then are recorded, beside the memory of a server holding
   nothing (an empty topic).
3. While a producer keeps publishing new lists of random users at ``--update-rate`` lists/s (the
   view keeps following the topic), an asyncio load generator (uvloop, raw HTTP/1.1 keep-alive
   over ``--connections`` sockets, each sending its next request when the previous answer is
   read: a closed loop) asks ``GET /users/{random held user}/recommendations`` for ``--seconds``
   after a 1 s warm-up. Requests/s, and the latency percentiles measured by the client (from the
   request written to the answer read) are reported; every answer must be a 200.
   If ``wrk`` is installed (Debian's package), the same load (random users, ``--connections``,
   ``--seconds``) is also run with it: a C client that leaves the server more of the 2 cores.
4. SSE: ``--sse-samples`` times, a new list of a watched user is produced (acks=1, one producer
   kept open) and the time from just before ``send`` to the event read on the user's
   ``/recommendations/stream`` is measured: the processor's publish to a page seeing it.

Then, with ``--end-to-end N`` (default 20,000; 0 skips it; needs MovieLens 100K): the processor
(``Processor.run`` in a thread) builds its state from the first N ML-100K ratings, then keeps
running; ``stream-cf serve`` follows its output topic. ``--e2e-samples`` times, a new rating of a
watched user (an item the user has not rated) is produced to the input topic and the new list is
awaited on the user's SSE stream. Both topics use LogAppendTime, so each sample splits into the
processor's part (the output record's append time, the list's ``published_at``, minus the input
record's append time) and the server's part (the time the event was read minus ``published_at``,
same host clock), beside the whole (produce to SSE event, monotonic clock).

The load generator shares the machine with the server and the broker (2 cores here): the figures
are what one machine does with all three on it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import platform
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from stream_cf.broker import broker_bootstrap
from stream_cf.processor.codec import encode_recommendations

logger = logging.getLogger("benchmarks.serve")
ITEMS_PER_LIST = 10


def create_topic(bootstrap: str, name: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-admin")
    try:
        admin.create_topics(
            [NewTopic(name, 1, 1, topic_configs={"cleanup.policy": "compact"})],
            timeout_ms=30_000,
        )
    finally:
        admin.close()


def a_list(user: str, catalogue: int, rng: random.Random, offset: int) -> bytes:
    items = rng.sample(range(1, catalogue + 1), ITEMS_PER_LIST)
    scores = sorted((rng.random() for _ in items), reverse=True)
    return encode_recommendations(
        user,
        [(str(item), score) for item, score in zip(items, scores, strict=True)],
        None,
        event_time_ms=int(time.time() * 1000),
        input_topic="cf.events",
        input_offsets={0: offset},
        ratings=[round(rng.uniform(3.0, 5.0), 3) for _ in items],
    )


def producer_for(bootstrap: str, **extra: Any) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap, **{"linger_ms": 5, **extra})


def fill(bootstrap: str, topic: str, users: list[str], catalogue: int) -> float:
    rng = random.Random(7)
    producer = producer_for(bootstrap, acks="all", batch_size=512 * 1024)
    started = time.perf_counter()
    try:
        for offset, user in enumerate(users):
            producer.send(topic, key=user.encode(), value=a_list(user, catalogue, rng, offset))
        producer.flush()
    finally:
        producer.close()
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@contextlib.contextmanager
def server(bootstrap: str, topic: str) -> Iterator[tuple[subprocess.Popen[bytes], str, float]]:
    """``stream-cf serve`` on ``topic``: (process, base URL, seconds until ready)."""
    port = free_port()
    env = {**os.environ, "STREAM_CF_OUTPUT_TOPIC": topic}
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "stream_cf", "--log-level", "WARNING", "serve",
         "--bootstrap-servers", bootstrap, "--port", str(port)],
        env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"stream-cf serve exited with {process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/healthz", timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("stream-cf serve was not ready within 300 s")
            time.sleep(0.05)
        yield process, url, time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(timeout=30)


def _publish_updates(
    *, bootstrap: str, topic: str, count: int, catalogue: int, rate: float, stop: Any, sent: Any
) -> None:
    """In its own process (not sharing the load generator's GIL): new lists of random users at
    ``rate`` lists/s until ``stop`` is set."""
    rng = random.Random(11)
    producer = producer_for(bootstrap, acks=1)
    try:
        started = time.monotonic()
        while not stop.is_set():
            due = started + sent.value / rate
            if due > time.monotonic():
                stop.wait(due - time.monotonic())
                continue
            user = str(rng.randrange(1, count + 1))
            value = a_list(user, catalogue, rng, 1_000_000 + sent.value)
            producer.send(topic, key=user.encode(), value=value)
            sent.value += 1
    finally:
        producer.close()


class Updater:
    """:func:`_publish_updates` in a child process, for the duration of a ``with`` block."""

    def __init__(self, bootstrap: str, topic: str, count: int, catalogue: int, rate: float):
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._sent = context.Value("q", 0)
        self._process = context.Process(
            target=_publish_updates,
            kwargs={
                "bootstrap": bootstrap,
                "topic": topic,
                "count": count,
                "catalogue": catalogue,
                "rate": rate,
                "stop": self._stop,
                "sent": self._sent,
            },
            daemon=True,
        )
        self._rate = rate

    @property
    def sent(self) -> int:
        return int(self._sent.value)

    def __enter__(self) -> Updater:
        if self._rate > 0:
            self._process.start()
            deadline = time.monotonic() + 30
            while self.sent == 0 and time.monotonic() < deadline:
                time.sleep(0.05)  # the child is importing and connecting; bounded
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._rate > 0:
            self._process.join(30)


async def _worker(
    port: int, paths: list[bytes], warm_until: float, stop_at: float, out: dict[str, Any]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    rng = random.Random()
    latencies: list[float] = out["latencies"]
    try:
        while True:
            path = paths[rng.randrange(len(paths))]
            began = time.perf_counter()
            if began >= stop_at:
                return
            writer.write(b"GET " + path + b" HTTP/1.1\r\nhost: bench\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            done = time.perf_counter()
            if began >= warm_until:
                latencies.append(done - began)
                if head[9:12] != b"200":
                    out["errors"] += 1
    finally:
        writer.close()


async def _load(port: int, paths: list[bytes], connections: int, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {"latencies": [], "errors": 0}
    warm_until = time.perf_counter() + 1.0
    stop_at = warm_until + seconds
    await asyncio.gather(
        *(_worker(port, paths, warm_until, stop_at, out) for _ in range(connections))
    )
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def load(url: str, users: list[str], connections: int, seconds: float) -> dict[str, Any]:
    import uvloop  # noqa: PLC0415

    port = int(url.rsplit(":", 1)[1])
    paths = [f"/users/{quote(u, safe='')}/recommendations".encode() for u in users]
    out = uvloop.run(_load(port, paths, connections, seconds))
    latencies = out["latencies"]
    return {
        "requests": len(latencies),
        "errors": out["errors"],
        "requests_per_s": round(len(latencies) / seconds),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p90_ms": round(percentile(latencies, 0.90) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
    }


_WRK_SCRIPT = """
math.randomseed(7)
request = function()
  return wrk.format("GET", "/users/" .. math.random(1, %d) .. "/recommendations")
end
"""


def wrk_load(url: str, users: int, connections: int, seconds: float) -> dict[str, Any] | None:
    """The same load from wrk (C, one thread), if installed: a client that leaves the server more
    of the CPU. Users are ``1..users``."""
    import re  # noqa: PLC0415
    import shutil  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(_WRK_SCRIPT % users)
        script.flush()
        done = subprocess.run(
            [wrk, "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "-s",
             script.name, url],
            capture_output=True, text=True, timeout=seconds + 60, check=True,
        )  # fmt: skip
    out = done.stdout
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}

    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)$", out, re.M).groups()  # type: ignore[union-attr]
        return round(float(value) * scale[unit], 2)

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests_per_s": round(float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))),  # type: ignore[union-attr]
        "p50_ms": ms("50"),
        "p90_ms": ms("90"),
        "p99_ms": ms("99"),
        "errors": int(errors.group(1)) if errors else 0,
    }


def sse_latency(bootstrap: str, topic: str, url: str, samples: int) -> dict[str, Any]:
    """Produce -> event seen on the user's SSE stream, ``samples`` times."""
    user = f"sse-{uuid.uuid4().hex[:8]}"
    seen: list[tuple[float, str]] = []
    opened = threading.Event()

    def read() -> None:
        with httpx.stream(
            "GET", f"{url}/users/{user}/recommendations/stream", timeout=60
        ) as response:
            for line in response.iter_lines():
                if line.startswith("event: "):
                    opened.set()
                if line.startswith("id: "):
                    seen.append((time.perf_counter(), line[4:]))
                if len(seen) >= samples:
                    return

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    if not opened.wait(30):
        raise RuntimeError("the SSE stream did not open")
    producer = producer_for(bootstrap, acks=1, linger_ms=0)
    rng = random.Random(3)
    delays: list[float] = []
    try:
        # a first record (not measured): the producer fetches the topic's metadata first
        producer.send(topic, key=b"sse-warm-up", value=a_list("sse-warm-up", 1682, rng, 0))
        producer.flush()
        for number in range(samples):
            value = a_list(user, 1682, rng, number)
            sent = time.perf_counter()
            producer.send(topic, key=user.encode(), value=value)
            producer.flush()
            deadline = time.monotonic() + 10
            while len(seen) <= number:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"SSE event {number} not seen within 10 s")
                time.sleep(0.0005)
            delays.append(seen[number][0] - sent)
            time.sleep(rng.uniform(0.02, 0.12))  # one list at a time, at no fixed phase
    finally:
        producer.close()
    thread.join(5)
    return {
        "samples": len(delays),
        "p50_ms": round(percentile(delays, 0.50) * 1000, 1),
        "p99_ms": round(percentile(delays, 0.99) * 1000, 1),
        "max_ms": round(max(delays) * 1000, 1),
    }


def end_to_end(bootstrap: str, events_count: int, samples: int) -> dict[str, Any]:
    """Input event -> processor -> output topic -> server -> SSE, ``samples`` times."""
    import tempfile  # noqa: PLC0415
    from datetime import datetime  # noqa: PLC0415

    from stream_cf.datasets import dataset_events  # noqa: PLC0415
    from stream_cf.events import RatingEvent, event_to_dict  # noqa: PLC0415
    from stream_cf.processor import Processor, load_settings  # noqa: PLC0415

    events = [e for e in dataset_events("ml-100k", limit=events_count) if e.type == "rating"]
    base = f"bench-e2e-{uuid.uuid4().hex[:8]}"
    append = {"message.timestamp.type": "LogAppendTime"}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-admin")
    try:
        admin.create_topics(
            [
                NewTopic(f"{base}.in", 1, 1, topic_configs=append),
                NewTopic(
                    f"{base}.out", 1, 1, topic_configs={**append, "cleanup.policy": "compact"}
                ),
            ],
            timeout_ms=30_000,
        )
    finally:
        admin.close()
    producer = producer_for(bootstrap, acks="all", batch_size=256 * 1024)
    for event in events:
        producer.send(
            f"{base}.in",
            key=event.user_id.encode(),
            value=json.dumps(event_to_dict(event)).encode(),
        )
    producer.flush()
    producer.close()
    rated: dict[str, set[str]] = {}
    for event in events:
        rated.setdefault(event.user_id, set()).add(event.item_id)
    items = sorted({event.item_id for event in events}, key=int)
    watched = sorted(rated, key=lambda u: -len(rated[u]))[:samples]
    with tempfile.TemporaryDirectory() as state:
        settings = load_settings(
            bootstrap_servers=bootstrap,
            input_topic=f"{base}.in",
            output_topic=f"{base}.out",
            group_id=f"{base}-group",
            state_dir=state,
        )
        started = time.perf_counter()
        Processor(settings).run(until_end=True, install_signal_handlers=False)
        logger.info(
            "end to end: state of %d ratings built in %.1f s",
            len(events),
            time.perf_counter() - started,
        )
        live = Processor(settings)
        thread = threading.Thread(
            target=lambda: live.run(install_signal_handlers=False), daemon=True
        )
        thread.start()
        live.ready.wait(timeout=120)
        whole: list[float] = []
        processor_part: list[float] = []
        serve_part: list[float] = []
        unchanged = 0
        try:
            with server(bootstrap, f"{base}.out") as (_process, url, _ready):
                producer = producer_for(bootstrap, acks=1, linger_ms=0)
                try:
                    for number, user in enumerate(watched):
                        seen: list[tuple[float, float, dict[str, Any]]] = []
                        opened = threading.Event()
                        reader = threading.Thread(
                            target=_watch, args=(url, user, seen, opened), daemon=True
                        )
                        reader.start()
                        opened.wait(10)
                        time.sleep(0.05)
                        before = len(seen)
                        item = next(i for i in items if i not in rated[user])
                        rated[user].add(item)
                        value = json.dumps(
                            event_to_dict(RatingEvent(user_id=user, item_id=item, rating=5.0))
                        ).encode()
                        sent = time.perf_counter()
                        metadata = producer.send(f"{base}.in", key=user.encode(), value=value).get(
                            timeout=10
                        )
                        deadline = time.monotonic() + 5
                        while len(seen) <= before and time.monotonic() < deadline:
                            time.sleep(0.0005)
                        if len(seen) <= before:
                            unchanged += 1
                            continue
                        seen_at, seen_wall, body = seen[before]
                        published = datetime.fromisoformat(
                            body["published_at"].replace("Z", "+00:00")
                        ).timestamp()
                        whole.append(seen_at - sent)
                        processor_part.append(published - metadata.timestamp / 1000)
                        serve_part.append(seen_wall - published)
                        logger.debug("sample %d: %.1f ms", number, whole[-1] * 1000)
                finally:
                    producer.close()
        finally:
            live.stop()
            thread.join(60)

    def summary(values: list[float]) -> dict[str, float]:
        return {
            "p50_ms": round(percentile(values, 0.5) * 1000, 1),
            "p99_ms": round(percentile(values, 0.99) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1),
        }

    return {
        "ratings": len(events),
        "samples": len(whole),
        "no_new_list": unchanged,
        "produce_to_sse": summary(whole),
        "processor": summary(processor_part),
        "serve": summary(serve_part),
    }


def _watch(
    url: str, user: str, seen: list[tuple[float, float, dict[str, Any]]], opened: threading.Event
) -> None:
    """Read the user's SSE stream: (monotonic time, wall time, list) of each ``list`` event after
    the first (the current list)."""
    first = True
    with httpx.stream("GET", f"{url}/users/{user}/recommendations/stream", timeout=30) as answer:
        event = ""
        for line in answer.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
                opened.set()
            elif line.startswith("data: ") and event == "list":
                if first:
                    first = False
                    continue
                seen.append((time.perf_counter(), time.time(), json.loads(line[6:])))
                return


def run(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "connections": args.connections,
        "seconds": args.seconds,
        "update_rate": args.update_rate,
        "topics": [],
    }
    with broker_bootstrap() as bootstrap:
        empty = f"bench-serve-empty-{uuid.uuid4().hex[:8]}"
        create_topic(bootstrap, empty)
        with server(bootstrap, empty) as (process, _url, _ready):
            time.sleep(1.0)
            figures["rss_mb_empty"] = round(rss_mb(process.pid), 1)
        for count in args.users:
            catalogue = 1682 if count <= 943 else 50_000
            topic = f"bench-serve-{count}-{uuid.uuid4().hex[:8]}"
            create_topic(bootstrap, topic)
            users = [str(n) for n in range(1, count + 1)]
            logger.info("producing %d lists into %s", count, topic)
            produce_s = fill(bootstrap, topic, users, catalogue)
            with server(bootstrap, topic) as (process, url, ready_s):
                entry: dict[str, Any] = {
                    "users": count,
                    "items": catalogue,
                    "produce_s": round(produce_s, 2),
                    "ready_s": round(ready_s, 2),
                    "rss_mb": round(rss_mb(process.pid), 1),
                }
                entry["rss_mb_lists"] = round(entry["rss_mb"] - figures["rss_mb_empty"], 1)
                logger.info("%d users: ready in %.1f s, %.0f MB", count, ready_s, entry["rss_mb"])
                updater = Updater(bootstrap, topic, count, catalogue, args.update_rate)
                with updater:
                    entry["get"] = load(url, users, args.connections, args.seconds)
                    entry["get"]["updates_during_load"] = updater.sent
                    entry["get_wrk"] = wrk_load(url, count, args.connections, args.seconds)
                logger.info("%d users: GET %s; wrk %s", count, entry["get"], entry["get_wrk"])
                entry["sse"] = sse_latency(bootstrap, topic, url, args.sse_samples)
                logger.info("%d users: SSE %s", count, entry["sse"])
                stats = httpx.get(url + "/stats", timeout=10).json()
                entry["lists_after"] = stats["lists"]
                entry["rss_mb_after"] = round(rss_mb(process.pid), 1)
                figures["topics"].append(entry)
        if args.end_to_end > 0:
            figures["end_to_end"] = end_to_end(bootstrap, args.end_to_end, args.e2e_samples)
            logger.info("end to end: %s", figures["end_to_end"])
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    parser.add_argument("--users", type=int, nargs="+", default=[943, 100_000])
    parser.add_argument("--seconds", type=float, default=10.0, help="of load per topic")
    parser.add_argument("--connections", type=int, default=8, help="concurrent keep-alive sockets")
    parser.add_argument(
        "--update-rate", type=float, default=200.0, help="new lists/s produced during the load"
    )
    parser.add_argument("--sse-samples", type=int, default=50)
    parser.add_argument(
        "--end-to-end", type=int, default=20_000, help="ML-100K ratings of the e2e state (0: skip)"
    )
    parser.add_argument("--e2e-samples", type=int, default=40)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)
    figures = run(args)
    if args.json:
        print(json.dumps(figures, sort_keys=True))
    else:
        print(json.dumps(figures, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
