"""Rebuild of the pair sums from the ratings alone (what loading a checkpoint costs).

    python benchmarks/rebuild.py [--json] [--users 4000,8000,16000] [--rounds N]

A synthetic catalogue per size: n users, n·75/16 items (16,000 x 75,000 at the top), ~60 ratings
per user (lognormal, σ = 1), items drawn Zipf(1.0) without repeats per user (so the top items are
rated by most users), integer ratings 1-5, all from a seeded numpy generator. For each size,
``pair_sum_blocks(..., scale=2.0)`` is timed to the end, every block consumed (summed into a
checksum, the stand-in for the caller copying it into its storage; that part is also reported
alone), in three configurations, each in a fresh process (the BLAS thread count is read when
numpy loads, and the peak RSS is per process): 1 BLAS thread and 1 worker, 2 BLAS threads and 1
worker, 1 BLAS thread and 2 workers, interleaved round by round. Reported per configuration, from
its fastest round (and the median seconds): seconds, Σ_i n_i² (pair-item updates, per channel)
and updates/s, the process CPU seconds (all threads), the peak RSS and the RSS before the
rebuild (ratings generated), and whether a sample of rows equals scipy's plain product; and the
load average before and after (other processes on the machine slow every figure). With
``--json`` the last line is one JSON object.
"""

from __future__ import annotations

import os

# One BLAS thread unless the parent process asks for another count for this run.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine import machine

from stream_cf.engine.rebuild import pair_sum_blocks

SIZES = (4_000, 8_000, 16_000)
CONFIGS = ((1, 1), (2, 1), (1, 2))  # (BLAS threads, workers)
MEAN_RATINGS = 60.0
SIGMA = 1.0
SCALE = 2.0
SAMPLE_ROWS = 16


def ratings(n_users: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users, items, values) of the synthetic catalogue, each (user, item) once."""
    n_items = n_users * 75 // 16
    rng = np.random.default_rng(seed)
    counts = np.rint(rng.lognormal(np.log(MEAN_RATINGS) - SIGMA**2 / 2, SIGMA, n_users))
    counts = np.clip(counts.astype(np.int64), 1, n_items // 4)
    cdf = np.cumsum(1.0 / np.arange(1, n_items + 1))
    cdf /= cdf[-1]
    slot_of_rank = rng.permutation(n_items)  # popularity does not follow the slot order
    keys = np.empty(0, dtype=np.int64)
    missing = counts
    while missing.any():
        # draw 30% more than missing, keep each user's first distinct draws (draw order)
        extra = missing + (missing * 3 + 9) // 10
        users = np.repeat(np.arange(n_users, dtype=np.int64), extra)
        ranks = np.minimum(np.searchsorted(cdf, rng.random(users.size), side="right"), n_items - 1)
        drawn = users * n_items + slot_of_rank[ranks]
        at = np.minimum(np.searchsorted(keys, drawn), max(keys.size - 1, 0))
        if keys.size:
            drawn = drawn[keys[at] != drawn]  # not drawn in an earlier round
        _, first = np.unique(drawn, return_index=True)
        drawn = drawn[np.sort(first)]  # distinct, still grouped by user in draw order
        owner = drawn // n_items
        starts = np.searchsorted(owner, np.arange(n_users))
        rank = np.arange(drawn.size) - starts[owner]
        keys = np.sort(np.concatenate((keys, drawn[rank < missing[owner]])))
        missing = counts - np.bincount(keys // n_items, minlength=n_users)
    values = rng.choice(
        np.array([1.0, 2.0, 3.0, 4.0, 5.0]), size=keys.size, p=[0.06, 0.11, 0.27, 0.34, 0.22]
    )
    return keys // n_items, keys % n_items, values


def sample_rows(
    users: np.ndarray, items: np.ndarray, values: np.ndarray, n_users: int, rows: np.ndarray
) -> np.ndarray:
    """The sums of ``rows`` by scipy's plain int64 products over every item."""
    shape = (n_users, int(items.max()) + 1)
    w = np.rint(values * SCALE).astype(np.int64)
    mask = sp.csr_array((np.ones_like(w), (users, items)), shape=shape)
    vals = sp.csr_array((w, (users, items)), shape=shape)
    squares = sp.csr_array((w * w, (users, items)), shape=shape)
    parts = [
        mask[rows] @ mask.T,
        vals[rows] @ mask.T,
        squares[rows] @ mask.T,
        vals[rows] @ vals.T,
    ]
    return np.stack([p.toarray() for p in parts], axis=-1)


def run_one(n_users: int, workers: int) -> dict[str, Any]:
    start = time.perf_counter()
    users, items, values = ratings(n_users)
    out: dict[str, Any] = {
        "users": n_users,
        "items": n_users * 75 // 16,
        "ratings": int(users.size),
        "blas_threads": int(os.environ["OPENBLAS_NUM_THREADS"]),
        "workers": workers,
        "generate_s": time.perf_counter() - start,
    }
    raters = np.bincount(items).astype(np.int64)
    out["pair_item_updates"] = int((raters * raters).sum())
    out["top_item_share"] = float(raters.max() / n_users)
    rows = np.random.default_rng(1).choice(n_users, SAMPLE_ROWS, replace=False)
    expected = sample_rows(users, items, values, n_users, rows)
    got = np.zeros_like(expected)
    out["rss_before_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    checksum = 0
    consume = 0.0
    cpu = time.process_time()
    start = time.perf_counter()
    for lo, hi, block in pair_sum_blocks(
        users, items, values, n_users, scale=SCALE, workers=workers
    ):
        t0 = time.perf_counter()
        checksum += int(block.sum(dtype=np.int64))
        inside = (rows >= lo) & (rows < hi)
        got[inside] = block[rows[inside] - lo]
        consume += time.perf_counter() - t0
    out["seconds"] = time.perf_counter() - start
    out["cpu_s"] = time.process_time() - cpu  # every thread's; about the seconds of a quiet machine
    out["consume_s"] = consume
    out["updates_per_s"] = out["pair_item_updates"] / out["seconds"]
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["checksum"] = checksum
    out["sample_rows_equal"] = bool(np.array_equal(got, expected))
    return out


def run(sizes: list[int], rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {**machine(), "scipy": scipy.__version__, "rounds": rounds}
    out["load_avg_before"] = os.getloadavg()[0]
    for n_users in sizes:
        runs: dict[tuple[int, int], list[dict[str, Any]]] = {config: [] for config in CONFIGS}
        for _ in range(rounds):  # configurations interleaved: a noisy minute hits them all
            for threads, workers in CONFIGS:
                env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads)}
                argv = [sys.executable, __file__, "--one", str(n_users), "--workers", str(workers)]
                done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
                runs[threads, workers].append(json.loads(done.stdout.strip().splitlines()[-1]))
        for (threads, workers), results in runs.items():
            best = min(results, key=lambda r: r["seconds"])
            best["seconds_median"] = statistics.median(r["seconds"] for r in results)
            out[f"u{n_users}_blas{threads}_workers{workers}"] = best
            print(
                f"{n_users:>6,} users, {threads} BLAS thread(s), {workers} worker(s): "
                f"{best['seconds']:6.2f} s best, {best['seconds_median']:6.2f} s median, "
                f"{best['cpu_s']:6.2f} s CPU "
                f"({best['consume_s']:.2f} s consuming), {best['pair_item_updates']:.3g} updates, "
                f"{best['updates_per_s']:.3g}/s, peak RSS {best['peak_rss_mb']:,.0f} MB, "
                f"rows equal {best['sample_rows_equal']}",
                flush=True,
            )
    out["load_avg_after"] = os.getloadavg()[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--users", default=",".join(map(str, SIZES)), help="sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="runs per configuration")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child: one run
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.workers)))
        return
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    out = run([int(size) for size in args.users.split(",")], args.rounds)
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
