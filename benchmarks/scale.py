"""How the engine's state and costs grow with the stream: a curve of sizes on synthetic streams.

    python benchmarks/scale.py [--curve explicit|implicit] [--sizes 1000,2000] [--max-users N]
                               [--seed S] [--timeout SECONDS] [--mem-limit-gib G] [--keep-going]
                               [--json] [--plot PATH]
    python benchmarks/scale.py --curve explicit --sizes 1000,2000 --json --plot scale.png
    python benchmarks/scale.py --curve implicit --sizes 1000,10000 --json
    python benchmarks/scale.py --one --mode explicit --users 1000 --items 4688  # one size

Streams (:func:`generate`, numpy only, seeded): ``users`` users and ``items`` items whose popularity
follows Zipf's law (exponent ``--zipf``, 1.0 by default); each user has a heavy-tailed (lognormal,
at least 1) number of events around ``--mean`` (60 ratings explicit, 10 purchases implicit).
Explicit: distinct (user, item) per user, integer ratings 1-5 from a global mean plus a per-user
and a per-item bias plus noise, rounded and clipped. Implicit: purchases of quantity 1, 30 % of a
user's purchases after the first being re-purchases of one of the user's earlier items. Users
arrive spread over a 180-day stream and act in sessions (a few events 45 s apart), so that users
interleave in the stream; the events are in time order (epoch-second ``ts``, non-decreasing).

Curves: ``explicit`` 1k, 2k, 4k, 8k, 16k users with items = users x 75 / 16 (16,000 x 75,000 at the
top), ~60 ratings per user, ``UserKNN()``; ``implicit`` 1k, 10k, 100k, 1M users with items =
min(100,000, users x 5), ~10 purchases per user (1M users: ~10M purchases),
``UserKNN(feedback="implicit")``. Each size runs in its own child process (this script with
``--one``, printing one JSON line), so that its peak RSS is its own; a child that runs past
``--timeout``, goes over ``--mem-limit-gib`` (the parent watches its RSS and kills it) or is
killed (e.g. by the OOM killer) is reported as such with its size, and the curve stops growing
there (``--keep-going``: it goes on).

In the child, only the engine's public API is used: the stream is generated (its arrays only),
then applied with ``apply_many`` in batches of 1,000 built outside the timers (the garbage
collector off inside each timed call, as in engine.py): events/s, batch p50/p99/max and max/median
(the issue's bound: no batch over 10x the median because arrays grew); pair updates/s = (sum over
events of the item's distinct earlier raters other than the event's user, counted by the
generator with numpy) / apply seconds; then ``recommendations(user, 10)`` latency over 200
random users; ``save`` to a temporary file (its size, the pause); a restart = ``UserKNN.load`` +
the first list; RSS (VmRSS) at start, after generating and after applying, and the peak
(ru_maxrss) after generating, after applying and at the end; and ``model.footprint()`` when the
engine has it (else null figures). The parent fits, for each figure, the least-squares slope of
log(figure) against log(users): the figure grows as users^slope. With ``--json`` the last line is
one JSON object (machine, commit, command, rows, fits); ``--plot`` draws peak RSS, apply seconds
and checkpoint bytes against users, log-log (matplotlib).
"""

from __future__ import annotations

import os

# One BLAS thread, as in engine.py (set before numpy loads; children inherit it).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import gc
import json
import math
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_cf.engine import UserKNN
from stream_cf.events import Event, PurchaseEvent, RatingEvent

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine import machine  # benchmarks/engine.py: the house machine info

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
Int32Array = npt.NDArray[np.int32]

BATCH = 1_000
PROGRESS = "progress "
LIST_USERS = 200
SPAN_S = 180 * 86_400  # the stream covers 180 days
T0 = 1_700_000_000  # epoch seconds of the stream's start (2023-11-14)
STEP_S = 45  # seconds between two events of a session
EXPLICIT_SIZES = (1_000, 2_000, 4_000, 8_000, 16_000)
IMPLICIT_SIZES = (1_000, 10_000, 100_000, 1_000_000)
DEFAULT_MEAN = {"explicit": 60.0, "implicit": 10.0}
SESSION_MEAN = {"explicit": 8.0, "implicit": 4.0}  # events per session, on average
ROOT = Path(__file__).resolve().parent.parent
# the figures fitted against users (figure -> short label of the table)
FITTED = (
    "events",
    "apply_s",
    "apply_events_per_s",
    "pair_updates_per_s",
    "batch_p50_s",
    "batch_max_s",
    "list_p50_s",
    "peak_rss_bytes",
    "engine_rss_bytes",
    "checkpoint_bytes",
    "save_s",
    "restart_s",
    "footprint_total_bytes",
)


# ---------------------------------------------------------------------------------- the stream
@dataclass(frozen=True)
class Stream:
    """A generated stream, in time order: event ``e`` is ``users[e]`` acting on ``items[e]``
    (rating or quantity ``values[e]``) at epoch second ``ts[e]``; ``earlier[e]`` is the number
    of distinct users other than ``users[e]`` who rated (bought) ``items[e]`` before event ``e``:
    the pair cells the event touches."""

    users: Int32Array
    items: Int32Array
    values: npt.NDArray[np.float32]
    ts: IntArray
    earlier: Int32Array
    n_users: int
    n_items: int
    implicit: bool

    def __len__(self) -> int:
        return int(self.users.size)

    @property
    def pair_updates(self) -> int:
        return int(self.earlier.sum(dtype=np.int64))

    def events(self, lo: int, hi: int) -> list[Event]:
        """Events ``lo`` to ``hi`` as validated engine events (ids ``u<k>`` and ``i<k>``)."""
        users = self.users[lo:hi].tolist()
        items = self.items[lo:hi].tolist()
        stamps = self.ts[lo:hi].tolist()
        if self.implicit:
            return [
                PurchaseEvent(user_id=f"u{u}", item_id=f"i{i}", quantity=1.0, ts=t)
                for u, i, t in zip(users, items, stamps, strict=True)
            ]
        values = self.values[lo:hi].tolist()
        return [
            RatingEvent(user_id=f"u{u}", item_id=f"i{i}", rating=v, ts=t)
            for u, i, v, t in zip(users, items, values, stamps, strict=True)
        ]


def zipf_sampler(
    rng: np.random.Generator, items: int, exponent: float
) -> Callable[[int], Int32Array]:
    """Draws of items with P(rank r) ∝ 1 / r^exponent; ranks are shuffled onto item numbers."""
    weights = 1.0 / np.arange(1, items + 1, dtype=np.float64) ** exponent
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    item_of_rank = rng.permutation(items).astype(np.int32)

    def draw(n: int) -> Int32Array:
        ranks = np.searchsorted(cdf, rng.random(n), side="right")
        np.minimum(ranks, items - 1, out=ranks)
        return item_of_rank[ranks]

    return draw


def user_counts(
    rng: np.random.Generator, users: int, mean: float, cap: int, sigma: float = 1.0
) -> IntArray:
    """Heavy-tailed events per user: lognormal with mean ``mean``, rounded, in [1, cap]."""
    mu = math.log(mean) - sigma * sigma / 2
    raw = rng.lognormal(mu, sigma, users)
    return np.clip(np.rint(raw), 1, max(1, cap)).astype(np.int64)


def _member(sorted_keys: IntArray, keys: IntArray) -> npt.NDArray[np.bool_]:
    """Whether each of ``keys`` is in ``sorted_keys`` (sorted, unique)."""
    if sorted_keys.size == 0:
        return np.zeros(keys.size, dtype=np.bool_)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), sorted_keys.size - 1)
    found: npt.NDArray[np.bool_] = sorted_keys[pos] == keys
    return found


def distinct_items(
    rng: np.random.Generator, counts: IntArray, items: int, draw: Callable[[int], Int32Array]
) -> tuple[Int32Array, Int32Array]:
    """``counts[u]`` distinct items per user u, each drawn by ``draw`` (a duplicate is drawn
    again: successive sampling without replacement); returned grouped by user, in random order
    within a user. After 50 rounds the few users still short draw uniformly (counts <= items/4
    keep that short)."""
    n_users = counts.size
    need = counts.copy()
    chunks: list[IntArray] = []
    rounds = 0
    while True:
        total = int(need.sum())
        if total == 0:
            break
        owners = np.repeat(np.arange(n_users, dtype=np.int64), need)
        picks = draw(total) if rounds < 50 else rng.integers(0, items, total, dtype=np.int32)
        keys = np.unique(owners * items + picks)
        for chunk in chunks:
            keys = keys[~_member(chunk, keys)]
        chunks.append(keys)
        need -= np.bincount(keys // items, minlength=n_users)
        rounds += 1
    keys = np.concatenate(chunks)
    owners = keys // items
    order = np.lexsort((rng.random(keys.size), owners))
    return owners[order].astype(np.int32), (keys % items)[order].astype(np.int32)


def repurchases(
    rng: np.random.Generator,
    owners: Int32Array,
    start: IntArray,
    fresh: Int32Array,
    rate: float,
) -> Int32Array:
    """Items of a stream grouped by user (``start``: each user's first event): each event after
    a user's first is, with probability ``rate``, a re-purchase of one of the user's earlier
    events' items (uniformly), else ``fresh``."""
    n = owners.size
    again = rng.random(n, dtype=np.float32) < rate
    again[start] = False  # a user's first purchase is new
    idx = np.flatnonzero(again).astype(np.int32)
    del again
    first = start[owners[idx]]
    src = np.arange(n, dtype=np.int32)
    src[idx] = first + (rng.random(idx.size) * (idx - first)).astype(np.int32)
    del first
    while True:  # follow re-purchases of re-purchases back to a fresh draw (pointer jumping)
        hop = src[idx]
        nxt = src[hop]
        if np.array_equal(hop, nxt):
            break
        src[idx] = nxt
    out: Int32Array = fresh[src]
    return out


def session_times(
    rng: np.random.Generator,
    owners: Int32Array,
    start: IntArray,
    n_users: int,
    session_mean: float,
) -> IntArray:
    """Epoch seconds of a stream grouped by user (in each user's order; ``start``: each user's
    first event): the user arrives at a uniform time of the stream and acts in sessions (a new
    one with probability 1/session_mean per event) spread uniformly over the rest of the
    stream, events of a session ``STEP_S`` seconds apart (+ jitter); non-decreasing per user."""
    n = owners.size
    first = np.zeros(n, dtype=np.bool_)
    first[start] = True
    opens = rng.random(n, dtype=np.float32) < 1.0 / session_mean
    opens |= first
    session = np.cumsum(opens, dtype=np.int32)
    session -= 1  # the event's session, numbered over the whole stream
    session_owner = owners[opens]
    arrival = rng.uniform(0.0, SPAN_S, n_users)
    place = rng.random(session_owner.size)
    place[first[opens]] = 0.0  # the first session at the arrival
    del first
    # sorted within each user (the sessions are grouped by user: the sort keeps the groups)
    place = place[np.lexsort((place, session_owner))]
    begin = arrival[session_owner] + (SPAN_S - arrival[session_owner]) * place
    del place, session_owner
    in_session = np.arange(n, dtype=np.int32)
    in_session -= np.flatnonzero(opens).astype(np.int32)[session]
    del opens
    stamps = begin[session]
    del session
    stamps += in_session * STEP_S
    del in_session
    stamps += rng.random(n, dtype=np.float32) * np.float32(STEP_S / 2)
    ts = stamps.astype(np.int64)  # floor: the stamps are positive
    del stamps
    ts += T0
    # a session may begin before the last one ended: keep each user's times non-decreasing
    shift = owners.astype(np.int64)
    shift <<= 34
    ts += shift
    np.maximum.accumulate(ts, out=ts)
    ts -= shift
    return ts


def earlier_raters(users: Int32Array, items: Int32Array, n_items: int) -> Int32Array:
    """For each event (in stream order), the number of distinct users other than its own who
    acted on its item before it."""
    n = users.size
    if n == 0:
        return np.zeros(0, dtype=np.int32)
    keys = users.astype(np.int64) * n_items + items
    _, first_at = np.unique(keys, return_index=True)  # each pair's first event
    del keys
    first = np.zeros(n, dtype=np.int32)
    first[first_at] = 1
    del first_at
    order = np.argsort(items, kind="stable")  # by item, in stream order within an item
    by_item = first[order]
    del first
    before = np.cumsum(by_item, dtype=np.int32)
    before -= by_item  # first events before this one, over all items
    sorted_items = items[order]
    starts = np.flatnonzero(np.r_[True, sorted_items[1:] != sorted_items[:-1]])
    del sorted_items
    before -= np.repeat(before[starts], np.diff(np.r_[starts, n]))
    # distinct earlier raters of the item, less the event's own user when it rated it before
    before -= 1 - by_item
    out = np.empty(n, dtype=np.int32)
    out[order] = before
    return out


def generate(
    users: int,
    items: int,
    *,
    implicit: bool = False,
    mean: float | None = None,
    zipf: float = 1.0,
    repurchase: float = 0.3,
    seed: int = 0,
) -> Stream:
    """A seeded shop-like stream (see the module docstring); the same arguments give the same
    stream."""
    if users < 1 or items < 1:
        raise ValueError("users and items must be at least 1")
    mode = "implicit" if implicit else "explicit"
    mean = DEFAULT_MEAN[mode] if mean is None else mean
    rng = np.random.default_rng(seed)
    draw = zipf_sampler(rng, items, zipf)
    if implicit:
        counts = user_counts(rng, users, mean, cap=max(1, int(mean * 100)))
        start = np.cumsum(counts) - counts
        owners = np.repeat(np.arange(users, dtype=np.int32), counts)
        picks = repurchases(rng, owners, start, draw(owners.size), repurchase)
        values = np.ones(owners.size, dtype=np.float32)
    else:
        counts = user_counts(rng, users, mean, cap=max(1, items // 4))
        start = np.cumsum(counts) - counts
        owners, picks = distinct_items(rng, counts, items, draw)
        user_bias = rng.normal(0.0, 0.5, users)
        item_bias = rng.normal(0.0, 0.5, items)
        noise = rng.normal(0.0, 0.9, owners.size)
        rated = np.rint(3.6 + user_bias[owners] + item_bias[picks] + noise)
        values = np.clip(rated, 1.0, 5.0).astype(np.float32)
    ts = session_times(rng, owners, start, users, SESSION_MEAN[mode])
    del start, counts
    order = np.argsort(ts, kind="stable")  # ties: by user, then in the user's order
    # into time order one array at a time, compact (the stream lives beside the engine)
    ts = ts[order]
    owners = owners[order]
    picks = picks[order]
    values = values[order]
    del order
    return Stream(
        users=owners,
        items=picks,
        values=values,
        ts=ts,
        earlier=earlier_raters(owners, picks, items),
        n_users=users,
        n_items=items,
        implicit=implicit,
    )


# ---------------------------------------------------------------------------------- one size
def _proc_status(pid: int | str = "self") -> dict[str, int]:
    """The memory lines of /proc/<pid>/status (VmRSS, VmHWM...), bytes; empty when gone."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Vm") and line.endswith(" kB"):
                name, value = line.split(":", 1)
                out[name] = int(value.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return out


def rss_now() -> int:
    """The process's current resident set (VmRSS), bytes."""
    return _proc_status().get("VmRSS", 0)


def peak_rss() -> int:
    """The process's peak resident set so far, bytes: ru_maxrss (KiB on Linux), or VmHWM / VmRSS
    if higher (the kernel's counters are synced lazily, they can differ by a few pages)."""
    status = _proc_status()
    maxrss = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    return max(maxrss, status.get("VmHWM", 0), status.get("VmRSS", 0))


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def progress(**figures: Any) -> None:
    """A progress line on stderr (the parent keeps the last one of a child that fails)."""
    print(f"{PROGRESS}{json.dumps(figures)}", file=sys.stderr, flush=True)


def footprint_of(model: object) -> dict[str, int] | None:
    """``model.footprint()`` when the engine has it (the compact engine), else None."""
    method = getattr(model, "footprint", None)
    if not callable(method):
        return None
    return {str(key): int(value) for key, value in dict(method()).items()}


def footprint_figures(fp: dict[str, int] | None, n_ratings: int) -> dict[str, Any]:
    """The row's footprint figures: the engine's keys, bytes per rating (ratings_bytes /
    n_ratings) and per pair cell (pair_bytes / pairs, when it holds pairs); None when absent."""

    def get(key: str) -> int | None:
        return None if fp is None else fp.get(key)

    ratings_bytes, pair_bytes, pairs = get("ratings_bytes"), get("pair_bytes"), get("pairs")
    return {
        "footprint": fp,
        "footprint_ratings_bytes": ratings_bytes,
        "footprint_pair_bytes": pair_bytes,
        "footprint_pairs": pairs,
        "footprint_total_bytes": get("total_bytes"),
        "bytes_per_rating": (
            ratings_bytes / n_ratings if ratings_bytes is not None and n_ratings else None
        ),
        "bytes_per_pair": pair_bytes / pairs if pair_bytes is not None and pairs else None,
    }


def measure(
    mode: str,
    users: int,
    items: int,
    *,
    mean: float | None,
    zipf: float,
    repurchase: float,
    seed: int,
    batch: int = BATCH,
    list_users: int = LIST_USERS,
    tmpdir: str | None = None,
) -> dict[str, Any]:
    """Everything about one size, in this process (the child's work)."""
    implicit = mode == "implicit"
    row: dict[str, Any] = {
        "mode": mode,
        "users": users,
        "items": items,
        "seed": seed,
        "zipf": zipf,
        "mean_target": DEFAULT_MEAN[mode] if mean is None else mean,
        "status": "ok",
        "rss_start_bytes": rss_now(),
    }
    start = time.perf_counter()
    stream = generate(
        users, items, implicit=implicit, mean=mean, zipf=zipf, repurchase=repurchase, seed=seed
    )
    row["generate_s"] = time.perf_counter() - start
    n = len(stream)
    row["events"] = n
    row["pair_updates"] = stream.pair_updates
    row["items_seen"] = int(np.unique(stream.items).size)
    row["rss_after_generate_bytes"] = rss_now()
    row["peak_rss_after_generate_bytes"] = peak_rss()

    model = UserKNN(feedback="implicit") if implicit else UserKNN()
    gc.collect()
    row["rss_before_apply_bytes"] = rss_now()
    batch_s: list[float] = []
    batch_cpu_s: list[float] = []  # the process's CPU time per batch: a stall of the engine's
    # own (arrays that grow) shows in both, a preemption by other jobs only in the wall time
    users_after: list[int] = []  # users held after each batch (to place the slowest ones)
    build_s = 0.0
    step = max(batch, -(-n // 10 // batch) * batch)  # a progress line every ~10 % of the stream
    for lo in range(0, n, batch):
        if lo and lo % step == 0:
            progress(events=lo, of=n, apply_s=sum(batch_s), rss_bytes=rss_now())
        t0 = time.perf_counter()
        events = stream.events(lo, min(n, lo + batch))
        t1 = time.perf_counter()
        gc.disable()  # the collector's pauses are not the engine's (as in engine.py)
        c1 = time.process_time()
        model.apply_many(events)
        batch_cpu_s.append(time.process_time() - c1)
        t2 = time.perf_counter()
        gc.enable()
        build_s += t1 - t0
        batch_s.append(t2 - t1)
        users_after.append(model.n_users)
        del events
    apply_s = sum(batch_s)
    median = statistics.median(batch_s)
    row.update(
        {
            "build_events_s": build_s,
            "apply_s": apply_s,
            "apply_events_per_s": n / apply_s,
            "batches": len(batch_s),
            "batch_p50_s": median,
            "batch_p99_s": pct(batch_s, 99),
            "batch_max_s": max(batch_s),
            "batch_max_over_median": max(batch_s) / median,
            "batches_over_10x_median": sum(1 for s in batch_s if s > 10 * median),
            "batch_cpu_p50_s": statistics.median(batch_cpu_s),
            "batch_cpu_max_over_median": max(batch_cpu_s) / statistics.median(batch_cpu_s),
            "batches_over_10x_median_cpu": sum(
                1 for s in batch_cpu_s if s > 10 * statistics.median(batch_cpu_s)
            ),
            # the five slowest batches by CPU time: (batch index, wall s, CPU s, users after)
            "slowest_batches": [
                [k, batch_s[k], batch_cpu_s[k], users_after[k]]
                for k in sorted(range(len(batch_cpu_s)), key=batch_cpu_s.__getitem__)[-5:][::-1]
            ],
            "pair_updates_per_s": stream.pair_updates / apply_s,
            # the same per second of the process's CPU time (the figure that holds on a
            # shared machine, where wall time includes other jobs' turns)
            "apply_cpu_s": sum(batch_cpu_s),
            "pair_updates_per_cpu_s": stream.pair_updates / sum(batch_cpu_s),
            "n_users": model.n_users,
            "n_ratings": model.n_ratings,
        }
    )
    gc.collect()
    row["rss_after_apply_bytes"] = rss_now()
    row["peak_rss_after_apply_bytes"] = peak_rss()
    row["engine_rss_bytes"] = row["rss_after_apply_bytes"] - row["rss_before_apply_bytes"]

    row.update(footprint_figures(footprint_of(model), model.n_ratings))

    # list latency over random users of the stream (every generated user has an event)
    rng = np.random.default_rng(seed + 1)
    sample = [f"u{k}" for k in rng.choice(users, min(list_users, users), replace=False).tolist()]
    list_s: list[float] = []
    lists = {}
    fallbacks = 0
    for user in sample:
        t0 = time.perf_counter()
        recs = model.recommendations(user, 10)
        list_s.append(time.perf_counter() - t0)
        lists[user] = recs.items
        fallbacks += recs.fallback is not None
    row["list_users"] = len(sample)
    row["list_p50_s"] = pct(list_s, 50)
    row["list_p99_s"] = pct(list_s, 99)
    row["lists_fallback"] = fallbacks

    with tempfile.TemporaryDirectory(prefix="stream-cf-scale-", dir=tmpdir) as tmp:
        path = Path(tmp) / "state.bin"
        t0 = time.perf_counter()
        model.save(path)
        row["save_s"] = time.perf_counter() - t0
        row["checkpoint_bytes"] = path.stat().st_size
        del model  # a restart: the saved state in place of the live one
        gc.collect()
        t0 = time.perf_counter()
        restored = UserKNN.load(path)
        row["load_s"] = time.perf_counter() - t0
        first_list = restored.recommendations(sample[0], 10)
        row["restart_s"] = time.perf_counter() - t0
    row["restored_equal"] = first_list.items == lists[sample[0]] and all(
        restored.recommendations(user, 10).items == lists[user] for user in sample[1:5]
    )
    del restored
    row["peak_rss_bytes"] = peak_rss()
    return row


# ---------------------------------------------------------------------------------- the parent
def items_for(mode: str, users: int) -> int:
    """The curve's item count for a size: users x 75/16 (explicit), min(100k, users x 5)."""
    if mode == "explicit":
        return max(1, round(users * 75 / 16))
    return max(1, min(100_000, users * 5))


def child_command(mode: str, users: int, items: int, args: argparse.Namespace) -> list[str]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--one",
        "--mode",
        mode,
        "--users",
        str(users),
        "--items",
        str(items),
        "--zipf",
        repr(args.zipf),
        "--repurchase",
        repr(args.repurchase),
        "--seed",
        str(args.seed),
        "--batch",
        str(args.batch),
    ]
    if args.mean is not None:
        cmd += ["--mean", repr(args.mean)]
    if args.tmpdir is not None:
        cmd += ["--tmpdir", args.tmpdir]
    return cmd


def run_size(
    mode: str,
    users: int,
    items: int,
    args: argparse.Namespace,
    *,
    timeout: float,
    mem_limit: int | None,
) -> dict[str, Any]:
    """Run one size in a child process; its JSON row, or a row saying how it failed."""
    cmd = child_command(mode, users, items, args)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT)
        status = None
        seen = 0
        while proc.poll() is None:
            seen = max(seen, _proc_status(proc.pid).get("VmRSS", 0))
            if time.monotonic() - start > timeout:
                status = "timeout"
            elif mem_limit is not None and seen > mem_limit:
                status = "memory_limit"
            if status is not None:
                proc.kill()
                proc.wait()
                break
            time.sleep(0.1)
        seconds = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    code = proc.returncode
    lines = [line for line in stdout.splitlines() if line.strip()]
    if status is None and code == 0 and lines:
        try:
            row: dict[str, Any] = json.loads(lines[-1])
        except json.JSONDecodeError:
            status = "error"
        else:
            row["child_s"] = seconds
            return row
    if status is None:
        if code is not None and code < 0:
            status = f"killed ({signal.Signals(-code).name})"
        else:
            status = "error"
    lines = [line for line in stderr.splitlines() if line.strip()]
    last = [line for line in lines if line.startswith(PROGRESS)]
    said = [line for line in lines if not line.startswith((PROGRESS, " "))]
    return {
        "mode": mode,
        "users": users,
        "items": items,
        "seed": args.seed,
        "status": status,
        "progress": json.loads(last[-1][len(PROGRESS) :]) if last else None,
        "returncode": code,
        "child_s": seconds,
        "max_rss_seen_bytes": seen,
        "error": said[-1][:200] if said else None,  # e.g. "MemoryError: Unable to allocate..."
        "stderr_tail": lines[-5:],
    }


def fit_slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope of log(y) against log(x) (None with fewer than 2 sizes)."""
    if len(set(xs)) < 2:
        return None
    slope, _ = np.polyfit(np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float)), 1)
    return float(slope)


def fits(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """For each fitted figure: the exponent a of ``figure ∝ users^a`` over the sizes that ran."""
    out: dict[str, dict[str, Any]] = {}
    for key in FITTED:
        pts = [
            (float(r["users"]), float(r[key]))
            for r in rows
            if r.get("status") == "ok"
            and isinstance(r.get(key), int | float)
            and math.isfinite(r[key])
            and r[key] > 0
        ]
        out[key] = {
            "slope": fit_slope([p[0] for p in pts], [p[1] for p in pts]),
            "sizes": len(pts),
        }
    return out


def commit_info() -> dict[str, Any]:
    def git(*cmd: str) -> str:
        try:
            done = subprocess.run(
                ["git", *cmd], cwd=ROOT, capture_output=True, text=True, check=True
            )
        except (OSError, subprocess.CalledProcessError):
            return ""
        return done.stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD") or None,
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def machine_info() -> dict[str, Any]:
    info = dict(machine())
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(("MemTotal:", "MemAvailable:")):
                name, value = line.split(":", 1)
                info[f"{name.lower()}_bytes"] = int(value.split()[0]) * 1024
    except OSError:
        pass
    info["loadavg"] = list(os.getloadavg())
    return info


def _num(value: Any, scale: float = 1.0, digits: int = 0) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    return f"{value / scale:,.{digits}f}"


TABLE = (  # (header, key, scale, digits)
    ("users", "users", 1, 0),
    ("items", "items", 1, 0),
    ("events", "events", 1, 0),
    ("apply ev/s", "apply_events_per_s", 1, 0),
    ("pair upd/s", "pair_updates_per_s", 1, 0),
    ("batch p50 ms", "batch_p50_s", 1e-3, 2),
    ("p99 ms", "batch_p99_s", 1e-3, 1),
    ("max ms", "batch_max_s", 1e-3, 1),
    ("max/med", "batch_max_over_median", 1, 1),
    ("list p50 ms", "list_p50_s", 1e-3, 2),
    ("list p99 ms", "list_p99_s", 1e-3, 2),
    ("peak RSS MB", "peak_rss_bytes", 1e6, 1),
    ("engine MB", "engine_rss_bytes", 1e6, 1),
    ("ckpt MB", "checkpoint_bytes", 1e6, 1),
    ("save s", "save_s", 1, 2),
    ("restart s", "restart_s", 1, 2),
    ("B/rating", "bytes_per_rating", 1, 1),
    ("B/pair", "bytes_per_pair", 1, 1),
)


def table(rows: list[dict[str, Any]]) -> str:
    header = [h for h, *_ in TABLE] + ["status"]
    body = [
        [_num(r.get(key), scale, digits) for _, key, scale, digits in TABLE] + [r["status"]]
        for r in rows
    ]
    widths = [max(len(line[c]) for line in [header, *body]) for c in range(len(header))]
    return "\n".join(
        "  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True))
        for line in [header, *body]
    )


def fits_table(fitted: dict[str, dict[str, Any]]) -> str:
    lines = ["figure                  grows as users^a  (sizes)"]
    for key, fit in fitted.items():
        slope = fit["slope"]
        shown = "-" if slope is None else f"{slope:.2f}"
        lines.append(f"{key:<24}{shown:>17}  ({fit['sizes']})")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: str, title: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    ok = [r for r in rows if r.get("status") == "ok"]
    figures = (
        ("peak_rss_bytes", "peak RSS (bytes)"),
        ("apply_s", "apply seconds"),
        ("checkpoint_bytes", "checkpoint (bytes)"),
    )
    fitted = fits(rows)
    fig, axes = plt.subplots(1, len(figures), figsize=(13, 4))
    for ax, (key, label) in zip(axes, figures, strict=True):
        pts = [(r["users"], r[key]) for r in ok if isinstance(r.get(key), int | float)]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-")
        slope = fitted[key]["slope"]
        if slope is not None:
            ax.set_title(f"grows as users^{slope:.2f}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("users")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def curve(args: argparse.Namespace) -> int:
    mode = args.curve
    sizes = (
        [int(s) for s in args.sizes.split(",") if s.strip()]
        if args.sizes
        else list(EXPLICIT_SIZES if mode == "explicit" else IMPLICIT_SIZES)
    )
    if args.max_users is not None:
        sizes = [s for s in sizes if s <= args.max_users]
    mem_limit = None
    if args.mem_limit_gib is not None:
        mem_limit = int(args.mem_limit_gib * 2**30) if args.mem_limit_gib > 0 else None
    else:
        avail = machine_info().get("memavailable_bytes")
        mem_limit = int(avail * 0.85) if avail else None
    report = sys.stderr if args.json else sys.stdout
    started = datetime.now(UTC).isoformat(timespec="seconds")
    info = machine_info()
    rows: list[dict[str, Any]] = []
    stopped = False
    for users in sizes:
        items = items_for(mode, users)
        if stopped:
            rows.append({"mode": mode, "users": users, "items": items, "status": "skipped"})
            continue
        print(f"{mode}: {users:,} users x {items:,} items ...", file=sys.stderr, flush=True)
        row = run_size(mode, users, items, args, timeout=args.timeout, mem_limit=mem_limit)
        rows.append(row)
        if row["status"] == "ok":
            print(
                f"  {row['events']:,} events, {row['apply_events_per_s']:,.0f} ev/s, peak RSS "
                f"{row['peak_rss_bytes'] / 1e6:,.1f} MB, {row['child_s']:.1f} s",
                file=sys.stderr,
                flush=True,
            )
        else:
            print(
                f"  {row['status']} after {row['child_s']:.1f} s (last progress: "
                f"{row['progress']}; stderr: {row['stderr_tail']})",
                file=sys.stderr,
                flush=True,
            )
            stopped = not args.keep_going
    fitted = fits(rows)
    print(table(rows), file=report)
    print(file=report)
    print(fits_table(fitted), file=report)
    if args.plot:
        plot(rows, args.plot, f"stream_cf scale: {mode} (seed {args.seed})")
    if args.json:
        result = {
            **info,
            **commit_info(),
            "started": started,
            "command": shlex.join(["python", "benchmarks/scale.py", *sys.argv[1:]]),
            "curve": mode,
            "batch": args.batch,
            "mem_limit_bytes": mem_limit,
            "timeout_s": args.timeout,
            "rows": rows,
            "fits": fitted,
        }
        print(json.dumps(result))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--curve", choices=("explicit", "implicit"), default="explicit")
    p.add_argument("--sizes", help="users per size, comma-separated (default: the curve's)")
    p.add_argument("--max-users", type=int, help="leave out sizes above this")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per size (child)")
    p.add_argument(
        "--mem-limit-gib",
        type=float,
        help="kill a child whose RSS goes over this (default 85%% of MemAvailable; 0: none)",
    )
    p.add_argument("--keep-going", action="store_true", help="run larger sizes after a failure")
    p.add_argument("--json", action="store_true", help="print one JSON object last")
    p.add_argument("--plot", help="write a log-log PNG of peak RSS, apply s, checkpoint bytes")
    p.add_argument("--zipf", type=float, default=1.0, help="Zipf exponent of item popularity")
    p.add_argument("--mean", type=float, help="mean events per user (60 explicit, 10 implicit)")
    p.add_argument("--repurchase", type=float, default=0.3, help="implicit re-purchase rate")
    p.add_argument("--batch", type=int, default=BATCH, help="events per apply_many")
    p.add_argument("--tmpdir", help="where the checkpoint is written (default: the system's)")
    # one size in this process (what the parent runs in each child)
    p.add_argument("--one", action="store_true", help="measure one size, print one JSON line")
    p.add_argument("--mode", choices=("explicit", "implicit"), default="explicit")
    p.add_argument("--users", type=int, default=1_000)
    p.add_argument("--items", type=int, help="default: the curve's for --users")
    return p


def main(argv: list[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    if args.batch < 1 or args.users < 1 or (args.items is not None and args.items < 1):
        cli.error("--batch, --users and --items must be at least 1")
    if args.one:
        items = args.items if args.items is not None else items_for(args.mode, args.users)
        row = measure(
            args.mode,
            args.users,
            items,
            mean=args.mean,
            zipf=args.zipf,
            repurchase=args.repurchase,
            seed=args.seed,
            batch=args.batch,
            tmpdir=args.tmpdir,
        )
        print(json.dumps(row))
        return 0
    return curve(args)


if __name__ == "__main__":
    sys.exit(main())
