"""The ten predicted ratings of a list (``predict_many``) on the final ML-100K state, in CPU time.

    python benchmarks/predict_many.py [--repeats N] [--numpy] [--predictor knn_means] [--json]

The 100,000 ML-100K ratings are applied (``apply_many``) to one ``UserKNN()`` (the defaults:
``knn_baseline``, ``adjusted_cosine``, shrinkage 100, ``item_residual=40``); for the same 300
users as ``benchmarks/engine.py`` (``numpy.random.default_rng(0)``), each user's ten items are
its ``recommend(user, 10)`` list, whose predicted ratings the processor publishes with it. Then,
``--repeats`` rounds, every user's ``predict_many`` of its ten items is timed in the process's CPU
time (``time.process_time``); per round, the p50 over the users and the mean are printed.
``--numpy``: without the compiled user-neighbour kernel and the compiled selection
(``user_kernel.KERNEL = select_kernel.KERNEL = None``: u's neighbourhood and the selection in
numpy; the item residual's kernel stays). ``--predictor knn_means``: the processor's predictor
(Pearson, no item residual: its lists' ratings go through the compiled selection).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import statistics
import sys
import time

import numpy as np

from stream_cf.datasets import dataset_events
from stream_cf.engine import UserKNN, select_kernel, user_kernel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--numpy", action="store_true", help="without the user-neighbour kernel")
    parser.add_argument(
        "--predictor", choices=["knn_baseline", "knn_means"], default="knn_baseline"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.numpy:
        user_kernel.KERNEL = None
        select_kernel.KERNEL = None
    model = UserKNN(predictor=args.predictor)
    model.apply_many(dataset_events("ml-100k"))
    users = model.users()
    rng = np.random.default_rng(0)
    sample = [users[i] for i in rng.choice(len(users), min(300, len(users)), replace=False)]
    lists = {user: [item for item, _ in model.recommend(user, 10)] for user in sample}
    rounds = []
    for _ in range(args.repeats):
        times = []
        for user in sample:
            start = time.process_time()
            model.predict_many(user, lists[user])
            times.append((time.process_time() - start) * 1e3)
        rounds.append({"p50_ms": statistics.median(times), "mean_ms": statistics.fmean(times)})
    load = os.getloadavg()[0]
    if args.json:
        out = {"rounds": rounds, "numpy": args.numpy, "predictor": args.predictor, "load": load}
        print(json.dumps(out))
    else:
        for n, row in enumerate(rounds):
            print(f"round {n}: p50 {row['p50_ms']:.3f} ms, mean {row['mean_ms']:.3f} ms a list")
        print(f"load average {load:.1f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
