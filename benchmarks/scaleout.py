"""Scale-out (issue 12): one stream through N = 1, 2, 4 ``stream-cf run --scale-out`` instances.

    python benchmarks/scaleout.py [--instances 1 2 4] [--users 4000 | --dataset ml-100k]
                                  [--seed 0] [--session-timeout 10] [--latency-rate 200]
                                  [--latency-seconds 15] [--takeover-rate 50] [--json]

Broker: ``KAFKA_BOOTSTRAP_SERVERS`` if set, else a local Apache Kafka broker (stream_cf.broker).
Stream: benchmarks/scale.py's explicit shop-like generator (``--users`` users, items = users x
75 / 16, ~60 integer ratings per user, seeded), or MovieLens 100K (``--dataset ml-100k``).
``--log-dir`` keeps the instances' logs.

For each N, on fresh topics (a 4-partition input, keyed by user id) and a fresh consumer group:

1. **Initial load**: the whole stream is produced, then N instances start at once, each a
   ``python -m stream_cf run --scale-out`` subprocess with its own state directory and
   ``--metrics-port 0``. Each applies the whole input before joining the group (the log line
   "caught up to ... N events in S s": the per-instance apply rate, and the process's CPU
   seconds when that line appears), then computes the lists of the users it owns. A consumer
   on the output topic (in this process) records every list; the initial load ends when the
   output holds a list of every user. Lists/s = lists on the output by then / wall time since the
   instances were started (start-up and catch-up included); ``list phase`` lists/s counts from the
   first list published (the catch-ups are over by then, near enough).
2. **Footprint**: each instance's pair-sum bytes (the engine footprint at its last checkpoint,
   ``stream_cf_pair_bytes`` on /metrics) once the lists are out; the ratio of each to
   (N = 1's pair bytes) / N (the issue's target: within 10 %).
3. **Latency**: ``--latency-rate`` new ratings/s for ``--latency-seconds`` (each a random existing
   user rating a random item), keyed by user; an event's latency is from just before its send to
   the output consumer reading the first list of its user computed with it (the list's
   ``input_offsets`` for the event's partition past the event's offset). Events whose user's list
   did not change are published by nobody and have no sample.
4. **Takeover** (N >= 2): while ``--takeover-rate`` ratings/s go to users of instance 0 (the
   victim), it is SIGKILLed; takeover = from the kill to the output consumer reading the first list
   of a victim's user created after the kill (a survivor's), against the target session timeout +
   10 s; ``all`` = until every victim user's list has been published again (takeovers publish
   every gained user's list).
5. The survivors get SIGTERM; their run summaries (``--json``) are kept.

Peak RSS is VmHWM from /proc/<pid>/status before any instance is signalled at the end (the
victim: before its SIGKILL); a survivor's includes the takeover. CPU seconds are utime + stime
of /proc/<pid>/stat. The machine is shared: the load average is recorded per N. With ``--json``
the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from stream_cf.broker import broker_bootstrap
from stream_cf.datasets import dataset_events
from stream_cf.events import Event, RatingEvent, event_to_dict
from stream_cf.processor.ownership import partition_of
from stream_cf.processor.settings import load_settings
from stream_cf.processor.topics import ensure_topics

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale import (  # benchmarks/scale.py
    _proc_status as proc_status,
)
from scale import (
    commit_info,
    generate,
    items_for,
    machine_info,
)

logger = logging.getLogger("benchmarks.scaleout")
PARTITIONS = 4
TICK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------- the stream
def stream_events(args: argparse.Namespace) -> tuple[list[Event], list[str]]:
    """The stream (time order) and its item ids."""
    if args.dataset == "ml-100k":
        events = dataset_events("ml-100k")
    else:
        stream = generate(args.users, items_for("explicit", args.users), seed=args.seed)
        events = stream.events(0, len(stream))
    items = sorted({e.item_id for e in events if isinstance(e, RatingEvent)})
    return events, items


def encode(event: Event) -> tuple[bytes, bytes]:
    return event.user_id.encode("utf-8"), json.dumps(event_to_dict(event)).encode("utf-8")


def produce_all(bootstrap: str, topic: str, events: list[Event]) -> float:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=256 * 1024
    )
    started = time.perf_counter()
    for event in events:
        key, value = encode(event)
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()
    return time.perf_counter() - started


# ---------------------------------------------------------------------------------- the output
@dataclass
class Published:
    """One list read from the output topic."""

    read_at: float  # time.monotonic() in this process
    timestamp_ms: int  # the record's timestamp (the publishing producer's create time)
    user: str
    offsets: dict[int, int]  # the input positions the list was computed at


class OutputWatch:
    """A consumer of every output partition, from the beginning, in a thread."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.records: list[Published] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=20,
            max_poll_records=5_000,
        )
        parts = [TopicPartition(topic, p) for p in sorted(self._partitions(topic))]
        self._consumer.assign(parts)
        self._consumer.seek_to_beginning(*parts)
        self._thread = threading.Thread(target=self._run, name="output-watch", daemon=True)
        self._thread.start()

    def _partitions(self, topic: str) -> set[int]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = self._consumer.partitions_for_topic(topic)
            if found:
                return set(found)
            time.sleep(0.2)
        raise RuntimeError(f"no partitions for {topic}")

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._consumer.poll(timeout_ms=100)
            now = time.monotonic()
            got: list[Published] = []
            for records in batch.values():
                for record in records:
                    if record.value is None:
                        continue
                    body = json.loads(record.value)
                    offsets = {int(p): int(o) for p, o in body["input_offsets"].items()}
                    got.append(Published(now, record.timestamp, body["user_id"], offsets))
            if got:
                with self.lock:
                    self.records.extend(got)

    def snapshot(self) -> list[Published]:
        with self.lock:
            return list(self.records)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._consumer.close()


# ---------------------------------------------------------------------------------- instances
def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


@dataclass
class Instance:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    started: float
    caught_up: dict[str, float] | None = None  # events, seconds, cpu_s, at (monotonic)
    metrics_url: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def scan(self) -> None:
        """Pick up the catch-up line and the metrics address from the log."""
        text = self.text()
        if self.metrics_url is None:
            found = re.search(r"metrics on (http://[0-9.:]+/metrics)", text)
            if found:
                self.metrics_url = found.group(1)
        if self.caught_up is None:
            found = re.search(r"caught up to .* (\d+) events in ([0-9.]+)s", text)
            if found:
                self.caught_up = {
                    "events": float(found.group(1)),
                    "seconds": float(found.group(2)),
                    "cpu_s": cpu_seconds(self.pid) or 0.0,
                    "at": time.monotonic(),
                }

    def assignment(self) -> set[int] | None:
        steps = re.findall(r"(?:assigned partitions|partitions) \[([0-9, ]*)\] ?(\w*)", self.text())
        if not steps or steps[-1][1] in ("revoked", "lost"):
            return None
        return {int(p) for p in steps[-1][0].split(",") if p.strip()}

    def metrics(self) -> dict[str, float]:
        if self.metrics_url is None:
            return {}
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            text = response.read().decode("utf-8")
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def memory(self) -> None:
        status = proc_status(self.pid)
        self.figures["peak_rss_bytes"] = status.get("VmHWM")
        self.figures["rss_bytes"] = status.get("VmRSS")
        self.figures["cpu_s"] = cpu_seconds(self.pid)

    def terminate(self) -> dict[str, Any] | None:
        """SIGTERM; the run summary it printed (None if it did not exit cleanly)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        lines = [line for line in self.text().splitlines() if line.startswith("{")]
        if code != 0 or not lines:
            logger.warning("%s exited with %s", self.name, code)
            return None
        summary: dict[str, Any] = json.loads(lines[-1])
        return summary


def start_instance(
    args: argparse.Namespace, bootstrap: str, topics: dict[str, str], group: str, state: Path
) -> Instance:
    name = state.name
    log = state.parent / f"{name}.log"
    if args.log_dir:
        log = Path(args.log_dir) / f"{group}-{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "stream_cf", "--log-level", "INFO", "run",
        "--bootstrap-servers", bootstrap,
        "--input-topic", topics["input"], "--output-topic", topics["output"],
        "--group-id", group, "--state-dir", str(state),
        "--scale-out", "--session-timeout", str(args.session_timeout),
        "--partitions", str(PARTITIONS),
        "--checkpoint-interval", str(args.checkpoint_interval),
        "--metrics-port", "0", "--json",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OPENBLAS_NUM_THREADS": "1"}
    handle = log.open("ab")
    proc = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    return Instance(name, proc, log, time.monotonic())


def wait_for(what: str, check: Any, timeout: float, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# ---------------------------------------------------------------------------------- paced events
class Pacer:
    """Ratings of random users (from ``users()``) at ``rate``/s in a thread; records each send's
    time and its (partition, offset)."""

    def __init__(
        self, bootstrap: str, topic: str, *, users: Any, items: list[str], rate: float, seed: int
    ) -> None:
        self.sent: list[tuple[str, float, Any]] = []  # user, monotonic send time, future
        self._producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=0)
        self._topic, self._users, self._items, self._rate = topic, users, items, rate
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pacer", daemon=True)

    def start(self) -> Pacer:
        self._thread.start()
        return self

    def _run(self) -> None:
        t0 = time.monotonic()
        count = 0
        while not self._stop.is_set():
            delay = t0 + count / self._rate - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
                continue
            user = self._rng.choice(self._users())
            event = RatingEvent(
                user_id=user,
                item_id=self._rng.choice(self._items),
                rating=float(self._rng.randint(1, 5)),
            )
            key, value = encode(event)
            at = time.monotonic()
            future = self._producer.send(self._topic, key=key, value=value)
            self.sent.append((user, at, future))
            count += 1

    def stop(self) -> list[tuple[str, float, int, int]]:
        """Stop; (user, sent at, partition, offset) of every event sent."""
        self._stop.set()
        self._thread.join(timeout=30)
        self._producer.flush()
        out = []
        for user, at, future in self.sent:
            meta = future.get(timeout=30)
            out.append((user, at, meta.partition, meta.offset))
        self._producer.close()
        return out


def latencies(sent: list[tuple[str, float, int, int]], lists: list[Published]) -> list[float]:
    """Per event: the first list of its user computed with it (read time) minus its send time."""
    by_user: dict[str, list[Published]] = {}
    for record in lists:
        by_user.setdefault(record.user, []).append(record)
    out: list[float] = []
    for user, at, partition, offset in sent:
        for record in by_user.get(user, ()):
            if record.offsets.get(partition, 0) > offset:
                out.append(record.read_at - at)
                break
    return out


# ---------------------------------------------------------------------------------- one N
def run_n(
    args: argparse.Namespace, bootstrap: str, count: int, events: list[Event], items: list[str]
) -> dict[str, Any]:
    base = f"scaleout-{count}-{uuid.uuid4().hex[:8]}"
    topics = {"input": f"{base}.in", "output": f"{base}.out"}
    group = f"{base}-group"
    users = sorted({e.user_id for e in events})
    row: dict[str, Any] = {"instances": count, "loadavg_start": list(os.getloadavg())}
    settings = load_settings(
        bootstrap_servers=bootstrap,
        input_topic=topics["input"],
        output_topic=topics["output"],
        group_id=group,
        partitions=PARTITIONS,
        state_dir=tempfile.gettempdir(),
    )
    ensure_topics(settings)
    row["produce_s"] = produce_all(bootstrap, topics["input"], events)
    logger.info("N=%d: %d events produced in %.1fs", count, len(events), row["produce_s"])
    watch = OutputWatch(bootstrap, topics["output"])
    instances: list[Instance] = []
    with tempfile.TemporaryDirectory(prefix="scaleout-") as tmp:
        try:
            t0 = time.monotonic()
            instances = [
                start_instance(args, bootstrap, topics, group, Path(tmp) / f"i{k}")
                for k in range(count)
            ]
            everyone = set(users)

            def loaded() -> float | None:
                for inst in instances:
                    inst.scan()
                    if inst.proc.poll() is not None:
                        raise RuntimeError(f"{inst.name} exited: {inst.text()[-2000:]}")
                seen = {r.user for r in watch.snapshot()}
                return time.monotonic() if everyone <= seen else None

            done_at = wait_for("every user's list", loaded, args.timeout)
            load_s = done_at - t0
            initial = [r for r in watch.snapshot() if r.read_at <= done_at]
            first_at = min(r.read_at for r in initial)
            row["load_s"] = load_s
            row["lists_initial"] = len(initial)
            row["lists_per_s"] = len(initial) / load_s
            row["list_phase_s"] = done_at - first_at
            row["list_phase_lists_per_s"] = len(initial) / max(done_at - first_at, 1e-9)
            per: list[dict[str, Any]] = []
            for inst in instances:
                cu = inst.caught_up or {}
                per.append(
                    {
                        "name": inst.name,
                        "catch_up_events": cu.get("events"),
                        "catch_up_s": cu.get("seconds"),
                        "apply_events_per_s": (
                            cu["events"] / cu["seconds"] if cu.get("seconds") else None
                        ),
                        "cpu_s_at_catch_up": cu.get("cpu_s"),
                        "cpu_s_at_load": cpu_seconds(inst.pid),
                    }
                )
            row["per_instance"] = per
            row["loadavg_after_load"] = list(os.getloadavg())
            logger.info(
                "N=%d: every list out after %.1fs (%d lists, %.0f lists/s; list phase %.1fs)",
                count,
                load_s,
                len(initial),
                row["lists_per_s"],
                row["list_phase_s"],
            )

            # footprint: the checkpoint after the last list, on /metrics
            def footprints() -> list[dict[str, float]] | None:
                found = [inst.metrics() for inst in instances]
                settled = all(inst.assignment() is not None for inst in instances)
                quiet = all(m.get("stream_cf_pending_refreshes", 1) == 0 for m in found)
                return found if settled and quiet else None

            wait_for("settled instances", footprints, 120, interval=0.5)
            time.sleep(args.checkpoint_interval + 1.0)
            found = wait_for("settled instances", footprints, 120, interval=0.5)
            for inst, values, entry in zip(instances, found, per, strict=True):
                entry["pair_bytes"] = int(values.get("stream_cf_pair_bytes", 0))
                entry["state_bytes"] = int(values.get("stream_cf_state_bytes", 0))
                entry["partitions"] = sorted(inst.assignment() or [])
                entry["owned_users"] = sum(
                    1 for u in users if partition_of(u, PARTITIONS) in set(entry["partitions"])
                )

            # latency on the caught-up instances
            mark = len(watch.snapshot())
            pacer = Pacer(
                bootstrap,
                topics["input"],
                users=lambda: users,
                items=items,
                rate=args.latency_rate,
                seed=args.seed + count,
            ).start()
            time.sleep(args.latency_seconds)
            sent = pacer.stop()
            time.sleep(5.0)  # the last events' lists
            samples = latencies(sent, watch.snapshot()[mark:])
            row["latency_events"] = len(sent)
            row["latency_samples"] = len(samples)
            row["latency_p50_ms"] = None if not samples else 1e3 * statistics.median(samples)
            row["latency_p99_ms"] = None if not samples else 1e3 * (pct(samples, 0.99) or 0.0)
            row["loadavg_after_latency"] = list(os.getloadavg())
            logger.info(
                "N=%d: latency p50 %s ms p99 %s ms (%d samples of %d events)",
                count,
                row["latency_p50_ms"],
                row["latency_p99_ms"],
                len(samples),
                len(sent),
            )

            if count >= 2:
                row["takeover"] = takeover(
                    args,
                    bootstrap,
                    topics=topics,
                    users=users,
                    items=items,
                    instances=instances,
                    watch=watch,
                )
            # memory of every instance before any is signalled (a leaving instance's users move
            # to the others, who would build their rows)
            for inst in instances:
                if inst.proc.poll() is None:
                    inst.memory()
            summaries = []
            for inst in instances:
                if inst.proc.poll() is None:
                    summaries.append(inst.terminate())
            row["summaries"] = summaries
            for inst, entry in zip(instances, per, strict=True):
                entry.update(inst.figures)
        finally:
            for inst in instances:
                if inst.proc.poll() is None:
                    inst.proc.kill()
                    inst.proc.wait()
            watch.close()
    row["loadavg_end"] = list(os.getloadavg())
    return row


def takeover(
    args: argparse.Namespace,
    bootstrap: str,
    *,
    topics: dict[str, str],
    users: list[str],
    items: list[str],
    instances: list[Instance],
    watch: OutputWatch,
) -> dict[str, Any]:
    """SIGKILL instance 0 while its users get ratings; the time to a survivor's first list of
    one of them, and to all of them."""
    victim = instances[0]
    parts = victim.assignment() or set()
    theirs = [u for u in users if partition_of(u, PARTITIONS) in parts]
    pacer = Pacer(
        bootstrap,
        topics["input"],
        users=lambda: theirs,
        items=items,
        rate=args.takeover_rate,
        seed=args.seed + 99,
    ).start()
    time.sleep(2.0)
    victim.memory()
    killed_ms = time.time() * 1000.0
    killed_at = time.monotonic()
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    theirs_set = set(theirs)
    target = args.session_timeout + 10.0

    def after_kill() -> list[Published]:
        return [r for r in watch.snapshot() if r.user in theirs_set and r.timestamp_ms > killed_ms]

    first = wait_for("a list of a victim's user", after_kill, target + 60.0)
    first_s = min(r.read_at for r in first) - killed_at

    def all_out() -> float | None:
        got = after_kill()
        if {r.user for r in got} >= theirs_set:
            return max(min(r.read_at for r in got if r.user == u) for u in theirs_set)
        return None

    try:
        all_s: float | None = wait_for("every victim user's list", all_out, 120.0) - killed_at
    except RuntimeError:
        all_s = None
    pacer.stop()
    lines = []
    for inst in instances[1:]:
        lines += [
            line.split(": ", 1)[-1]
            for line in inst.text().splitlines()
            if "after the revocation" in line
        ]
    result = {
        "victim_partitions": sorted(parts),
        "victim_users": len(theirs),
        "first_list_s": first_s,
        "all_lists_s": all_s,
        "target_s": target,
        "met": first_s <= target,
        "survivor_log": lines[-2 * (len(instances) - 1) :],
    }
    logger.info("takeover: first list %.1fs, all %s s after the kill", first_s, all_s)
    return result


# ---------------------------------------------------------------------------------- report
def finish(rows: list[dict[str, Any]]) -> None:
    """The ratios against N = 1."""
    one = next((r for r in rows if r["instances"] == 1), None)
    if one is None:
        return
    base_pairs = one["per_instance"][0].get("pair_bytes") or 0
    for row in rows:
        n = row["instances"]
        for entry in row["per_instance"]:
            entry["pair_ratio_to_one_over_n"] = (
                entry.get("pair_bytes", 0) / (base_pairs / n) if base_pairs else None
            )
        row["lists_per_s_vs_one"] = row["lists_per_s"] / one["lists_per_s"]
        row["list_phase_vs_one"] = row["list_phase_lists_per_s"] / one["list_phase_lists_per_s"]


def mb(value: Any) -> str:
    return "-" if not isinstance(value, int | float) else f"{value / 1e6:,.1f}"


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| N | instance | partitions (users) | peak RSS MB | pair MB | pair / (N=1 / N) | "
        "catch-up s (ev/s) | CPU s at catch-up / end |"
    )
    lines = [head, "|---|---|---|---:|---:|---:|---|---|"]
    for row in rows:
        for e in row["per_instance"]:
            ratio = e.get("pair_ratio_to_one_over_n")
            rate = e.get("apply_events_per_s")
            lines.append(
                f"| {row['instances']} | {e['name']} | {e.get('partitions')} "
                f"({e.get('owned_users', '-')}) | {mb(e.get('peak_rss_bytes'))} | "
                f"{mb(e.get('pair_bytes'))} | {'-' if ratio is None else f'{ratio:.3f}'} | "
                f"{e.get('catch_up_s') or 0:.1f} ({rate or 0:,.0f}) | "
                f"{e.get('cpu_s_at_catch_up') or 0:.1f} / {e.get('cpu_s') or 0:.1f} |"
            )
    lines.append("")
    lines.append(
        "| N | load until every list s | lists | lists/s (× N=1) | list phase s | list-phase "
        "lists/s (× N=1) | latency p50 / p99 ms (samples) | takeover first / all s (target) | "
        "load avg |"
    )
    lines.append("|---|---:|---:|---|---:|---|---|---|---|")
    for row in rows:
        t = row.get("takeover")
        take = (
            "-"
            if not t
            else f"{t['first_list_s']:.1f} / "
            + ("-" if t["all_lists_s"] is None else f"{t['all_lists_s']:.1f}")
            + f" (≤ {t['target_s']:.0f})"
        )
        p50, p99 = row.get("latency_p50_ms"), row.get("latency_p99_ms")
        lat = "-" if p50 is None else f"{p50:,.0f} / {p99:,.0f} ({row['latency_samples']})"
        load = "/".join(f"{v:.1f}" for v in row["loadavg_after_load"])
        lines.append(
            f"| {row['instances']} | {row['load_s']:.1f} | {row['lists_initial']:,} | "
            f"{row['lists_per_s']:,.0f} ({row.get('lists_per_s_vs_one', 0):.2f}×) | "
            f"{row['list_phase_s']:.1f} | {row['list_phase_lists_per_s']:,.0f} "
            f"({row.get('list_phase_vs_one', 0):.2f}×) | {lat} | {take} | {load} |"
        )
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--instances", type=int, nargs="+", default=[1, 2, 4], help="N values")
    p.add_argument("--dataset", choices=["synthetic", "ml-100k"], default="synthetic")
    p.add_argument("--users", type=int, default=4000, help="synthetic stream's users")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--session-timeout", type=float, default=10.0, help="seconds (group)")
    p.add_argument("--checkpoint-interval", type=float, default=5.0, help="seconds")
    p.add_argument("--latency-rate", type=float, default=200.0, help="events/s offered")
    p.add_argument("--latency-seconds", type=float, default=15.0)
    p.add_argument("--takeover-rate", type=float, default=50.0, help="events/s to the victim")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per initial load")
    p.add_argument("--log-dir", default=None, help="keep the instances' logs here")
    p.add_argument("--json", action="store_true", help="last line: one JSON object")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    events, items = stream_events(args)
    logger.info(
        "%d events, %d users, %d items", len(events), len({e.user_id for e in events}), len(items)
    )
    rows = []
    with broker_bootstrap() as bootstrap:
        for count in args.instances:
            rows.append(run_n(args, bootstrap, count, events, items))
    finish(rows)
    print(table(rows))
    if args.json:
        result = {
            "command": " ".join(["python", "benchmarks/scaleout.py", *(argv or sys.argv[1:])]),
            "started": started,
            "machine": machine_info(),
            **commit_info(),
            "events": len(events),
            "users": len({e.user_id for e in events}),
            "items": len(items),
            "partitions": PARTITIONS,
            "session_timeout_s": args.session_timeout,
            "rows": rows,
        }
        print(json.dumps(result, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
