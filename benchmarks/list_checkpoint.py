"""The cost of a list on a large saved state: build the state once, time lists on it many times.

    python benchmarks/list_checkpoint.py --build STATE [--users 1000000] [--items 100000]
    python benchmarks/list_checkpoint.py STATE [--users 1000000]

``--build``: the implicit stream of ``benchmarks/scale.py`` (:func:`scale.generate`, seed 0)
applied with ``apply_many`` in batches of 1,000 to ``UserKNN(feedback="implicit")`` and saved to
STATE (1M users: ~25 minutes on a loaded 2-core machine, ~1.6 GB). Without it: STATE is loaded
and ``recommendations(user, 10)`` timed for the 200 users ``scale.py`` samples (rng seed 1),
wall and CPU time (the process's: on a loaded machine the wall time also counts the waits for a
core), then ``recommend_many`` of the same users (CPU time per user). Prints one JSON line, with
a fingerprint of the lists (to compare two versions of the code: the same lists give the same
fingerprint) and the ratings' bytes (``footprint()``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import gc
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale import generate

from stream_cf.engine import UserKNN


def build(path: str, users: int, items: int) -> None:
    stream = generate(users, items, implicit=True)
    model = UserKNN(feedback="implicit")
    n = len(stream)
    for lo in range(0, n, 1000):
        events = stream.events(lo, min(n, lo + 1000))
        gc.disable()
        model.apply_many(events)
        gc.enable()
    model.save(path)


def measure(path: str, users: int) -> dict[str, float | str | None]:
    model = UserKNN.load(path)
    rng = np.random.default_rng(1)
    sample = [f"u{k}" for k in rng.choice(users, min(200, users), replace=False).tolist()]
    digest = hashlib.sha256()
    wall: list[float] = []
    cpu: list[float] = []
    gc.disable()
    for user in sample:
        t0 = time.perf_counter()
        c0 = time.process_time()
        recs = model.recommendations(user, 10)
        cpu.append((time.process_time() - c0) * 1e3)
        wall.append((time.perf_counter() - t0) * 1e3)
        digest.update(repr(recs).encode())
    c0 = time.process_time()
    model.recommend_many(sample, 10)
    many = (time.process_time() - c0) * 1e3 / len(sample)
    gc.enable()
    return {
        "list_p50_ms": statistics.median(wall),
        "list_p99_ms": float(np.percentile(wall, 99)),
        "list_cpu_p50_ms": statistics.median(cpu),
        "list_cpu_p99_ms": float(np.percentile(cpu, 99)),
        "recommend_many_cpu_ms_per_user": many,
        "lists_fingerprint": digest.hexdigest()[:16],
        "ratings_bytes": model.footprint().get("ratings_bytes"),
        "load_average": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("state")
    parser.add_argument("--build", action="store_true", help="generate, apply and save STATE")
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    args = parser.parse_args(argv)
    if args.build:
        build(args.state, args.users, args.items)
        return 0
    print(json.dumps(measure(args.state, args.users)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
