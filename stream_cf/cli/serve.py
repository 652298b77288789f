"""``stream-cf serve``: the latest list of each user over HTTP (see :mod:`stream_cf.serve`).

Every option is also a ``STREAM_CF_<NAME>`` environment variable (flags win), the Kafka
connection and security ones shared with ``stream-cf run``.
"""

from __future__ import annotations

import argparse
from typing import Any

from stream_cf.cli.run import add_connection_arguments
from stream_cf.kafka_config import ConnectionFields

# (flag, settings field, type, help); every default comes from ServeSettings
_OPTIONS: list[tuple[str, str, Any, str]] = [
    ("--output-topic", "output_topic", str, "the processor's output topic (cf.recommendations)"),
    ("--host", "host", str, "address to listen on (127.0.0.1; 0.0.0.0: every interface)"),
    ("--port", "port", int, "HTTP port (8080; 0: any free port)"),
    (
        "--max-id-length",
        "max_id_length",
        int,
        "longest user id in characters, as the processor's (256); longer: 422",
    ),
    (
        "--max-target-length",
        "max_target_length",
        int,
        "longest request target in bytes (8192); longer: 414",
    ),
    ("--popular-size", "popular_size", int, "items of the ?fallback=popular list (100)"),
    ("--poll-timeout", "poll_timeout", float, "seconds one poll of the topic waits (0.1)"),
    (
        "--fetch-wait",
        "fetch_wait",
        float,
        "seconds a fetch waits for more lists: fewer fetches, at most this more delay (0.05)",
    ),
    ("--stats-interval", "stats_interval", float, "seconds between lag requests (1)"),
    ("--retry-backoff-max", "retry_backoff_max", float, "longest wait between retries (5)"),
]


def register(subparsers: Any) -> None:
    """Add the ``serve`` sub-command."""
    parser = subparsers.add_parser(
        "serve",
        help="serve the latest lists over HTTP (API, live updates, a live page)",
        description="Read the processor's output topic to its end, follow it, and serve each "
        "user's latest list: GET /users/{id}/recommendations, its Server-Sent Events "
        "(/recommendations/stream), /healthz, /metrics, the live page at / and the OpenAPI "
        "document at /docs. Every option is also a STREAM_CF_<OPTION> environment variable.",
        argument_default=argparse.SUPPRESS,
    )
    for flag, field, kind, text in _OPTIONS:
        parser.add_argument(flag, dest=field, type=kind, help=text)
    add_connection_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the settings from the flags (and the environment) and serve until SIGINT/SIGTERM."""
    from stream_cf.serve import load_serve_settings, serve_forever  # noqa: PLC0415

    fields = {field for _, field, _, _ in _OPTIONS} | set(ConnectionFields.model_fields)
    given = {name: value for name, value in vars(args).items() if name in fields}
    serve_forever(load_serve_settings(**given))
    return 0
