"""Ranking quality of UserKNN's ranking modes beside popularity, prequential, on several samples.

    python benchmarks/ranking.py [--json] [--dataset ml-100k|instacart] [--samples 0.02:0 ...]
                                 [--configs NAME ...] [--limit N]

Each configuration runs the prequential protocol of ``stream-cf evaluate`` (test-then-learn,
in time order; a sampled event of an item the user does not have is a ranked event: is the item
in the model's top 10 just before?) on every sample (fraction:seed), so that a default is not
chosen on one draw. Rating predictions are not scored here (``benchmarks/predictors.py`` does
that): the model is wrapped so that the evaluation only asks it for lists. For implicit datasets
the ``repeats`` protocol (re-purchases counted, lists may hold the user's own items) is run for the
configurations that set ``include_seen``.

The configurations are named in :data:`CONFIGS`; ``--configs`` picks some. With ``--json`` the last
line is one JSON object with every figure.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import platform
import sys
import time
from typing import Any

from stream_cf.datasets import dataset_events
from stream_cf.engine import UserKNN
from stream_cf.evaluation.prequential import prequential
from stream_cf.events import Event


def vote(**keywords: Any) -> dict[str, Any]:
    """A ``vote`` configuration whose neighbours' items all count alike (``none``, the explicit
    default and the implicit one before ``shared``) unless it says otherwise."""
    return {"rank": "vote", "rank_neighbour_recency": "none", **keywords}


def shared(**keywords: Any) -> dict[str, Any]:
    """The implicit default's shape: e = 1, d = 0, a neighbour's items near the shared ones."""
    shape = {"rank_exponent": 1.0, "rank_damping": 0.0, "rank_neighbour_recency": "shared"}
    return vote(**{**shape, **keywords})


CONFIGS: dict[str, dict[str, Any]] = {
    "vote": {"rank": "vote"},  # the defaults of the feedback (implicit: shared, e = 1, d = 0)
    "vote-none": vote(),  # the explicit shape without neighbour recency (the default before shared)
    "vote-h3": vote(rank_half_life=3.0),
    "vote-h10": vote(rank_half_life=10.0),
    "vote-norecency": vote(rank_half_life=1e9),
    "vote-k40": vote(rank_neighbours=40),
    "vote-h3-k40": vote(rank_half_life=3.0, rank_neighbours=40),
    "vote-k160": vote(rank_neighbours=160),
    "vote-e1": vote(rank_exponent=1.0),
    "vote-d0": vote(rank_damping=0.0),
    "vote-d0.4": vote(rank_damping=0.4),
    "vote-e2-d0.2": vote(rank_exponent=2.0, rank_damping=0.2),
    "vote-e1-d0": vote(rank_exponent=1.0, rank_damping=0.0),
    "vote-e1-boost": vote(rank_exponent=1.0, rank_damping=-0.2),
    "vote-e1-boost0.5": vote(rank_exponent=1.0, rank_damping=-0.5),
    "vote-e1-d0-h2": vote(rank_exponent=1.0, rank_damping=0.0, rank_half_life=2.0),
    "vote-e1-d0-h50": vote(rank_exponent=1.0, rank_damping=0.0, rank_half_life=50.0),
    "vote-e1-boost-h20": vote(rank_exponent=1.0, rank_damping=-0.2, rank_half_life=20.0),
    "vote-d0-h20": vote(rank_damping=0.0, rank_half_life=20.0),
    "vote-e1-d0-k160": vote(rank_exponent=1.0, rank_damping=0.0, rank_neighbours=160),
    "vote-e1-d0-h20": vote(rank_exponent=1.0, rank_damping=0.0, rank_half_life=20.0),
    "vote-e1-d0-h20-k160": vote(
        rank_exponent=1.0, rank_damping=0.0, rank_half_life=20.0, rank_neighbours=160
    ),
    # a neighbour's items by the neighbour's own recency (``latest``, h_n items)
    "vote-e1-d0-latest20": vote(
        rank_exponent=1.0,
        rank_damping=0.0,
        rank_neighbour_recency="latest",
        rank_neighbour_half_life=20.0,
    ),
    "vote-e1-d0-latest50": vote(
        rank_exponent=1.0,
        rank_damping=0.0,
        rank_neighbour_recency="latest",
        rank_neighbour_half_life=50.0,
    ),
    "vote-latest20": vote(rank_neighbour_recency="latest", rank_neighbour_half_life=20.0),
    "vote-latest50": vote(rank_neighbour_recency="latest", rank_neighbour_half_life=50.0),
    # ... or by their distance, in the neighbour's history, to the items shared with the user
    "vote-e1-d0-shared": shared(),
    "vote-e1-d0-shared3": shared(rank_neighbour_half_life=3.0),
    "vote-e1-d0-shared10": shared(rank_neighbour_half_life=10.0),
    "vote-e1-d0-shared20": shared(rank_neighbour_half_life=20.0),
    "vote-e1-d0-shared-k160": shared(rank_neighbours=160),
    "vote-e1-d0-shared-h20": shared(rank_half_life=20.0),
    "vote-e1-d0.1-shared": shared(rank_damping=0.1),
    "vote-e2-d0-shared": shared(rank_exponent=2.0),
    "vote-e1-boost-shared": shared(rank_damping=-0.2),
    "vote-shared": vote(rank_neighbour_recency="shared"),
    "vote-shared3": vote(rank_neighbour_recency="shared", rank_neighbour_half_life=3.0),
    "vote-shared10": vote(rank_neighbour_recency="shared", rank_neighbour_half_life=10.0),
    "vote-shared20": vote(rank_neighbour_recency="shared", rank_neighbour_half_life=20.0),
    # the defaults of the feedback with the shared items weighted by rarity (x_j / n_j^b in w_uv),
    # a longer history half-life, or popular items favoured (d < 0)
    "vote-rarity0.5": {"rank": "vote", "rank_rarity": 0.5},
    "vote-rarity1": {"rank": "vote", "rank_rarity": 1.0},
    "vote-rarity0.5-h10": {"rank": "vote", "rank_rarity": 0.5, "rank_half_life": 10.0},
    "vote-rarity0.5-h20": {"rank": "vote", "rank_rarity": 0.5, "rank_half_life": 20.0},
    "vote-h20": {"rank": "vote", "rank_half_life": 20.0},
    "vote-boost0.2": {"rank": "vote", "rank_damping": -0.2},
    "item": {"rank": "item"},
    "item-h3": {"rank": "item", "rank_half_life": 3.0},
    "rating": {"rank": "rating"},
    "vote-seen": {"rank": "vote", "include_seen": True},
    "vote-e1-d0-seen": vote(rank_exponent=1.0, rank_damping=0.0, include_seen=True),
    "vote-e2-d0.2-seen": vote(rank_exponent=2.0, rank_damping=0.2, include_seen=True),
    "vote-h3-seen": vote(rank_half_life=3.0, include_seen=True),
    "vote-e1-d0-shared-seen": shared(include_seen=True),
    "vote-e1-d0-shared10-seen": shared(rank_neighbour_half_life=10.0, include_seen=True),
    "item-seen": {"rank": "item", "include_seen": True},
}


class ListsOnly:
    """A UserKNN that the evaluation asks only for lists (its rating metrics are skipped)."""

    def __init__(self, model: UserKNN) -> None:
        self.model = model

    def has_user(self, user: str) -> bool:
        return self.model.has_user(user)

    def has_item(self, item: str) -> bool:
        return self.model.has_item(item)

    def predict(self, user: str, item: str) -> float:
        raise AssertionError("not asked: the wrapper reports implicit feedback")

    def recommend(self, user: str, n: int = 10) -> list[tuple[str, float]]:
        return self.model.recommend(user, n)

    def apply(self, event: Event) -> Any:
        return self.model.apply(event)

    def config(self) -> dict[str, Any]:
        return {**self.model.config(), "feedback": "implicit"}


def run_one(
    events: list[Event], dataset: str, name: str, sample: tuple[float, int], implicit: bool
) -> dict[str, Any]:
    fraction, seed = sample
    kwargs = dict(CONFIGS[name])
    if implicit:
        kwargs["feedback"] = "implicit"
    model = UserKNN(**kwargs)
    repeats = bool(kwargs.get("include_seen"))
    started = time.perf_counter()
    result = prequential(
        events, ListsOnly(model), dataset=dataset, rank_sample=fraction, seed=seed, repeats=repeats
    )
    data = result.to_json()
    popular = data["baselines"]["popularity"]
    return {
        "config": name,
        "kwargs": kwargs,
        "sample": fraction,
        "seed": seed,
        "protocol": "repeats counted" if repeats else "new items",
        "ranked": data.get("ranked", 0),
        "hit_at_10": data["hit_rate_at_10"],
        "ndcg_at_10": data["ndcg_at_10"],
        "coverage_at_10": data["coverage_at_10"],
        "popularity_hit_at_10": popular["hit_rate_at_10"],
        "popularity_ndcg_at_10": popular["ndcg_at_10"],
        "seconds": round(time.perf_counter() - started, 1),
    }


def parse_sample(text: str) -> tuple[float, int]:
    fraction, _, seed = text.partition(":")
    return float(fraction), int(seed or 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml-100k", choices=["ml-100k", "instacart"])
    parser.add_argument(
        "--samples",
        nargs="+",
        default=None,
        help="fraction:seed of the ranked events (default 0.02:0 0.02:1 0.10:2 for ml-100k, "
        "0.05:0 0.05:1 for instacart)",
    )
    parser.add_argument("--configs", nargs="+", default=None, choices=sorted(CONFIGS))
    parser.add_argument("--limit", type=int, default=None, help="the first N events only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    implicit = args.dataset == "instacart"
    default_samples = ["0.05:0", "0.05:1"] if implicit else ["0.02:0", "0.02:1", "0.10:2"]
    samples = [parse_sample(s) for s in (args.samples or default_samples)]
    configs = args.configs or (
        ["vote", "item", "rating", "vote-seen", "item-seen"]
        if implicit
        else ["vote", "item", "rating"]
    )
    events = dataset_events(args.dataset, limit=args.limit)
    rows = []
    for name in configs:
        for fraction, seed in samples:
            row = run_one(events, args.dataset, name, (fraction, seed), implicit)
            rows.append(row)
            print(
                f"{name:16s} sample {fraction:.2f} seed {seed} ({row['protocol']}): "
                f"{row['ranked']} ranked, hit@10 {row['hit_at_10']:.4f} "
                f"NDCG@10 {row['ndcg_at_10']:.4f} coverage {row['coverage_at_10']:.3f} | "
                f"popularity {row['popularity_hit_at_10']:.4f} / "
                f"{row['popularity_ndcg_at_10']:.4f} ({row['seconds']} s)",
                file=sys.stderr,
                flush=True,
            )
    if args.json:
        print(
            json.dumps(
                {
                    "dataset": args.dataset,
                    "events": len(events),
                    "machine": f"{platform.machine()} {os.cpu_count()} cpus, "
                    f"Python {platform.python_version()}",
                    "results": rows,
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
