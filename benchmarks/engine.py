"""Benchmark of the UserKNN engine on MovieLens 100K (and Surprise's full refit for scale).

    python benchmarks/engine.py [--json] [--users N] [--skip-surprise]

Measures, on the 100,000 ML-100K ratings in timestamp order: apply_many in batches of 1,000
(events/s), apply one event at a time (events/s, p50/p99 latency), recommend(n=10) latency on the
final state, recommend_many on batches of 100 users (users/s, each batch after 1,000 re-ratings),
a refresh of every user's recommendations, the state's memory and the peak RSS; and,
in the same process, a full Surprise ``KNNWithMeans`` (pearson, user-based) fit of the same data,
which is what a non-incremental system would redo per update. With ``--json`` the last line is
one JSON object with every figure.
"""

from __future__ import annotations

import os

# One BLAS thread: on a shared 2-core machine OpenBLAS' thread pool makes the engine's small
# matrix products up to 100x slower (it spins against the other processes). Set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import gc
import io
import json
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from stream_cf.engine import UserKNN
from stream_cf.events import RatingEvent

BATCH = 1_000


Row = tuple[int, int, str, str, float]  # (timestamp, line number, user, item, rating)


class Rows:
    """The ratings as numpy columns (timestamp, line number, user and item codes, rating) and
    the distinct id strings once: ~3 MB for ML-100K, where a list of 100,000 Python tuples
    took ~37 MB of the process's peak RSS (none of it the engine's). Indexing, slicing and
    iterating give :data:`Row` tuples, built when asked for."""

    def __init__(
        self,
        *,
        stamps: npt.NDArray[np.int64],
        lines: npt.NDArray[np.int64],
        users: npt.NDArray[np.int32],
        items: npt.NDArray[np.int32],
        ratings: npt.NDArray[np.float64],
        ids: tuple[list[str], list[str]],
    ) -> None:
        self.stamps, self.lines, self.users, self.items = stamps, lines, users, items
        self.ratings = ratings
        self.user_ids, self.item_ids = ids

    def __len__(self) -> int:
        return int(self.stamps.size)

    def _rows(self, lo: int, hi: int) -> list[Row]:
        user_ids, item_ids = self.user_ids, self.item_ids
        return [
            (stamp, line, user_ids[u], item_ids[i], rating)
            for stamp, line, u, i, rating in zip(
                self.stamps[lo:hi].tolist(),
                self.lines[lo:hi].tolist(),
                self.users[lo:hi].tolist(),
                self.items[lo:hi].tolist(),
                self.ratings[lo:hi].tolist(),
                strict=True,
            )
        ]

    @overload
    def __getitem__(self, index: int) -> Row: ...
    @overload
    def __getitem__(self, index: slice) -> list[Row]: ...
    def __getitem__(self, index: int | slice) -> Row | list[Row]:
        if isinstance(index, slice):
            lo, hi, step = index.indices(len(self))
            if step != 1:
                raise ValueError("a slice of rows has step 1")
            return self._rows(lo, hi)
        at = range(len(self))[index]
        return self._rows(at, at + 1)[0]

    def __iter__(self) -> Iterator[Row]:
        for lo in range(0, len(self), 4096):
            yield from self._rows(lo, lo + 4096)


def load_rows() -> Rows:
    """ML-100K as compact rows (:class:`Rows`) in the order of
    ``stream_cf.datasets.dataset_events("ml-100k")`` (timestamp, ties in file order). Events are
    built from them batch by batch, outside the timers, so that 100,000 pydantic objects do not
    sit in memory (they would be ~150 MB of the process's peak RSS, none of it the engine's)."""
    try:
        from stream_cf.datasets import dataset_file  # noqa: PLC0415

        path = dataset_file("ml-100k", "ml-100k.inter")
    except ImportError:  # pragma: no cover - the datasets module is written by another helper
        import importlib.resources  # noqa: PLC0415

        path = Path(str(importlib.resources.files("recbole"))) / (
            "dataset_example/ml-100k/ml-100k.inter"
        )
    codes: tuple[dict[str, int], dict[str, int]] = ({}, {})
    stamps: list[int] = []
    users: list[int] = []
    items: list[int] = []
    ratings: list[float] = []
    with path.open(encoding="utf-8") as fh:
        next(fh)  # header: user_id item_id rating timestamp
        for line in fh:
            user, item, rating, ts = line.rstrip("\n").split("\t")
            stamps.append(int(float(ts)))
            users.append(codes[0].setdefault(user, len(codes[0])))
            items.append(codes[1].setdefault(item, len(codes[1])))
            ratings.append(float(rating))
    n = len(stamps)
    lines = np.arange(2, n + 2, dtype=np.int64)  # the file's line numbers (header: line 1)
    stamp = np.array(stamps, dtype=np.int64)
    order = np.lexsort((lines, stamp))
    del stamps
    return Rows(
        stamps=stamp[order],
        lines=lines[order],
        users=np.array(users, dtype=np.int32)[order],
        items=np.array(items, dtype=np.int32)[order],
        ratings=np.array(ratings, dtype=np.float64)[order],
        ids=(list(codes[0]), list(codes[1])),
    )


def to_event(row: Row) -> RatingEvent:
    stamp, line_no, user, item, rating = row
    return RatingEvent(
        user_id=user, item_id=item, rating=rating, ts=stamp, event_id=f"ml-100k:{line_no}"
    )


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def state_bytes(model: UserKNN) -> int:
    """The ratings' arrays and the pair sums in use (users² x 12 B: 24 B per unordered pair; the
    tiles' untouched rest takes no memory)."""
    sizes = model.footprint()
    return int(sizes["ratings_bytes"] + sizes["pairs"] * 12)


def surprise_fit_seconds(rows: Rows) -> float | None:
    try:
        from surprise import Dataset, KNNWithMeans, Reader  # noqa: PLC0415
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ratings.tsv"
        with path.open("w", encoding="utf-8") as fh:
            for _stamp, _line, user, item, rating in rows:
                fh.write(f"{user}\t{item}\t{rating}\n")
        data = Dataset.load_from_file(
            str(path), reader=Reader(line_format="user item rating", sep="\t", rating_scale=(1, 5))
        )
        trainset = data.build_full_trainset()
        algo = KNNWithMeans(
            k=40, sim_options={"name": "pearson", "user_based": True}, verbose=False
        )
        start = time.perf_counter()
        algo.fit(trainset)
        return time.perf_counter() - start


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def run(n_recommend_users: int, skip_surprise: bool) -> dict[str, Any]:
    rows = load_rows()
    out: dict[str, Any] = {"events": len(rows), **machine()}
    out["rss_after_loading_rows_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # apply one by one, with the latency of each event (this model is dropped afterwards)
    single = UserKNN()
    latencies: list[float] = []
    gc.disable()
    for row in rows:
        ev = to_event(row)
        t0 = time.perf_counter_ns()
        single.apply(ev)
        latencies.append((time.perf_counter_ns() - t0) / 1e3)
    gc.enable()
    out["apply_events_per_s"] = 1e6 / statistics.fmean(latencies)
    out["apply_p50_us"] = percentile(latencies, 50)
    out["apply_p99_us"] = percentile(latencies, 99)
    probe = single.users()[:50]
    fingerprint = {user: single.recommend(user) for user in probe}
    del single
    gc.collect()

    # apply_many, batches of 1,000
    model = UserKNN()
    batch_ms: list[float] = []
    for lo in range(0, len(rows), BATCH):
        batch = [to_event(row) for row in rows[lo : lo + BATCH]]
        start = time.perf_counter()
        model.apply_many(batch)
        batch_ms.append((time.perf_counter() - start) * 1e3)
    elapsed = sum(batch_ms) / 1e3
    out["apply_many_events_per_s"] = len(rows) / elapsed
    out["apply_many_batch_ms"] = elapsed / (len(rows) / BATCH) * 1e3
    # the median batch leaves out the few batches that grow the arrays (new users and items
    # past a capacity: full copies of the grid and pair sums, ~10-80 ms each)
    out["apply_many_batch_p50_ms"] = percentile(batch_ms, 50)
    out["states_equal"] = all(model.recommend(u) == fingerprint[u] for u in probe)

    # recommend(n=10) latency on the final state
    users = model.users()
    rng = np.random.default_rng(0)
    sample = [
        users[i] for i in rng.choice(len(users), min(n_recommend_users, len(users)), replace=False)
    ]
    rec_ms: list[float] = []
    rec_cpu_ms: list[float] = []  # the process's CPU time per list: on a loaded machine the wall
    # time also counts the waits for a core, the CPU time only the list's own work
    for user in sample:
        t0 = time.perf_counter_ns()
        c0 = time.process_time_ns()
        model.recommend(user, 10)
        rec_cpu_ms.append((time.process_time_ns() - c0) / 1e6)
        rec_ms.append((time.perf_counter_ns() - t0) / 1e6)
    out["recommend_p50_ms"] = percentile(rec_ms, 50)
    out["recommend_p99_ms"] = percentile(rec_ms, 99)
    out["recommend_cpu_p50_ms"] = percentile(rec_cpu_ms, 50)
    predict_us: list[float] = []
    for user in sample[:100]:
        t0 = time.perf_counter_ns()
        model.predict(user, "50")
        predict_us.append((time.perf_counter_ns() - t0) / 1e3)
    out["predict_p50_us"] = percentile(predict_us, 50)

    start = time.perf_counter()
    model.recommend_many(users, 10)
    out["refresh_all_users_s"] = time.perf_counter() - start

    # memory: the state's arrays, the saved file, and the process peak
    out["peak_rss_before_save_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["state_mb"] = state_bytes(model) / 2**20
    buf = io.BytesIO()
    start = time.perf_counter()
    model.save(buf)
    out["save_s"] = time.perf_counter() - start
    out["saved_mb"] = len(buf.getvalue()) / 2**20
    out["users"] = model.n_users
    out["items"] = model.n_items
    del model  # a restart: the saved state is loaded in place of the live one
    gc.collect()
    buf.seek(0)
    start = time.perf_counter()
    restored = UserKNN.load(buf)
    out["load_s"] = time.perf_counter() - start
    out["restored_equal"] = all(restored.recommend(u) == fingerprint[u] for u in probe)

    # recommend_many on batches of 100 users (the processor's refresh), each after a batch of
    # 1,000 re-ratings so that the engine's per-user arrays are refreshed inside the timed call
    # (on the reloaded state, after the checks above)
    picked = rng.choice(len(users), min(500, len(users)), replace=False)
    many_sample = [users[i] for i in picked]
    rerate = [(0, 0, row[2], row[3], 6.0 - row[4]) for row in rows[-BATCH:]]
    batch_s: list[float] = []
    for lo in range(0, len(many_sample), 100):
        restored.apply_many([to_event(row) for row in rerate])
        start = time.perf_counter()
        restored.recommend_many(many_sample[lo : lo + 100], 10)
        batch_s.append(time.perf_counter() - start)
        rerate = [(s, n, u, i, 6.0 - r) for s, n, u, i, r in rerate]  # back and forth
    out["recommend_many_users_per_s"] = 100 / statistics.median(batch_s)
    out["recommend_many_ms_per_user"] = statistics.median(batch_s) / 100 * 1e3

    del buf, restored
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    if not skip_surprise:
        fit = surprise_fit_seconds(rows)
        if fit is not None:
            out["surprise_fit_s"] = fit
            out["speedup_vs_refit"] = fit / (out["apply_p50_us"] / 1e6)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--users", type=int, default=300, help="users sampled for recommend")
    parser.add_argument("--skip-surprise", action="store_true", help="skip the Surprise fit")
    args = parser.parse_args(argv)
    result = run(args.users, args.skip_surprise)
    if args.json:
        print(json.dumps(result))
    else:
        width = max(len(key) for key in result)
        for key, value in result.items():
            shown = f"{value:,.3f}" if isinstance(value, float) else str(value)
            print(f"{key:<{width}}  {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
