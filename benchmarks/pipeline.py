"""Benchmark of the whole pipeline through a real Kafka broker, on MovieLens 100K.

    python benchmarks/pipeline.py [--json] [--events N] [--rate 1000] [--latency-seconds 10]
                                  [--refresh neighbours|actors]
                                  [--guarantee at-least-once|exactly-once]

Broker: ``KAFKA_BOOTSTRAP_SERVERS`` if set, else a local Apache Kafka broker (stream_cf.broker).

1. Replay: the ML-100K ratings (timestamp order) are produced into a fresh input topic.
2. Passthrough: a plain kafka-python consumer reads them and a producer writes each record to a
   sink topic, flushed at the end: the ceiling of this client on this broker.
3. Processor: ``Processor(settings).run(until_end=True)`` over the same records, timed from the
   call to its return (start-up, the final refresh of every pending list and the checkpoint
   included).
4. Latency: the processor keeps running on that state while re-ratings (``6 - rating`` of the last
   ML-100K events) are offered at ``--rate`` events/s for ``--latency-seconds`` by a producer in
   another process (``--offer-in-thread``: from this one, sharing the processor's GIL). Both
   topics use LogAppendTime, so an event's latency is the append time of the first output record
   of its user that was computed in the event's batch minus the event's own append time (events
   whose batch did not change their user's list have no sample). ``latency_any_later_*`` also
   count the events whose actor's list was deferred (a batch taken while the processor was
   behind): the first output of the user computed in the event's batch or later.

``--guarantee exactly-once`` runs steps 3 and 4 with transactions (one per batch, its input offsets
included); the output is read back with read_committed. The latency is still measured to the
output records' append time, which precedes their transaction's commit by the commit's round trip.

With ``--json`` the last line is one JSON object: processor_events_per_s,
passthrough_events_per_s, ratio, latency_p50_ms, latency_p99_ms and the details.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import json
import logging
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from stream_cf.broker import broker_bootstrap
from stream_cf.datasets import dataset_events
from stream_cf.events import Event, RatingEvent, event_to_dict
from stream_cf.processor import Processor, RunSummary, load_settings

logger = logging.getLogger("benchmarks.pipeline")
APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}


def encode(event: Event) -> tuple[bytes, bytes]:
    return event.user_id.encode(), json.dumps(event_to_dict(event)).encode()


def offer(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]], rate: float) -> float:
    """Produce ``records`` at ``rate`` per second (acks=all, no linger); the seconds it took."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    t0 = time.perf_counter()
    for index, (key, value) in enumerate(records):
        delay = t0 + index / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        producer.send(topic, key=key, value=value)
    producer.flush()
    offered_s = time.perf_counter() - t0
    producer.close()
    return offered_s


def create_topics(bootstrap: str, specs: dict[str, dict[str, str]]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-admin")
    try:
        admin.create_topics(
            [NewTopic(name, 1, 1, topic_configs=conf) for name, conf in specs.items()],
            timeout_ms=30_000,
        )
    finally:
        admin.close()


def produce_all(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> float:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=256 * 1024
    )
    started = time.perf_counter()
    for key, value in records:
        producer.send(topic, key=key, value=value)
    producer.flush()
    elapsed = time.perf_counter() - started
    producer.close()
    return elapsed


def passthrough(bootstrap: str, source: str, sink: str, count: int) -> float:
    """Consume ``count`` records of ``source`` and produce each to ``sink``; seconds taken."""
    started = time.perf_counter()
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_poll_records=20_000,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_wait_ms=100,
    )
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=256 * 1024
    )
    tp = TopicPartition(source, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    seen = 0
    deadline = time.monotonic() + 600
    while seen < count and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                producer.send(sink, key=record.key, value=record.value)
                seen += 1
    producer.flush()
    elapsed = time.perf_counter() - started
    producer.close()
    consumer.close()
    return elapsed


def read_range(bootstrap: str, topic: str, start: int) -> list[Any]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed"
    )
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    end = consumer.end_offsets([tp])[tp]
    consumer.seek(tp, start)
    out: list[Any] = []
    deadline = time.monotonic() + 120
    while consumer.position(tp) < end and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            out.extend(records)
    consumer.close()
    return out


def end_offset(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    tp = TopicPartition(topic, 0)
    end = int(consumer.end_offsets([tp])[tp])
    consumer.close()
    return end


def latencies(
    inputs: list[Any],
    outputs: list[Any],
    detail: list[tuple[int, int, float]] | None = None,
    *,
    later: bool = False,
) -> list[float]:
    """Per input event: first output of its user computed in its batch, minus its append time
    (with ``detail``: (input offset, append time ms, latency ms) of each sample appended).

    With ``later``: the first output of its user computed in its batch or in any later iteration,
    so that an actor whose list was deferred (a batch taken while behind, see tracker.py) is
    counted, at the time its list came out, instead of having no sample."""
    by_user: dict[str, list[tuple[int, int]]] = {}
    batch_ends: set[int] = set()
    for record in outputs:
        if record.value is None:
            continue
        body = json.loads(record.value)
        end = int(body["input_offsets"]["0"])
        batch_ends.add(end)
        by_user.setdefault(body["user_id"], []).append((end, record.timestamp))
    for published in by_user.values():
        published.sort()
    ends = sorted(batch_ends)
    samples: list[float] = []
    for record in inputs:
        batch = bisect.bisect_right(ends, record.offset)
        if batch == len(ends):
            continue
        published = by_user.get(record.key.decode(), [])
        index = bisect.bisect_left(published, (ends[batch], -1))
        if index == len(published) or (not later and published[index][0] != ends[batch]):
            continue
        samples.append(float(published[index][1] - record.timestamp))
        if detail is not None:
            detail.append((record.offset, record.timestamp, samples[-1]))
    return samples


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(args: argparse.Namespace) -> dict[str, Any]:
    events = dataset_events("ml-100k", limit=args.events)
    records = [encode(event) for event in events]
    base = f"bench-{uuid.uuid4().hex[:8]}"
    with broker_bootstrap() as bootstrap, tempfile.TemporaryDirectory() as state:
        names = {
            "input": f"{base}.in",
            "output": f"{base}.out",
            "sink": f"{base}.sink",
        }
        create_topics(
            bootstrap,
            {
                names["input"]: APPEND_TIME,
                names["output"]: {**APPEND_TIME, "cleanup.policy": "compact"},
                names["sink"]: {},
            },
        )
        replay_s = produce_all(bootstrap, names["input"], records)
        logger.info("replayed %d events in %.1fs", len(records), replay_s)
        pass_s = passthrough(bootstrap, names["input"], names["sink"], len(records))
        logger.info("passthrough: %.1fs", pass_s)

        settings = load_settings(
            bootstrap_servers=bootstrap,
            input_topic=names["input"],
            output_topic=names["output"],
            group_id=f"{base}-group",
            state_dir=state,
            refresh=args.refresh,
            guarantee=args.guarantee,
            checkpoint_interval=30.0,
        )
        started = time.perf_counter()
        summary = Processor(settings).run(until_end=True, install_signal_handlers=False)
        proc_s = time.perf_counter() - started
        logger.info("processor: %.1fs (%s)", proc_s, summary.to_dict())

        # latency at a fixed offered rate, on the full state
        out_start = end_offset(bootstrap, names["output"])
        in_start = end_offset(bootstrap, names["input"])
        count = int(args.rate * args.latency_seconds)
        rerates = [
            RatingEvent(user_id=e.user_id, item_id=e.item_id, rating=6.0 - e.rating)
            for e in events[-count:]
            if isinstance(e, RatingEvent)
        ]
        # the 100,000 events and records are this script's, not the processor's: freed before
        # the latency phase, so that the collector's full passes do not walk them in the
        # processor's process (a shop's processor holds no such list)
        n_records = len(records)
        del events, records
        gc.collect()
        live = Processor(settings)
        result: dict[str, RunSummary] = {}
        loop_cpu: dict[str, float] = {}

        def run_live() -> None:
            started_cpu = time.thread_time()
            try:
                result["s"] = live.run(install_signal_handlers=False)
            finally:
                loop_cpu["s"] = time.thread_time() - started_cpu

        thread = threading.Thread(target=run_live, daemon=True)
        thread.start()
        live.ready.wait(timeout=120)
        # CPU of this process from here to the stop: the processor's loop thread and
        # kafka-python's threads (the offering producer is another process; this thread sleeps)
        process_cpu0 = time.process_time()
        offer_t0 = time.perf_counter()
        encoded = [encode(event) for event in rerates]
        if args.offer_in_thread:
            offered_s = offer(bootstrap, names["input"], encoded, args.rate)
        else:  # as the shop's producers are: another process, not a thread beside the processor
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                offered_s = pool.submit(
                    offer, bootstrap, names["input"], encoded, args.rate
                ).result()
        target = in_start + len(rerates)
        deadline = time.monotonic() + 600
        while live.positions.get(0, 0) < target and time.monotonic() < deadline:
            time.sleep(0.2)
        phase_s = time.perf_counter() - offer_t0
        process_cpu = time.process_time() - process_cpu0
        live.stop()
        thread.join(timeout=600)
        live_summary = result.get("s")
        detail: list[tuple[int, int, float]] = []
        inputs = read_range(bootstrap, names["input"], in_start)
        outputs = read_range(bootstrap, names["output"], out_start)
        samples = latencies(inputs, outputs)
        with_later = latencies(inputs, outputs, detail, later=True)
        if args.samples:
            with open(args.samples, "w") as out:
                out.writelines(f"{offset} {appended} {ms:.0f}\n" for offset, appended, ms in detail)

    ratio = (n_records / proc_s) / (n_records / pass_s)
    return {
        "events": n_records,
        "refresh": args.refresh,
        "guarantee": args.guarantee,
        "replay_events_per_s": round(n_records / replay_s, 1),
        "passthrough_seconds": round(pass_s, 2),
        "passthrough_events_per_s": round(n_records / pass_s, 1),
        "processor_seconds": round(proc_s, 2),
        "processor_events_per_s": round(n_records / proc_s, 1),
        "ratio": round(ratio, 4),
        "processor_lists_recomputed": summary.recomputed,
        "processor_lists_published": summary.published,
        "processor_batches": summary.batches,
        "processor_engine_apply_seconds": round(summary.apply_seconds, 2),
        "processor_engine_recommend_seconds": round(summary.recommend_seconds, 2),
        "latency_offered_events_per_s": args.rate,
        "latency_achieved_offer_events_per_s": round(len(rerates) / offered_s, 1),
        "latency_events": len(rerates),
        "latency_samples": len(samples),
        "latency_engine_recommend_seconds": (
            round(live_summary.recommend_seconds, 2) if live_summary else None
        ),
        "latency_engine_apply_seconds": (
            round(live_summary.apply_seconds, 2) if live_summary else None
        ),
        "latency_lists_recomputed": live_summary.recomputed if live_summary else None,
        "latency_batches": live_summary.batches if live_summary else None,
        # CPU per second of the phase (from ready to the last offered event applied): what the
        # processor needs of a core at the offered rate, whatever else runs on the machine
        "latency_phase_seconds": round(phase_s, 2),
        "latency_process_cpu_per_s": round(process_cpu / phase_s, 3),
        "latency_loop_cpu_seconds": round(loop_cpu["s"], 2) if loop_cpu else None,
        "latency_p50_ms": round(percentile(samples, 0.5), 1) if samples else None,
        "latency_p99_ms": round(percentile(samples, 0.99), 1) if samples else None,
        "latency_mean_ms": round(statistics.fmean(samples), 1) if samples else None,
        # every event whose user's list came out in its batch or later (deferred actors counted)
        "latency_any_later_samples": len(with_later),
        "latency_any_later_p50_ms": round(percentile(with_later, 0.5), 1) if with_later else None,
        "latency_any_later_p99_ms": round(percentile(with_later, 0.99), 1) if with_later else None,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    parser.add_argument("--events", type=int, default=None, help="first N ML-100K events")
    parser.add_argument("--rate", type=float, default=1000.0, help="offered events/s (latency)")
    parser.add_argument(
        "--offer-in-thread",
        action="store_true",
        help="offer the latency phase's events from this process (before 2026-11-30: the "
        "producer then shares the processor's GIL) instead of a separate process",
    )
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--refresh", choices=["neighbours", "actors"], default="neighbours")
    parser.add_argument(
        "--guarantee", choices=["at-least-once", "exactly-once"], default="at-least-once"
    )
    parser.add_argument("--debug", action="store_true", help="log every batch's timings")
    parser.add_argument(
        "--samples",
        metavar="FILE",
        help="write each latency sample (deferred actors counted) as a line 'input offset, "
        "append time ms, latency ms'",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)
    if args.debug:
        logging.getLogger("stream_cf.processor").setLevel(logging.DEBUG)
    figures = run(args)
    if args.json:
        print(json.dumps(figures, sort_keys=True))
    else:
        for key, value in figures.items():
            print(f"{key:40s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
