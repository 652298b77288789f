"""``stream-cf replay SOURCE --topic T``: replay a dataset or an event file into a Kafka topic."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from stream_cf.cli.sources import add_mapping_arguments, mapping_of
from stream_cf.datasets import DATASETS
from stream_cf.event_files import Malformed
from stream_cf.kafka_config import ConnectionConfig
from stream_cf.replay.clients import ensure_topic
from stream_cf.replay.pacing import Pacing
from stream_cf.replay.producer import ReplaySummary, make_producer, replay
from stream_cf.replay.progress import Progress
from stream_cf.replay.sources import open_source

logger = logging.getLogger(__name__)

DEFAULT_INPUT_TOPIC = "cf.events"

_EPILOG = """\
Examples:
  stream-cf replay ml-100k --topic cf.events --speedup 86400
  stream-cf replay ratings.csv --topic cf.events --user-col user --item-col movie \\
      --rating-col stars --time-col when --rate 500
  stream-cf replay purchases.jsonl --topic cf.events --event-type purchase --on-error stop

Exit status: 0 when every event was acknowledged; 1 when records could not be sent or the replay
was stopped on a malformed line; 2 on a usage or connection error.
"""


def add_bootstrap_argument(parser: argparse.ArgumentParser) -> None:
    """``--bootstrap-servers`` with the environment fallbacks (shared with other commands)."""
    parser.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT[,...]",
        help="Kafka brokers (default: $STREAM_CF_BOOTSTRAP_SERVERS, $KAFKA_BOOTSTRAP_SERVERS, "
        "else localhost:9092)",
    )


def register(subparsers: Any) -> None:
    """Add the ``replay`` sub-command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "replay",
        help="replay a dataset or an event file into a Kafka topic",
        description="Replay a named dataset (" + ", ".join(DATASETS) + ") or a CSV/TSV/JSON-lines "
        "file into a Kafka topic: key = user id, value = the JSON event.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", metavar="SOURCE", help="a file, or " + " / ".join(DATASETS))
    parser.add_argument(
        "--topic", default=DEFAULT_INPUT_TOPIC, help=f"topic (default {DEFAULT_INPUT_TOPIC})"
    )
    add_bootstrap_argument(parser)
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, metavar="N", help="send N events per second")
    pace.add_argument(
        "--speedup",
        type=float,
        metavar="X",
        help="follow the recorded times X times faster (86400: a day per second)",
    )
    pace.add_argument("--fast", action="store_true", help="as fast as possible (the default)")
    parser.add_argument("--limit", type=int, metavar="N", help="replay the first N events only")
    parser.add_argument(
        "--order",
        choices=["time", "file"],
        help="by event time (datasets: always; files: needs a time column) or in file order "
        "(the default for files)",
    )
    parser.add_argument(
        "--on-error",
        choices=["skip", "stop"],
        default="skip",
        help="a malformed line is reported with its line number, then skipped (default) or "
        "ends the replay",
    )
    files = parser.add_argument_group("event files (column mapping)")
    add_mapping_arguments(files)
    parser.add_argument(
        "--partitions",
        type=int,
        default=1,
        help="partitions of the topic if replay creates it (default 1)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress line (default: when standard error is a terminal)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the summary as one JSON object on stdout"
    )
    parser.add_argument(
        "--flush-timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the last acknowledgements (default 60)",
    )
    parser.set_defaults(func=run)


def pacing_of(args: argparse.Namespace) -> Pacing:
    if args.rate is not None:
        return Pacing("rate", args.rate)
    if args.speedup is not None:
        return Pacing("speedup", args.speedup)
    return Pacing("fast")


def report_malformed(item: Malformed) -> None:
    print(f"stream-cf replay: malformed {item}", file=sys.stderr)


def print_summary(summary: ReplaySummary, *, as_json: bool, on_error: str) -> None:
    """The end-of-replay summary: JSON on stdout, or readable lines on stderr."""
    if as_json:
        print(json.dumps(summary.to_dict()))
        return
    out = sys.stderr
    print(
        f"replayed {summary.sent:,} of {summary.attempted:,} events to {summary.topic} "
        f"in {summary.elapsed:.1f} s ({summary.rate:,.0f} events/s)",
        file=out,
    )
    if summary.first_ts:
        print(f"  event time {summary.first_ts} .. {summary.last_ts}", file=out)
    if summary.interrupted:
        print("  interrupted (Ctrl-C): the events above were flushed", file=out)
    if summary.malformed:
        action = "stopped at line" if summary.stopped_at is not None else "skipped"
        where = f" {summary.stopped_at}" if summary.stopped_at is not None else ""
        print(f"  malformed lines: {summary.malformed} ({action}{where})", file=out)
    if summary.failed:
        print(f"  FAILED to send {summary.failed:,} records:", file=out)
        for error in summary.errors:
            print(f"    {error}", file=out)


def run(args: argparse.Namespace) -> int:
    connection = ConnectionConfig.from_env(args.bootstrap_servers)
    source = open_source(
        args.source,
        mapping=mapping_of(args),
        fmt=args.format,
        order=args.order,
        limit=args.limit,
    )
    pacing = pacing_of(args)
    ensure_topic(connection, args.topic, partitions=args.partitions)
    logger.info(
        "replaying %s (%s order, %s) into %s at %s",
        source.name,
        source.order,
        pacing.describe(),
        args.topic,
        connection.bootstrap_servers,
    )
    producer = make_producer(connection)
    progress = Progress(source.total, label=f"replay {source.name}", enabled=args.progress)
    try:
        summary = replay(
            source,
            args.topic,
            producer=producer,
            pacing=pacing,
            on_error=args.on_error,
            on_malformed=report_malformed,
            progress=progress,
            flush_timeout=args.flush_timeout,
        )
    finally:
        producer.close(timeout=10)
    print_summary(summary, as_json=args.json, on_error=args.on_error)
    if summary.interrupted:
        return 130
    return 0 if summary.ok else 1
