"""apply_many throughput by micro-batch size on MovieLens 100K, against apply one by one.

    python benchmarks/batch_sizes.py [--json] [--rounds N]

The processor applies whatever one poll returns (up to ``max_batch``, 20,000 by default: a
backlog is caught up in large batches, a live stream in small ones). For each size the 100,000
ML-100K ratings in timestamp order are applied to a fresh ``UserKNN()`` in batches of that size
(events built outside the timer); apply one event at a time is the baseline, run in the same
rounds. Sizes and the baseline are interleaved round by round, so that a noisy minute hits them
all; the figure per size is its median over the rounds, and ``ratio_to_one_by_one`` divides it by
the baseline's median (the garbage collector is off inside every timed loop, as in engine.py).
Every size must end in the same pair sums as the baseline (checked, bit
for bit). With ``--json`` the last line is one JSON object.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine import Rows, load_rows, machine, to_event

from stream_cf.engine import UserKNN

SIZES = (10, 100, 1_000, 5_000, 20_000)


def one_by_one(rows: Rows) -> tuple[float, UserKNN]:
    model = UserKNN()
    elapsed = 0.0
    gc.disable()  # as in engine.py: the collector's pauses are not the engine's
    for row in rows:
        event = to_event(row)
        start = time.perf_counter()
        model.apply(event)
        elapsed += time.perf_counter() - start
    gc.enable()
    return len(rows) / elapsed, model


def batched(rows: Rows, size: int) -> tuple[float, UserKNN]:
    model = UserKNN()
    elapsed = 0.0
    gc.disable()
    for lo in range(0, len(rows), size):
        batch = [to_event(row) for row in rows[lo : lo + size]]
        start = time.perf_counter()
        model.apply_many(batch)
        elapsed += time.perf_counter() - start
    gc.enable()
    return len(rows) / elapsed, model


def same_sums(a: UserKNN, b: UserKNN) -> bool:
    n = a.state.users.high
    pa, pb = a.state.pairs, b.state.pairs
    return n == b.state.users.high and bool(
        pa is not None and pb is not None and np.array_equal(pa.dense(n), pb.dense(n))
    )


def run(rounds: int) -> dict[str, Any]:
    rows = load_rows()
    rates: dict[str, list[float]] = {"one_by_one": [], **{str(size): [] for size in SIZES}}
    identical = True
    for _ in range(rounds):
        rate, reference = one_by_one(rows)
        rates["one_by_one"].append(rate)
        for size in SIZES:
            rate, model = batched(rows, size)
            rates[str(size)].append(rate)
            identical &= same_sums(reference, model)
            del model
            gc.collect()
        del reference
        gc.collect()
    base = statistics.median(rates["one_by_one"])
    out: dict[str, Any] = {"events": len(rows), "rounds": rounds, **machine()}
    out["one_by_one_events_per_s"] = base
    for size in SIZES:
        median = statistics.median(rates[str(size)])
        out[f"batch_{size}_events_per_s"] = median
        out[f"batch_{size}_ratio_to_one_by_one"] = median / base
    out["runs"] = rates
    out["sums_identical"] = identical
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    out = run(args.rounds)
    print(f"one by one: {out['one_by_one_events_per_s']:,.0f} events/s")
    for size in SIZES:
        print(
            f"batches of {size:>6,}: {out[f'batch_{size}_events_per_s']:>9,.0f} events/s "
            f"({out[f'batch_{size}_ratio_to_one_by_one']:.1f}x one by one)"
        )
    print(f"pair sums identical to one by one: {out['sums_identical']}")
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
