"""``stream-cf evaluate``: prequential (or 80/20 split) evaluation of UserKNN and the baselines.

Runs in process, no Kafka: the events of DATASET are replayed in time order through the engine,
each predicted just before it is learnt. Prints the table of final figures (and with ``--json``
a JSON object as the last line); ``--out DIR`` writes report.md, result.json, trace.csv and
metrics.png.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from stream_cf.cli.sources import add_mapping_arguments, mapping_of
from stream_cf.datasets import DATASETS
from stream_cf.engine import UserKNN
from stream_cf.engine.config import NEIGHBOUR_RECENCIES, RANK_MODES, default_similarity
from stream_cf.evaluation.prequential import TOP_N, prequential
from stream_cf.evaluation.report import result_json, summary_text, write_report
from stream_cf.evaluation.scoreboard import EvaluationResult
from stream_cf.evaluation.split import split_evaluate
from stream_cf.event_files import Malformed
from stream_cf.events import Event, PurchaseEvent, RatingEvent
from stream_cf.exceptions import ConfigError
from stream_cf.replay.progress import Progress
from stream_cf.replay.sources import open_source

logger = logging.getLogger(__name__)

SIMILARITIES = ("cosine", "msd", "pearson", "adjusted_cosine")
PREDICTORS = ("knn_means", "knn_baseline")
# Fraction of events scored for ranking when --rank-sample is not given, by "explicit": each
# ranked event costs one recommend() (~2 ms on ML-100K), the rating metrics cost one predict().
DEFAULT_RANK_SAMPLE = {True: 0.02, False: 0.05}


def _min_similarity(text: str) -> float | None:
    if text.lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def register(subparsers: Any) -> None:
    """Add the ``evaluate`` sub-command."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "evaluate",
        help="prequential evaluation of UserKNN beside baselines (RMSE, MAE, hit-rate@10)",
        description=(
            "Replay DATASET in time order through UserKNN in process; predict each event just "
            "before learning it (test-then-learn). Ratings: running MAE/RMSE of the model and of "
            "the global/user/item-mean baselines. Ranking (on a seeded sample of events): "
            "hit-rate@10, NDCG@10 and coverage of the model's top 10 and of popularity's. "
            "A cold event (user unknown: the engine predicts the global mean; item unknown: the "
            "user's mean) is counted separately and warm-only figures are given too."
        ),
    )
    p.add_argument("dataset", metavar="DATASET", help="ml-100k, instacart, or an event file")
    src = p.add_argument_group("event files (column mapping, as in `stream-cf replay`)")
    add_mapping_arguments(src)
    src.add_argument(
        "--order",
        choices=["time", "file"],
        default="time",
        help="files: by event time (needs a time column; the default) or in file order",
    )
    src.add_argument(
        "--limit", type=int, default=None, help="evaluate only the first N events by time"
    )
    model = p.add_argument_group("model (UserKNN)")
    model.add_argument(
        "--rank",
        choices=RANK_MODES,
        default=None,
        help="lists: vote (recency-weighted neighbour vote, the default), item (item-based "
        "kNN over recent items), rating (by predicted rating)",
    )
    model.add_argument("--rank-half-life", type=float, default=None, help="vote/item (5)")
    model.add_argument("--rank-neighbours", type=int, default=None, help="vote (80)")
    model.add_argument(
        "--rank-exponent", type=float, default=None, help="vote (2; implicit feedback 1)"
    )
    model.add_argument(
        "--rank-damping", type=float, default=None, help="vote (0.2; implicit feedback 0)"
    )
    model.add_argument(
        "--rank-neighbour-recency",
        choices=NEIGHBOUR_RECENCIES,
        default=None,
        help="vote: how a neighbour's items count: none (alike), latest, shared (shared)",
    )
    model.add_argument("--rank-neighbour-half-life", type=float, default=None, help="vote: h_n (5)")
    model.add_argument(
        "--rank-rarity",
        type=float,
        default=None,
        help="vote: a shared item counts 1/(its raters)^this in w_uv (0)",
    )
    model.add_argument(
        "--include-seen",
        action="store_true",
        help="lists may hold the user's own items; re-purchases are then ranked too",
    )
    model.add_argument(
        "--similarity",
        choices=SIMILARITIES,
        default=None,
        help="explicit only (default: the predictor's, knn_baseline adjusted_cosine, knn_means "
        "pearson); implicit feedback always uses cosine",
    )
    model.add_argument("--k", type=int, default=40, help="neighbours per prediction (40)")
    model.add_argument("--min-k", type=int, default=1, help="fewer usable → user mean (1)")
    model.add_argument("--min-support", type=int, default=1, help="co-rated items needed (1)")
    model.add_argument(
        "--min-similarity",
        type=_min_similarity,
        default=0.0,
        help="0.0: only positive neighbours (Surprise); 'none': every w != 0 (default 0.0)",
    )
    model.add_argument(
        "--shrinkage",
        type=float,
        default=None,
        help="similarity shrinkage (default: the predictor's, knn_baseline 100, knn_means 0)",
    )
    model.add_argument(
        "--predictor",
        choices=PREDICTORS,
        default=None,
        help="rating estimator, explicit feedback (default: UserKNN's, knn_baseline)",
    )
    model.add_argument("--baseline-reg-items", type=float, default=None, help="knn_baseline: λ_i")
    model.add_argument("--baseline-reg-users", type=float, default=None, help="knn_baseline: λ_u")
    model.add_argument("--damping", type=float, default=None, help="knn_baseline: λ of Σ|w| + λ")
    model.add_argument(
        "--item-residual",
        type=int,
        default=None,
        help="knn_baseline: item neighbours of the item-based residual, 0 off (default: UserKNN's)",
    )
    model.add_argument(
        "--item-shrinkage",
        type=float,
        default=None,
        help="knn_baseline: shrinkage β of the item similarities s_ij·n/(n + β) (100)",
    )
    model.add_argument(
        "--feedback",
        choices=("auto", "explicit", "implicit"),
        default="auto",
        help="auto: explicit if the stream has ratings, else implicit",
    )
    model.add_argument("--implicit-cap", type=float, default=None, help="implicit weight cap")
    model.add_argument(
        "--rating-scale",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=(1.0, 5.0),
        help="rating scale (1 5)",
    )
    ev = p.add_argument_group("protocol and output")
    ev.add_argument(
        "--rank-sample",
        type=_fraction,
        default=None,
        help="fraction of ratings/purchases scored for ranking, 0 to skip "
        "(default 0.02 for explicit ratings, 0.05 for implicit feedback)",
    )
    ev.add_argument("--seed", type=int, default=0, help="seed of the ranking sample (0)")
    ev.add_argument(
        "--split",
        action="store_true",
        help="batch mode: learn the first 80%% by time, test on the rest",
    )
    ev.add_argument("--train-fraction", type=float, default=0.8, help="with --split (0.8)")
    ev.add_argument("--out", metavar="DIR", help="write report.md, result.json, trace.csv, PNG")
    ev.add_argument("--json", action="store_true", help="print a JSON object as the last line")
    ev.add_argument(
        "--compare",
        action="store_true",
        help="also run every ranking mode (and, for ratings, the other predictor) on the same "
        "events and sample, and print them side by side (one pass each)",
    )
    ev.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress line on stderr (default: when standard error is a terminal)",
    )
    p.set_defaults(func=run)


def load_events(args: argparse.Namespace) -> list[Event]:
    """The events of DATASET in time order; malformed file lines are skipped with a warning."""
    mapping = mapping_of(args)
    order = None if args.dataset in DATASETS else args.order
    source = open_source(
        args.dataset, mapping=mapping, fmt=args.format, order=order, limit=args.limit
    )
    events: list[Event] = []
    malformed = 0
    for _position, item in source:
        if isinstance(item, Malformed):
            malformed += 1
            if malformed <= 5:
                logger.warning("%s: skipped %s", source.name, item)
            continue
        events.append(item)
    if malformed:
        logger.warning("%s: %d malformed lines skipped", source.name, malformed)
    if not events:
        raise ConfigError(f"{source.name}: no events to evaluate")
    return events


def build_model(args: argparse.Namespace, events: list[Event]) -> UserKNN:
    """A fresh UserKNN from the model options; ``auto`` feedback follows the stream."""
    feedback = args.feedback
    if feedback == "auto":
        has_ratings = any(isinstance(e, RatingEvent) for e in events)
        feedback = "explicit" if has_ratings else "implicit"
    if feedback == "explicit" and not any(isinstance(e, RatingEvent) for e in events):
        raise ConfigError("--feedback explicit needs ratings, but the stream has none")
    kwargs: dict[str, Any] = {
        "similarity": args.similarity,  # None: the predictor's (UserKNN's default)
        "k": args.k,
        "min_k": args.min_k,
        "min_support": args.min_support,
        "min_similarity": args.min_similarity,
        "shrinkage": args.shrinkage,
        "rating_scale": tuple(args.rating_scale),
        "feedback": feedback,
    }
    if args.implicit_cap is not None:
        kwargs["implicit_cap"] = args.implicit_cap
    for key in (
        "rank",
        "rank_half_life",
        "rank_neighbours",
        "rank_exponent",
        "rank_damping",
        "rank_neighbour_recency",
        "rank_neighbour_half_life",
        "rank_rarity",
    ):
        if getattr(args, key) is not None:
            kwargs[key] = getattr(args, key)
    if args.include_seen:
        kwargs["include_seen"] = True
    for key in (
        "predictor",
        "baseline_reg_items",
        "baseline_reg_users",
        "damping",
        "item_residual",
        "item_shrinkage",
    ):
        if getattr(args, key) is not None:  # else UserKNN's default
            kwargs[key] = getattr(args, key)
    try:
        return UserKNN(**kwargs)
    except ValueError as exc:
        raise ConfigError(f"bad model options: {exc}") from exc


def evaluate_one(
    args: argparse.Namespace,
    events: list[Event],
    model: UserKNN,
    common: dict[str, Any],
    on_event: Any = None,
) -> EvaluationResult:
    """One prequential (or split) run of ``model`` with the command's protocol."""
    if on_event is not None:
        common = {**common, "on_event": on_event}
    if args.split:
        return split_evaluate(events, model, train_fraction=args.train_fraction, **common)
    return prequential(events, model, repeats=args.include_seen, **common)


def _label(model: UserKNN) -> str:
    config = model.config()
    if config["feedback"] == "explicit":
        return f"rank={config['rank']}, predictor={config['predictor']} (asked)"
    return f"rank={config['rank']} (asked)"


def variants(model: UserKNN) -> list[tuple[str, dict[str, Any]]]:
    """The models ``--compare`` runs beside the one asked for: every other ranking mode, and for
    explicit feedback the other predictor (ranked by its own rule, with its own defaults)."""
    config = model.config()
    out = [
        (f"rank={mode}", {**config, "rank": mode}) for mode in RANK_MODES if mode != config["rank"]
    ]
    if config["feedback"] == "explicit":
        other = "knn_means" if config["predictor"] == "knn_baseline" else "knn_baseline"
        own = {"predictor": other, "shrinkage": None, "item_residual": None}
        if config["similarity"] == default_similarity(config["predictor"], "explicit"):
            own["similarity"] = None  # the other predictor's default similarity too
        out.append((f"predictor={other}", {**config, **own}))
    return out


def comparison_text(results: list[tuple[str, EvaluationResult]]) -> str:
    """One row per model run (then popularity), for ``--compare``."""
    n = results[0][1].n
    lines = [
        "",
        "## Compared (same events, same ranking sample)",
        "",
        f"| model | RMSE | MAE | hit@{n} | NDCG@{n} | coverage@{n} | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]

    def cell(value: float | None) -> str:
        return "—" if value is None else f"{value:.4f}"

    for label, result in results:
        fig = result.model
        lines.append(
            f"| {label} | {cell(fig.rmse)} | {cell(fig.mae)} | {cell(fig.hit_rate)} | "
            f"{cell(fig.ndcg)} | {cell(fig.coverage)} | {result.seconds:.0f} |"
        )
    pop = results[0][1].baselines["popularity"]
    lines.append(
        f"| popularity | — | — | {cell(pop.hit_rate)} | {cell(pop.ndcg)} | {cell(pop.coverage)} | |"
    )
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    if not 0.0 < args.train_fraction < 1.0:
        raise ConfigError(f"--train-fraction must be in (0, 1), got {args.train_fraction}")
    events = load_events(args)
    model = build_model(args, events)
    explicit = model.config().get("feedback") == "explicit"
    rank_sample = args.rank_sample
    if rank_sample is None:
        rank_sample = DEFAULT_RANK_SAMPLE[explicit]
    if any(isinstance(e, PurchaseEvent) for e in events) and explicit:
        logger.warning("explicit model: purchases are not rated; they may be rejected")
    label = f"{args.dataset} ({'split' if args.split else 'prequential'})"
    with Progress(len(events), label=label, enabled=args.progress) as bar:
        common: dict[str, Any] = {
            "dataset": args.dataset,
            "rank_sample": rank_sample,
            "seed": args.seed,
            "n": TOP_N,
            "rating_scale": tuple(args.rating_scale),
            "on_event": bar.update,
        }
        result = evaluate_one(args, events, model, common)
    print(summary_text(result), end="")
    if args.compare:
        results = [(_label(model), result)]
        for label, config in variants(model):
            with Progress(len(events), label=label, enabled=args.progress) as bar:
                other = UserKNN(**config)
                results.append((label, evaluate_one(args, events, other, common, bar.update)))
        print(comparison_text(results), end="")
    if args.out:
        for path in write_report(result, args.out):
            print(f"wrote {path}", file=sys.stderr)
    if args.json:
        print(result_json(result))
    return 0
