"""``stream-cf demo``: the whole pipeline on MovieLens 100K in a few minutes.

Steps (each timed): start the local Kafka broker (or use ``--bootstrap-servers`` /
``KAFKA_BOOTSTRAP_SERVERS``); create fresh uuid-suffixed topics; replay the dataset into the
input topic; run the processor until the end of the input; read the output topic and print the
recommendations of a few users with the movie titles; then stop everything the demo started
(the broker, or with an existing broker the demo's topics unless ``--keep-topics``).

With ``--serve``, ``stream-cf serve`` follows the output topic from the start (its address is
printed: the live page shows the lists arriving while the processor runs) and keeps serving
after the demo until Ctrl-C (or ``--serve-for`` seconds), before anything is stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from stream_cf.cli.recommendations import format_table, ordered_users
from stream_cf.datasets import DATASETS, item_titles
from stream_cf.kafka_config import BOOTSTRAP_ENV, ConnectionConfig, named_bootstrap
from stream_cf.replay.producer import make_producer, replay
from stream_cf.replay.progress import Progress
from stream_cf.replay.recommendations import read_latest
from stream_cf.replay.sources import open_source

if TYPE_CHECKING:
    from stream_cf.serve import BackgroundServer

logger = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add the ``demo`` sub-command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="replay MovieLens 100K through a local broker and print recommendations",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument(
        "--dataset", choices=DATASETS, default="ml-100k", help="dataset (default ml-100k)"
    )
    parser.add_argument("--limit", type=int, metavar="N", help="replay the first N events only")
    parser.add_argument(
        "--users",
        nargs="+",
        metavar="USER",
        help="users to show (default: the first --show users with a neighbour-based list)",
    )
    parser.add_argument("--show", type=int, default=3, help="how many users to show (default 3)")
    parser.add_argument("-n", "--top", type=int, default=5, help="items per user (default 5)")
    parser.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT",
        help=f"use this broker instead of starting one (default: ${BOOTSTRAP_ENV[1]} or "
        f"${BOOTSTRAP_ENV[0]} if set)",
    )
    parser.add_argument(
        "--min-k",
        type=int,
        default=10,
        help="usable neighbours a predicted rating needs (default 10: the ratings shown beside "
        "the list rest on many neighbours)",
    )
    parser.add_argument(
        "--shrinkage", type=float, default=100.0, help="similarity shrinkage (default 100)"
    )
    parser.add_argument(
        "--max-batch",
        type=int,
        default=20_000,
        help="records the processor applies per batch (default 20000: the demo processes a "
        "backlog, and each batch refreshes the lists once)",
    )
    parser.add_argument(
        "--keep-topics",
        action="store_true",
        help="with an existing broker, keep the demo's topics (default: delete them at the end)",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="serve the lists over HTTP while the demo runs (the live page at /) and after it, "
        "until Ctrl-C",
    )
    parser.add_argument(
        "--serve-host", default="127.0.0.1", help="address of --serve (default 127.0.0.1)"
    )
    parser.add_argument(
        "--serve-port", type=int, default=8080, help="port of --serve (default 8080; 0: any)"
    )
    parser.add_argument(
        "--serve-for",
        type=float,
        metavar="SECONDS",
        help="with --serve, stop serving this long after the demo (default: at Ctrl-C)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress lines (default: when standard error is a terminal)",
    )
    parser.set_defaults(func=run)


class _Steps:
    """Times each step and prints ``[n] what ... done in X s``."""

    def __init__(self) -> None:
        self.times: list[tuple[str, float]] = []
        self.started = time.monotonic()

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        print(f"[{len(self.times) + 1}] {title} ...", flush=True)
        start = time.monotonic()
        yield
        elapsed = time.monotonic() - start
        self.times.append((title, elapsed))
        print(f"    done in {elapsed:.1f} s", flush=True)

    def table(self) -> str:
        total = time.monotonic() - self.started
        width = max(len(title) for title, _ in self.times) if self.times else 10
        lines = ["time per step:"]
        lines += [f"  {title:<{width}}  {seconds:6.1f} s" for title, seconds in self.times]
        lines.append(f"  {'total':<{width}}  {total:6.1f} s")
        return "\n".join(lines)


def _existing_bootstrap(args: argparse.Namespace) -> str | None:
    """The broker named by ``--bootstrap-servers`` or the environment, if any (else the demo
    starts one). KAFKA_BOOTSTRAP_SERVERS first, as the broker does."""
    return named_bootstrap(args.bootstrap_servers, order=tuple(reversed(BOOTSTRAP_ENV)))


def run(args: argparse.Namespace) -> int:
    from stream_cf.broker import LocalBroker  # noqa: PLC0415 - heavy imports only when run
    from stream_cf.processor.loop import Processor  # noqa: PLC0415
    from stream_cf.processor.settings import load_settings  # noqa: PLC0415
    from stream_cf.processor.topics import ensure_topics  # noqa: PLC0415

    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("stream_cf.processor").setLevel(logging.WARNING)
        logging.getLogger("kafka").setLevel(logging.ERROR)
    steps = _Steps()
    suffix = uuid.uuid4().hex[:12]
    state_dir = tempfile.mkdtemp(prefix="stream-cf-demo-")
    broker: LocalBroker | None = None
    settings = None
    server: BackgroundServer | None = None
    bootstrap = _existing_bootstrap(args)
    try:
        if bootstrap is None:
            with steps.step("start the local Kafka broker"):
                broker = LocalBroker()
                bootstrap = broker.start()
                print(f"    Kafka at {bootstrap}")
        else:
            print(f"using the Kafka broker at {bootstrap}")
        connection = ConnectionConfig.from_env(bootstrap)
        settings = load_settings(
            bootstrap_servers=bootstrap,
            input_topic=f"demo-{suffix}.events",
            output_topic=f"demo-{suffix}.recommendations",
            dlq_topic=f"demo-{suffix}.dlq",
            group_id=f"stream-cf-demo-{suffix}",
            state_dir=state_dir,
            max_batch=args.max_batch,
            min_k=args.min_k,
            shrinkage=args.shrinkage,
            feedback="explicit" if args.dataset == "ml-100k" else "implicit",
            similarity=None if args.dataset == "ml-100k" else "cosine",  # None: the predictor's
        )
        with steps.step("create the topics"):
            ensure_topics(settings)
            print(f"    {settings.input_topic} -> {settings.output_topic}")
            print(
                f"    lists of {settings.n} ranked by {settings.rank}; predictions: UserKNN "
                f"{settings.engine_config()['similarity']}, k={settings.k}, "
                f"min_k={settings.min_k}, "
                f"shrinkage={settings.shrinkage:g}"
            )

        if args.serve:
            server = _start_server(args, bootstrap, settings.output_topic)

        with steps.step(f"load {args.dataset}"):
            source = open_source(args.dataset, limit=args.limit)
            titles = item_titles(args.dataset)
            print(f"    {source.total:,} events in event-time order")

        with steps.step(f"replay {args.dataset} into {settings.input_topic}"):
            producer = make_producer(connection)
            try:
                summary = replay(
                    source,
                    settings.input_topic,
                    producer=producer,
                    progress=Progress(source.total, label="    replay", enabled=args.progress),
                )
            finally:
                producer.close(timeout=10)
            print(f"    {summary.sent:,} events sent ({summary.rate:,.0f}/s)")
            if not summary.ok:
                print(f"    FAILED: {summary.failed} records not sent: {summary.errors[:3]}")
                return 1

        with steps.step("run the processor until the end of the input"):
            progress = Progress(summary.sent, label="    process", enabled=args.progress)
            done = 0

            def on_batch(run_summary: Any) -> None:
                nonlocal done
                progress.update(run_summary.events + run_summary.dead_letters - done)
                done = run_summary.events + run_summary.dead_letters

            with progress:
                result = Processor(settings).run(until_end=True, on_batch=on_batch)
            print(
                f"    {result.events:,} events applied, {result.dead_letters} dead letters, "
                f"{result.published:,} lists published"
            )

        with steps.step(f"read {settings.output_topic}"):
            snapshot = read_latest(connection, settings.output_topic, timeout=120)
            print(f"    {len(snapshot.lists):,} users have a list")
        users = (
            args.users
            or [
                user
                for user in ordered_users(snapshot.lists)
                if snapshot.lists[user].fallback is None and snapshot.lists[user].items
            ][: args.show]
        )
        print()
        print(f"recommendations ({args.dataset}, top {args.top}):")
        print(
            format_table(
                [snapshot.lists[u] for u in users if u in snapshot.lists],
                titles=titles or None,
                top=args.top,
            )
        )
        missing = [u for u in users if u not in snapshot.lists]
        if missing:
            print(f"no list for: {', '.join(missing)}")
        if server is not None:
            _linger(server, users[0] if users else None, args.serve_for)
    finally:
        if server is not None:
            server.stop()
        if broker is not None:
            with steps.step("stop the broker"):
                broker.stop()
        elif settings is not None and not args.keep_topics:
            _delete_topics(
                settings.connection(),
                [settings.input_topic, settings.output_topic, settings.dead_letter_topic],
            )
        shutil.rmtree(state_dir, ignore_errors=True)
        if steps.times:
            print(steps.table(), file=sys.stdout, flush=True)
    return 0


def _start_server(args: argparse.Namespace, bootstrap: str, topic: str) -> BackgroundServer:
    """``stream-cf serve`` on the demo's output topic, from a thread of this process."""
    from stream_cf.serve import BackgroundServer, load_serve_settings  # noqa: PLC0415

    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("uvicorn").setLevel(logging.WARNING)
        logging.getLogger("stream_cf.serve").setLevel(logging.WARNING)
    settings = load_serve_settings(
        bootstrap_servers=bootstrap,
        output_topic=topic,
        host=args.serve_host,
        port=args.serve_port,
    )
    server = BackgroundServer(settings)
    url = server.start()
    print(f"    live page: {url}/ (lists of {topic} as they arrive; API: {url}/docs)", flush=True)
    return server


def _linger(server: BackgroundServer, user: str | None, seconds: float | None) -> None:
    """Keep serving after the demo: ``seconds``, or until Ctrl-C."""
    page = f"{server.url}/" + (f"?user={quote(user, safe='')}" if user else "")
    until = f"for {seconds:g} s" if seconds is not None else "until Ctrl-C"
    print(f"serving the lists at {page} {until}", flush=True)
    try:
        if seconds is not None:
            time.sleep(seconds)
        else:
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        print("stopping", flush=True)


def _delete_topics(connection: ConnectionConfig, topics: list[str]) -> None:
    """Best effort: the demo's topics on a broker it did not start."""
    from kafka import KafkaAdminClient  # noqa: PLC0415
    from kafka.errors import KafkaError  # noqa: PLC0415

    try:
        admin = KafkaAdminClient(**connection.client_kwargs("stream-cf-demo"))
    except KafkaError as exc:
        logger.warning("could not delete the demo topics %s: %s", topics, exc)
        return
    try:
        admin.delete_topics(topics, timeout_ms=10_000)
        print(f"deleted the demo topics on {connection.bootstrap_servers}")
    except KafkaError as exc:
        logger.warning("could not delete the demo topics %s: %s", topics, exc)
    finally:
        admin.close()
