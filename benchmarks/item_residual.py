"""Per-prediction CPU of knn_baseline's item-based residual on MovieLens 100K, on against off.

    python benchmarks/item_residual.py [--rounds N] [--residual K] [--json]

The first 60,000 ML-100K ratings (time order) are applied to one ``UserKNN(item_residual=K)``;
the next 500 events are then predicted on that state (not learnt: the users and items first seen
among them are cold) through ``UserKNN.predict``, by the model with the residual and by the same
state with ``item_residual=0``, in alternating rounds (so that a busy minute on the shared machine
slows both alike). Process time per prediction, over all 500 and over the warm ones (user and
item known), the minimum and the median of the rounds; the residual's cost is on minus off. The
figures of two commits are compared by running this script at each, in the same minutes.
With ``--json`` the last line is one JSON object with every figure.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import dataclasses
import json
import statistics
import sys
import time

from stream_cf.datasets import dataset_events
from stream_cf.engine import UserKNN
from stream_cf.events import RatingEvent

LEARNT = 60_000
PREDICTED = 500


def per_prediction(model: UserKNN, pairs: list[tuple[str, str]]) -> float:
    """Process milliseconds per ``model.predict`` over ``pairs``."""
    start = time.process_time()
    for user, item in pairs:
        model.predict(user, item)
    return (time.process_time() - start) / max(len(pairs), 1) * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--residual", type=int, default=40, help="item_residual K when on")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    events = dataset_events("ml-100k")
    on = UserKNN(item_residual=args.residual)
    on.apply_many(events[:LEARNT])
    off = UserKNN(item_residual=args.residual)
    off.state = on.state  # the same ratings, read without the residual
    off.settings = dataclasses.replace(on.settings, item_residual=0)
    pairs = [
        (e.user_id, e.item_id)
        for e in events[LEARNT : LEARNT + PREDICTED]
        if isinstance(e, RatingEvent)
    ]
    warm = [(u, i) for u, i in pairs if on.has_user(u) and on.has_item(i)]
    times: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for name, model in (("on", on), ("off", off)):
            times.setdefault(f"{name}_all", []).append(per_prediction(model, pairs))
            times.setdefault(f"{name}_warm", []).append(per_prediction(model, warm))
    out: dict[str, float | int] = {"residual": args.residual, "rounds": args.rounds}
    out["predictions"], out["warm"] = len(pairs), len(warm)
    for key, values in times.items():
        out[f"{key}_min_ms"] = round(min(values), 4)
        out[f"{key}_median_ms"] = round(statistics.median(values), 4)
    for scope in ("all", "warm"):
        cost = out[f"on_{scope}_min_ms"] - out[f"off_{scope}_min_ms"]
        out[f"residual_{scope}_min_ms"] = round(cost, 4)
    print(
        f"{len(pairs)} predictions ({len(warm)} warm), {args.rounds} rounds, process ms per "
        "prediction (min / median):"
    )
    for key in times:
        print(f"  {key:9s} {out[f'{key}_min_ms']:.4f} / {out[f'{key}_median_ms']:.4f}")
    print(
        f"  residual: +{out['residual_all_min_ms']:.4f} ms over all, "
        f"+{out['residual_warm_min_ms']:.4f} ms per warm prediction"
    )
    if args.json:
        print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
