"""Prequential accuracy of the rating predictors on MovieLens 100K, for a grid of parameters.

    python benchmarks/predictors.py [--json] [--limit N] [--grid small|full|similarity] [--no-check]

Test-then-learn over the ML-100K ratings in time order (``stream_cf.datasets``): before each
rating is learnt, every configuration of the grid predicts it. The configurations share one
engine state (the state does not depend on the predictor's parameters: every configuration reads
the same sums), so one pass scores the whole grid, each through its own ``UserKNN.predict``.
RMSE and MAE are given over the whole stream and separately over its first and second half
(by position in the stream), so that a default is not chosen on one draw of the data.

Then (unless ``--no-check``) the default ``UserKNN()`` and ``predictor="knn_means"`` are run
through :func:`stream_cf.evaluation.prequential` (ranking sample off), as ``stream-cf evaluate``
does, for their figures and wall time. Deterministic (no sampling: the seed is fixed and unused
by the rating metrics). With ``--json`` the last line is one JSON object with every figure.
``--grid similarity`` compares the similarities under knn_baseline instead of the parameter steps.
"""

from __future__ import annotations

import os

# One BLAS thread (see benchmarks/engine.py). Set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import math
import sys
import time
from typing import Any

from stream_cf.datasets import dataset_events
from stream_cf.engine import UserKNN
from stream_cf.evaluation.prequential import prequential
from stream_cf.events import Event, RatingEvent

SEED = 0

MEANS: dict[str, Any] = {"predictor": "knn_means"}  # KNNWithMeans (shrinkage 0)


def grid(name: str) -> list[dict[str, Any]]:
    """knn_means, the default UserKNN() (knn_baseline), then one knn_baseline parameter changed at
    a time (``small``: the damping and shrinkage steps only)."""
    steps: list[dict[str, Any]] = [
        {"damping": 0.0},
        {"damping": 2.0},
        {"shrinkage": 0.0},
        {"shrinkage": 25.0},
        {"baseline_reg_items": 25.0, "baseline_reg_users": 10.0},
        {"min_k": 3},
        {"min_similarity": None},
    ]
    if name == "small":
        steps = steps[:4]
    if name == "similarity":  # the similarity, then its shrinkage (knn_baseline's other terms kept)
        steps = [
            {"similarity": "adjusted_cosine"},
            {"similarity": "adjusted_cosine", "shrinkage": 25.0},
            {"similarity": "msd"},
            {"similarity": "cosine"},
        ]
    return [dict(MEANS), {}, *steps]


def label(config: dict[str, Any]) -> str:
    """The configuration's differences from the defaults of UserKNN, as keyword=value."""
    defaults = UserKNN().config()
    full = UserKNN(**config).config()
    diff = [f"{key}={value}" for key, value in full.items() if defaults.get(key) != value]
    return ", ".join(diff) or "defaults"


class Errors:
    """Running squared and absolute errors."""

    def __init__(self) -> None:
        self.n = 0
        self.sq = 0.0
        self.abs = 0.0

    def add(self, error: float) -> None:
        self.n += 1
        self.sq += error * error
        self.abs += abs(error)

    def figures(self) -> dict[str, float]:
        return {"rmse": math.sqrt(self.sq / self.n), "mae": self.abs / self.n, "n": self.n}


def run_grid(events: list[Event], configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One test-then-learn pass; every configuration predicts each rating before it is learnt."""
    driver = UserKNN()
    models = [UserKNN(**config) for config in configs]
    for model in models:
        model.state = driver.state  # one state, read by every configuration
    half = len(events) // 2
    errors = [{"full": Errors(), "first_half": Errors(), "second_half": Errors()} for _ in configs]
    seconds = [0.0] * len(configs)
    for position, event in enumerate(events):
        if isinstance(event, RatingEvent):
            part = "first_half" if position < half else "second_half"
            for n, model in enumerate(models):
                start = time.perf_counter()
                prediction = model.predict(event.user_id, event.item_id)
                seconds[n] += time.perf_counter() - start
                error = prediction - event.rating
                errors[n]["full"].add(error)
                errors[n][part].add(error)
        driver.apply(event)
    rows = []
    for config, errs, spent in zip(configs, errors, seconds, strict=True):
        row: dict[str, Any] = {"label": label(config), "config": config}
        for part, err in errs.items():
            row[part] = err.figures()
        row["predict_seconds"] = spent
        rows.append(row)
    return rows


def check(events: list[Event]) -> list[dict[str, Any]]:
    """The default UserKNN() and knn_means through the evaluation module (rank sample off)."""
    out = []
    for config in ({}, MEANS):
        result = prequential(
            events, UserKNN(**config), dataset="ml-100k", rank_sample=0.0, seed=SEED
        )
        out.append(
            {
                "label": label(config),
                "config": UserKNN(**config).config(),
                "rmse": result.model.rmse,
                "mae": result.model.mae,
                "warm_rmse": result.model.warm_rmse,
                "seconds": result.seconds,
                "baselines": {name: fig.rmse for name, fig in result.baselines.items()},
            }
        )
        print(
            f"prequential() {out[-1]['label']}: RMSE {result.model.rmse:.4f} "
            f"MAE {result.model.mae:.4f} in {result.seconds:.1f} s",
            file=sys.stderr,
        )
    return out


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| configuration | RMSE full | RMSE 1st half | RMSE 2nd half | MAE full | "
        "MAE 1st half | MAE 2nd half |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['label']} | "
            + " | ".join(
                f"{row[part]['rmse']:.4f}" for part in ("full", "first_half", "second_half")
            )
            + " | "
            + " | ".join(
                f"{row[part]['mae']:.4f}" for part in ("full", "first_half", "second_half")
            )
            + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--limit", type=int, default=None, help="only the first N events")
    parser.add_argument("--grid", choices=("small", "full", "similarity"), default="full")
    parser.add_argument("--no-check", action="store_true", help="skip the prequential() runs")
    args = parser.parse_args(argv)
    events = dataset_events("ml-100k", limit=args.limit)
    configs = grid(args.grid)
    start = time.perf_counter()
    rows = run_grid(events, configs)
    result: dict[str, Any] = {
        "dataset": "ml-100k",
        "events": len(events),
        "grid": args.grid,
        "seed": SEED,
        "grid_seconds": time.perf_counter() - start,
        "rows": rows,
    }
    print(table(rows))
    print(f"grid: {len(configs)} configurations, {result['grid_seconds']:.0f} s", file=sys.stderr)
    if not args.no_check:
        result["prequential"] = check(events)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
