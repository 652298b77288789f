"""``stream-cf run``: the stream processor.

Every setting is a flag or a ``STREAM_CF_<NAME>`` environment variable (flags win); see
:class:`stream_cf.processor.settings.ProcessorSettings`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, get_args

from stream_cf.engine.config import NeighbourRecency, RankMode
from stream_cf.kafka_config import ConnectionFields, SaslMechanism, SecurityProtocol
from stream_cf.processor.settings import (
    Feedback,
    Guarantee,
    Predictor,
    Refresh,
    Similarity,
    load_settings,
)

# (flag, settings field, type, help); every default comes from the settings class
_OPTIONS: list[tuple[str, str, Any, str]] = [
    ("--bootstrap-servers", "bootstrap_servers", str, "host:port[,host:port] (localhost:9092)"),
    ("--input-topic", "input_topic", str, "topic of the input events (cf.events)"),
    ("--output-topic", "output_topic", str, "topic of the lists, compacted (cf.recommendations)"),
    ("--dlq-topic", "dlq_topic", str, "dead-letter topic (<input topic>.dlq)"),
    ("--group-id", "group_id", str, "consumer group the offsets are committed to (stream-cf)"),
    (
        "--state-dir",
        "state_dir",
        str,
        "directory of the checkpoint file; {host} stands for the host name (stream-cf-state)",
    ),
    (
        "--session-timeout",
        "session_timeout",
        float,
        "scale-out: seconds before the group moves a silent instance's partitions (10)",
    ),
    ("--partitions", "partitions", int, "partitions of the topics it creates (1)"),
    ("--replication-factor", "replication_factor", int, "of the topics it creates (1)"),
    ("--rank-half-life", "rank_half_life", float, "vote/item: history half-life in items (5)"),
    ("--rank-neighbours", "rank_neighbours", int, "vote: neighbours who vote (80)"),
    (
        "--rank-exponent",
        "rank_exponent",
        float,
        "vote: a neighbour's vote is w^this (2; implicit feedback 1)",
    ),
    (
        "--rank-damping",
        "rank_damping",
        float,
        "vote: divide by (raters of the item)^this (0.2; implicit feedback 0)",
    ),
    (
        "--rank-neighbour-half-life",
        "rank_neighbour_half_life",
        float,
        "vote: h_n of --rank-neighbour-recency latest/shared, in items (5)",
    ),
    (
        "--rank-rarity",
        "rank_rarity",
        float,
        "vote: a shared item counts 1/(its raters)^this in w_uv (0)",
    ),
    (
        "--max-request-size",
        "max_request_size",
        int,
        "largest request the producer sends, bytes; larger dead letters are cut (1048576)",
    ),
    ("--k", "k", int, "neighbours per prediction (40)"),
    ("--min-k", "min_k", int, "fewer usable neighbours -> fallback to the user mean (1)"),
    ("--min-support", "min_support", int, "co-rated items needed for a similarity (1)"),
    ("--shrinkage", "shrinkage", float, "similarity shrinkage (knn_baseline 100, knn_means 0)"),
    ("--baseline-reg-items", "baseline_reg_items", float, "knn_baseline: λ_i of b_i (10)"),
    ("--baseline-reg-users", "baseline_reg_users", float, "knn_baseline: λ_u of b_u (5)"),
    ("--damping", "damping", float, "knn_baseline: λ added to Σ|w| of the residual (0.5)"),
    (
        "--item-residual",
        "item_residual",
        int,
        "knn_baseline: item neighbours of the item-based residual, 0 off (40)",
    ),
    ("--item-shrinkage", "item_shrinkage", float, "knn_baseline: β of s_ij·n/(n + β) (100)"),
    ("--n", "n", int, "length of each list (10)"),
    ("--checkpoint-interval", "checkpoint_interval", float, "seconds between checkpoints (30)"),
    ("--max-batch", "max_batch", int, "most records per batch (20000)"),
    (
        "--refresh-budget",
        "refresh_budget",
        float,
        "seconds per loop spent on pending neighbour refreshes (0.05)",
    ),
    (
        "--transactional-id",
        "transactional_id",
        str,
        "exactly-once: the producer's transactional id (stream-cf.<group id>.<input topic>)",
    ),
    ("--max-id-length", "max_id_length", int, "longer ids go to the dead-letter topic (256)"),
    (
        "--max-future-skew",
        "max_future_skew",
        float,
        "seconds a ts may be after its record's append time; later: dead letter (86400)",
    ),
    ("--poll-timeout", "poll_timeout", float, "seconds one poll waits for records (0.2)"),
    ("--retry-backoff-max", "retry_backoff_max", float, "longest wait between retries (5)"),
    (
        "--bootstrap-timeout",
        "bootstrap_timeout",
        float,
        "seconds a Kafka client waits for the broker's first metadata per attempt (30)",
    ),
    (
        "--shutdown-timeout",
        "shutdown_timeout",
        float,
        "seconds to keep trying to publish after SIGINT/SIGTERM (30)",
    ),
    ("--rating-scale", "rating_scale", str, "LOW,HIGH; ratings outside are rejected (1,5)"),
    (
        "--metrics-port",
        "metrics_port",
        int,
        "serve Prometheus /metrics and /healthz on this port (off; 0: any free port)",
    ),
    ("--metrics-host", "metrics_host", str, "address of the metrics server (127.0.0.1)"),
    ("--sasl-plain-username", "sasl_plain_username", str, "SASL username"),
    (
        "--sasl-plain-password",
        "sasl_plain_password",
        str,
        "SASL password (prefer STREAM_CF_SASL_PLAIN_PASSWORD)",
    ),
    ("--ssl-cafile", "ssl_cafile", str, "CA bundle"),
    ("--ssl-certfile", "ssl_certfile", str, "client certificate"),
    ("--ssl-keyfile", "ssl_keyfile", str, "client key"),
    ("--ssl-password", "ssl_password", str, "password of the key (prefer STREAM_CF_SSL_PASSWORD)"),
]
_CHOICES: list[tuple[str, str, Any, str]] = [
    (
        "--rank",
        "rank",
        RankMode,
        "how lists are ranked: vote (recency-weighted neighbour vote), item (item-based kNN "
        "over recent items), rating (predicted rating) (vote)",
    ),
    (
        "--rank-neighbour-recency",
        "rank_neighbour_recency",
        NeighbourRecency,
        "vote: how a neighbour's items count: none (alike), latest (the neighbour's latest "
        "first), shared (those the neighbour rated or bought near the items they share with the "
        "user first) (shared)",
    ),
    (
        "--similarity",
        "similarity",
        Similarity,
        "similarity (the predictor's: knn_baseline adjusted_cosine, knn_means pearson; "
        "implicit: cosine)",
    ),
    ("--feedback", "feedback", Feedback, "explicit ratings or implicit weights (explicit)"),
    ("--predictor", "predictor", Predictor, "rating estimator (knn_means; see the README)"),
    (
        "--refresh",
        "refresh",
        Refresh,
        "actors: only the users who acted; neighbours: also every user who shares an item with "
        "them, so no list is left stale (neighbours)",
    ),
    (
        "--guarantee",
        "guarantee",
        Guarantee,
        "delivery: at-least-once, or exactly-once (Kafka transactions: each batch's outputs and "
        "input offsets commit together; readers use read_committed) (at-least-once)",
    ),
    ("--security-protocol", "security_protocol", SecurityProtocol, "(PLAINTEXT)"),
    ("--sasl-mechanism", "sasl_mechanism", SaslMechanism, "SASL mechanism"),
]
FIELDS = [field for _, field, _, _ in _OPTIONS + _CHOICES] + [
    "accept_new_input_topic",
    "include_seen",
    "scale_out",
    "min_similarity",
    "ssl_check_hostname",
]


def _min_similarity(text: str) -> float | None:
    return None if text.lower() in ("none", "null", "") else float(text)


def add_connection_arguments(parser: argparse.ArgumentParser) -> list[str]:
    """The Kafka connection and security flags of ``run`` (``--bootstrap-servers``,
    ``--security-protocol``, ``--sasl-*``, ``--ssl-*``) on another command's ``parser`` (whose
    ``argument_default`` should be SUPPRESS: an absent flag leaves the environment's value);
    returns their settings fields."""
    fields = set(ConnectionFields.model_fields)
    for flag, field, kind, text in _OPTIONS:
        if field in fields:
            parser.add_argument(flag, dest=field, type=kind, help=text)
    for flag, field, literal, text in _CHOICES:
        if field in fields:
            parser.add_argument(flag, dest=field, choices=list(get_args(literal)), help=text)
    parser.add_argument(
        "--no-ssl-check-hostname",
        dest="ssl_check_hostname",
        action="store_false",
        help="do not check the broker certificate's host name",
    )
    return sorted(fields)


def register(subparsers: Any) -> None:
    """Add the ``run`` sub-command."""
    parser = subparsers.add_parser(
        "run",
        help="run the stream processor",
        description="Consume events, update the UserKNN state, publish the changed lists. "
        "Every option is also a STREAM_CF_<OPTION> environment variable.",
        argument_default=argparse.SUPPRESS,
    )
    for flag, field, kind, text in _OPTIONS:
        parser.add_argument(flag, dest=field, type=kind, help=text)
    for flag, field, literal, text in _CHOICES:
        parser.add_argument(flag, dest=field, choices=list(get_args(literal)), help=text)
    parser.add_argument(
        "--min-similarity",
        dest="min_similarity",
        type=_min_similarity,
        help="neighbours need a similarity above this; 'none' keeps every non-zero one (0)",
    )
    parser.add_argument(
        "--include-seen",
        dest="include_seen",
        action="store_true",
        help="lists may hold the user's own items (re-purchases; vote and item rankings)",
    )
    parser.add_argument(
        "--no-ssl-check-hostname",
        dest="ssl_check_hostname",
        action="store_false",
        help="do not check the broker certificate's host name",
    )
    parser.add_argument(
        "--accept-new-input-topic",
        dest="accept_new_input_topic",
        action="store_true",
        help="the input topic was deleted and re-created since the checkpoint: keep the state "
        "and read the new topic from its beginning (without it: stop, exit status 2)",
    )
    parser.add_argument(
        "--scale-out",
        dest="scale_out",
        action="store_true",
        help="share the input with the group's other instances (same --group-id): each reads "
        "every partition for the ratings and owns the users whose keys hash to the partitions "
        "the group assigns it (keyed input; at-least-once)",
    )
    parser.add_argument(
        "--until-end",
        action="store_true",
        default=False,
        help="stop once every record in the input at start is processed, published, "
        "committed and checkpointed",
    )
    parser.add_argument(
        "--json", action="store_true", default=False, help="print the run summary as JSON"
    )
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Build the settings from the flags (and the environment) and run the processor."""
    from stream_cf.processor.loop import Processor  # noqa: PLC0415 - the engine loads on demand

    given = {field: value for field, value in vars(args).items() if field in FIELDS}
    settings = load_settings(**given)
    summary = Processor(settings).run(until_end=bool(args.until_end))
    if args.json:
        print(json.dumps(summary.to_dict(), sort_keys=True))
    else:
        print(
            f"stopped ({summary.stopped_by}): {summary.events} events, "
            f"{summary.dead_letters} dead letters, {summary.published} lists and "
            f"{summary.tombstones} tombstones published, offsets {summary.end_offsets}"
        )
    return 0
