"""recommend(user, 10) latency on the final ML-100K state, per neighbour recency, side by side.

    python benchmarks/list_cost.py [--repeats N] [--recency none shared ...] [--cpu]
        [--rank-only] [--numpy] [--ratings]

The 100,000 ML-100K ratings are applied (``apply_many``) to one ``UserKNN()``; then, for the same
300 users as ``benchmarks/engine.py`` (``numpy.random.default_rng(0)``), each rule's list is timed
in turn user by user (interleaved, so that a busy minute on the shared machine slows every rule
alike). Per user the fastest of ``--repeats`` calls is kept (the list is the same each time; the
minimum filters out other processes' interruptions) and the first call's time as well, which is
what ``benchmarks/engine.py`` reports. Prints the p50 and p99 of both, per rule.

``--cpu``: the process's CPU time (time.process_time) instead of the wall clock (on a shared
machine the wall clock counts the waits for a core). ``--rank-only``: the ranking alone
(``ranking.ranked``, without the list's predicted ratings). ``--numpy``: the numpy path of the
`vote` lists, without the compiled kernel (stream_cf/engine/rank_kernel.py). ``--ratings``: the
whole list the processor publishes for explicit feedback, the ranking and then its items'
predicted ratings (``predict_many``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import statistics
import sys
import time

import numpy as np

from stream_cf.datasets import dataset_events
from stream_cf.engine import UserKNN, rank_kernel, ranking


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--recency", nargs="+", default=["none", "shared"])
    parser.add_argument("--cpu", action="store_true", help="CPU time, not the wall clock")
    parser.add_argument("--rank-only", action="store_true", help="ranking.ranked alone")
    parser.add_argument("--numpy", action="store_true", help="without the compiled kernel")
    parser.add_argument("--ratings", action="store_true", help="and the list's predict_many")
    args = parser.parse_args(argv)
    if args.numpy:
        rank_kernel.KERNEL = None
    clock = time.process_time if args.cpu else time.perf_counter
    driver = UserKNN()
    driver.apply_many(dataset_events("ml-100k"))
    users = driver.users()
    rng = np.random.default_rng(0)
    sample = [users[i] for i in rng.choice(len(users), min(300, len(users)), replace=False)]
    models = {name: UserKNN(rank_neighbour_recency=name) for name in args.recency}
    for model in models.values():
        model.state = driver.state  # one state, read by every rule
    first: dict[str, list[float]] = {name: [] for name in models}
    best: dict[str, list[float]] = {name: [] for name in models}
    for user in sample:
        for name, model in models.items():
            times = []
            for _ in range(args.repeats):
                start = clock()
                if args.rank_only:
                    state = model.state
                    ranking.ranked(state, model.settings.ranking, state.users.slot_of[user], 10)
                else:
                    listed = model.recommend(user, 10)
                    if args.ratings:
                        model.predict_many(user, [item for item, _ in listed])
                times.append((clock() - start) * 1e3)
            first[name].append(times[0])
            best[name].append(min(times))
    for name in models:
        print(
            f"{name:8s} first call p50 {percentile(first[name], 50):.2f} ms "
            f"p99 {percentile(first[name], 99):.2f} ms | fastest of {args.repeats} "
            f"p50 {percentile(best[name], 50):.2f} ms p99 {percentile(best[name], 99):.2f} ms"
        )
    base = args.recency[0]
    for name in args.recency[1:]:
        ratio = statistics.median(b / a for a, b in zip(best[base], best[name], strict=True))
        print(f"{name} / {base}, median per user (fastest): {ratio:.2f}")
    print(f"load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
