"""CPU of knn_baseline's item terms for a list's ten items, and of a list's predicted ratings.

    python benchmarks/item_terms.py [--rounds N] [--users N] [--json]

Every ML-100K rating is applied to one ``UserKNN()`` (knn_baseline, ``item_residual=40``, the
default); for a fixed sample of users (seed 0), each user's ten recommended items are then read
as a published list reads them: ``predict.item_terms_of`` for the ten columns at once (the item
residual's terms, :mod:`~stream_cf.engine.item_residual`) and ``UserKNN.predict_many`` for the
list's ten predicted ratings (the user neighbours' terms, the item terms and the baseline). Process
time per user, each round over the whole sample, after one round of warm-up; the minimum and the
median of the rounds. The figures of two commits are compared by running this script at each,
alternately, in the same minutes. A checksum of the predicted ratings (their bytes) shows that
both commits give the same bits. With ``--json`` the last line is one JSON object with every
figure.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import hashlib
import json
import statistics
import sys
import time

import numpy as np

from stream_cf.datasets import dataset_events
from stream_cf.engine import UserKNN, item_kernel, predict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    model = UserKNN()
    model.apply_many(dataset_events("ml-100k"))
    state, config = model.state, model.settings
    users = model.users()
    picked = np.random.default_rng(0).choice(len(users), args.users, replace=False)
    sample = [users[n] for n in picked.tolist()]
    lists = {user: [item for item, _ in model.recommend(user, 10)] for user in sample}
    base = predict.read_baseline(state, config)
    reads = []
    for user in sample:
        u = state.users.slot_of[user]
        cols = np.array(sorted(state.items.slot_of[item] for item in lists[user]), dtype=np.int64)
        reads.append((u, base.user(state, u), cols))

    def item_terms() -> float:
        start = time.process_time()
        for u, b_u, cols in reads:
            predict.item_terms_of(state, config, base, (u, b_u), cols)
        return (time.process_time() - start) / len(reads) * 1e3

    def predict_many() -> float:
        start = time.process_time()
        for user in sample:
            model.predict_many(user, lists[user])
        return (time.process_time() - start) / len(sample) * 1e3

    item_terms(), predict_many()  # warm-up
    terms = [item_terms() for _ in range(args.rounds)]
    many = [predict_many() for _ in range(args.rounds)]
    ratings = np.array([x for user in sample for x in model.predict_many(user, lists[user])])
    figures = {
        "kernel": item_kernel.KERNEL is not None,
        "users": len(sample),
        "rounds": args.rounds,
        "item_terms_ms_min": min(terms),
        "item_terms_ms_median": statistics.median(terms),
        "predict_many_ms_min": min(many),
        "predict_many_ms_median": statistics.median(many),
        "ratings_sha1": hashlib.sha1(ratings.tobytes()).hexdigest()[:16],
    }
    print(
        f"item_terms (ten columns) {figures['item_terms_ms_min']:.3f} ms min, "
        f"{figures['item_terms_ms_median']:.3f} median; predict_many (a list) "
        f"{figures['predict_many_ms_min']:.3f} ms min, {figures['predict_many_ms_median']:.3f} "
        f"median; ratings {figures['ratings_sha1']}"
    )
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
