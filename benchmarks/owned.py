"""Owned pair rows (``pair_rows="owned"``, scale-out): the pair store's bytes and the costs of
own() and of batch updates for 1 / N of the users, against the full pair sums.

    python benchmarks/owned.py [--users 4000] [--owners 1,2,4] [--tail 0.1] [--seed 0] [--json]

The stream is benchmarks/scale.py's explicit generator (``users`` users, items = users x 75 / 16,
~60 integer ratings per user). The full model (``UserKNN()``) applies it all in batches of 1,000.
For each N, instance 0 of N (the users whose crc32(id) % N == 0, as Kafka's key hash would split
them) applies the first (1 − tail) of the stream owning nobody (ratings only), then own()s its
users (timed), then applies the tail (timed per batch, as the full model's tail); its pair bytes
(allocated rows) are read after that. A few owned users' lists are compared with the full
model's (they must be equal). ``full_load_s``: loading the full model's checkpoint, which
rebuilds every pair sum from the ratings (the work own() does for 1 / N of the rows).
One BLAS thread, the garbage collector off inside each timed call.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

from stream_cf.engine import UserKNN

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine import machine  # benchmarks/engine.py: the house machine info
from scale import BATCH, commit_info, generate, items_for  # benchmarks/scale.py


def timed(call: Any, *args: Any) -> tuple[Any, float]:
    gc.disable()
    try:
        start = time.perf_counter()
        out = call(*args)
        return out, time.perf_counter() - start
    finally:
        gc.enable()


def apply(model: UserKNN, batches: list[list[Any]]) -> list[float]:
    """Seconds per batch."""
    return [timed(model.apply_many, events)[1] for events in batches]


def run(users: int, owners: list[int], tail: float, seed: int) -> dict[str, Any]:
    items = items_for("explicit", users)
    stream = generate(users, items, seed=seed)
    n = len(stream)
    batches = [stream.events(lo, min(lo + BATCH, n)) for lo in range(0, n, BATCH)]
    split = int(len(batches) * (1.0 - tail))
    head, rest = batches[:split], batches[split:]
    out: dict[str, Any] = {
        "users": users,
        "items": items,
        "events": n,
        "tail_events": sum(len(b) for b in rest),
        "batch": BATCH,
    }
    full = UserKNN()
    apply(full, head)
    full_tail = apply(full, rest)
    fp = full.footprint()
    out["full"] = {
        "pair_bytes": fp["pair_bytes"],
        "ratings_bytes": fp["ratings_bytes"],
        "tail_s": sum(full_tail),
        "tail_batch_p50_ms": 1e3 * statistics.median(full_tail),
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "full.npz")
        full.save(path)
        _, out["full"]["load_s"] = timed(UserKNN.load, path)
    ids = full.users()
    rows = []
    for count in owners:
        mine = [u for u in ids if zlib.crc32(u.encode()) % count == 0]
        model = UserKNN(pair_rows="owned")
        apply(model, head)
        gained, own_s = timed(model.own, mine)
        tail_s = apply(model, rest)
        fp = model.footprint()
        sample = [u for u in model.owned_users()[:: max(1, len(mine) // 20)]]
        same = all(model.recommendations(u, 10) == full.recommendations(u, 10) for u in sample)
        rows.append(
            {
                "owners": count,
                "owned_users": gained,
                "owned_at_end": len(model.owned_users()),
                "pair_bytes": fp["pair_bytes"],
                "pair_bytes_vs_full": fp["pair_bytes"] / out["full"]["pair_bytes"],
                "own_s": own_s,
                "tail_s": sum(tail_s),
                "tail_batch_p50_ms": 1e3 * statistics.median(tail_s),
                "lists_checked": len(sample),
                "lists_equal": same,
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr)
    out["owned"] = rows
    return out


def table(result: dict[str, Any]) -> str:
    full = result["full"]
    lines = [
        f"{result['users']:,} users x {result['items']:,} items, {result['events']:,} events; "
        f"tail {result['tail_events']:,} events in batches of {result['batch']:,}",
        "| store | owned users | pair MB | vs full | own() s | tail s | batch p50 ms | lists |",
        "|---|---|---|---|---|---|---|---|",
        f"| full PairSums | all | {full['pair_bytes'] / 1e6:.1f} | 1.00 | "
        f"(load {full['load_s']:.2f}) | {full['tail_s']:.2f} | {full['tail_batch_p50_ms']:.1f} | |",
    ]
    for row in result["owned"]:
        lines.append(
            f"| owned, 1/{row['owners']} | {row['owned_users']:,} | {row['pair_bytes'] / 1e6:.1f} "
            f"| {row['pair_bytes_vs_full']:.2f} | {row['own_s']:.2f} | {row['tail_s']:.2f} | "
            f"{row['tail_batch_p50_ms']:.1f} | {row['lists_checked']} "
            f"{'equal' if row['lists_equal'] else 'DIFFER'} |"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--users", type=int, default=4000)
    p.add_argument("--owners", default="1,2,4", help="instance counts N, comma-separated")
    p.add_argument("--tail", type=float, default=0.1, help="share of the stream applied owned")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object last")
    args = p.parse_args()
    owners = [int(x) for x in args.owners.split(",")]
    result = run(args.users, owners, args.tail, args.seed)
    result["machine"] = machine()
    result["commit"] = commit_info()
    result["command"] = " ".join(["python", "benchmarks/owned.py", *sys.argv[1:]])
    print(table(result))
    if args.json:
        print(json.dumps(result))
    return 0 if all(row["lists_equal"] for row in result["owned"]) else 1


if __name__ == "__main__":
    sys.exit(main())
