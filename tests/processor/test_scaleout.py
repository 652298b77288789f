"""Scale-out on the real broker: N instances of ``stream-cf run --scale-out`` in one group share a
4-partition input; the final lists (the last record per user on the output topic) equal those of
one batch computation, with N = 3 started together, with an instance SIGKILLed mid-stream and not
restarted, and with N = 1 then 2 when an instance joins mid-stream (one test: the lone instance's
lists are checked before the second one starts).

The lists are compared up to ties: a tie between equal scores is broken by the order in which the
items first appeared, which depends on how the partitions interleaved (as with one instance on
several partitions); scores agree within 1e-9 position by position, and the items of each group
of equal scores agree (the last group may be cut by n: its items must be among the tied ones).
"""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from stream_cf.engine import UserKNN
from stream_cf.events import Event, ForgetUserEvent
from stream_cf.processor.ownership import partition_of
from stream_cf.processor.settings import ProcessorSettings
from stream_cf.processor.topics import ensure_topics
from tests.kafka_utils import produce, read_all, wait_until
from tests.processor.conftest import Lists, event_bytes, last_lists, start_cli
from tests.processor.test_end_to_end import movielens_or_generated

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(420)]

PARTITIONS = 4
SESSION = 6.0  # seconds: the broker's group.min.session.timeout.ms
Expected = dict[str, tuple[list[tuple[str, float]], list[tuple[str, float]], str | None] | None]


def spread(count: int) -> list[Event]:
    """``count`` ratings spread over the whole of MovieLens 100K (every k-th, in time order):
    many users, each with a few ratings, rather than the first days' few heavy raters."""
    everything = movielens_or_generated(100_000)
    step = max(1, len(everything) // count)
    return everything[::step][:count]


def produce_keyed(bootstrap: str, topic: str, events: Sequence[Event]) -> None:
    """Each event keyed by its user id, to the partition Kafka's default partitioner picks."""
    produce(
        bootstrap,
        topic,
        [event_bytes(e) for e in events],
        keys=[e.user_id.encode("utf-8") for e in events],
        timeout=60.0,
    )


def expected_lists(settings: ProcessorSettings, events: Sequence[Event]) -> Expected:
    """Per user: the list of a batch computation over ``events`` and a longer one (the ties past
    the n-th item), or None for a forgotten user."""
    config = settings.engine_config()
    config.pop("pair_rows", None)  # one instance holding every user's rows
    engine = UserKNN(**config)
    engine.apply_many(list(events))
    wide = engine.recommend_many(engine.users(), n=settings.n + 40)
    out: Expected = {}
    for user, recs in wide.items():
        items = list(recs.items)
        out[user] = (items[: settings.n], items, recs.fallback)
    for event in events:
        if isinstance(event, ForgetUserEvent) and event.user_id not in out:
            out[event.user_id] = None
    return out


def differences(actual: Lists, expected: Expected) -> list[str]:
    """What differs between the published lists and the expected ones, up to ties."""
    problems: list[str] = []
    for user in sorted(set(actual) | set(expected)):
        want = expected.get(user)
        got = actual.get(user)
        if user not in actual:
            problems.append(f"{user}: no list published")
            continue
        if want is None or got is None:
            if not (want is None and got is None):
                problems.append(f"{user}: {got} != {want}")
            continue
        head, wide, fallback = want
        items, got_fallback = got
        if got_fallback != fallback or len(items) != len(head):
            problems.append(f"{user}: {got} != {head} ({fallback})")
            continue
        for (_, a), (_, b) in zip(items, head, strict=True):
            if not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9):
                problems.append(f"{user}: scores {items} != {head}")
                break
        else:
            for item, score in items:
                tied = {i for i, s in wide if math.isclose(s, score, rel_tol=1e-9, abs_tol=1e-9)}
                if item not in tied:
                    problems.append(f"{user}: {item} ({score}) is not among {sorted(tied)}")
                    break
            # the groups of equal scores before the last one hold the same items
            cut = [s for _, s in head][-1]
            before = sorted(i for i, s in items if not math.isclose(s, cut, rel_tol=1e-9))
            want_before = sorted(i for i, s in head if not math.isclose(s, cut, rel_tol=1e-9))
            if before != want_before:
                problems.append(f"{user}: {items} != {head} (above the last tie)")
    return problems


def converge(settings: ProcessorSettings, expected: Expected, timeout: float) -> Lists:
    """Wait until the output topic's last record per user is the expected list of every user."""
    seen: list[list[str]] = [[]]

    def done() -> Lists | None:
        actual = last_lists(settings.bootstrap_servers, settings.output_topic)
        seen[0] = differences(actual, expected)
        return actual if not seen[0] else None

    try:
        result: Lists = wait_until(done, timeout=timeout, interval=1.0, what="the final lists")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {len(seen[0])} differences, {seen[0][:5]}") from exc
    return result


def instance(
    make_settings: Callable[..., ProcessorSettings], base: ProcessorSettings, name: str
) -> ProcessorSettings:
    """The settings of one more instance: same topics and group, its own state directory."""
    return make_settings(
        input_topic=base.input_topic,
        output_topic=base.output_topic,
        group_id=base.group_id,
        state_dir=str(Path(base.state_dir).parent / f"{Path(base.state_dir).name}-{name}"),
        partitions=PARTITIONS,
        scale_out=True,
        session_timeout=SESSION,
        max_batch=base.max_batch,
        checkpoint_interval=base.checkpoint_interval,
    )


def start(settings: ProcessorSettings, log: Path) -> subprocess.Popen[bytes]:
    return start_cli(
        settings,
        log,
        "--scale-out",
        "--session-timeout",
        str(SESSION),
        "--partitions",
        str(PARTITIONS),
        "--json",
    )


def assignment(log: Path) -> set[int] | None:
    """The partitions of the instance's last assignment, from its log (None: in a rebalance)."""
    text = log.read_text()
    steps = re.findall(r"(?:assigned partitions|partitions) \[([0-9, ]*)\] ?(\w*)", text)
    if not steps or steps[-1][1] in ("revoked", "lost"):
        return None
    return {int(p) for p in steps[-1][0].split(",") if p.strip()}


def settled_assignment(logs: Sequence[Path], timeout: float = 60.0) -> list[set[int]]:
    """Each instance's partitions once the group has settled: every instance assigned, each
    partition to exactly one."""

    def settled() -> list[set[int]] | None:
        owned = [assignment(log) for log in logs]
        if any(o is None for o in owned):
            return None
        sets = [o for o in owned if o is not None]
        whole = set().union(*sets) == set(range(PARTITIONS))
        return sets if whole and sum(len(o) for o in sets) == PARTITIONS else None

    result: list[set[int]] = wait_until(settled, timeout=timeout, interval=0.5, what="the group")
    return result


def stop(proc: subprocess.Popen[bytes], log: Path) -> dict[str, object]:
    """SIGTERM, exit 0, and the run summary the instance printed."""
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=60)
    text = log.read_text()
    assert code == 0, text[-3000:]
    summary: dict[str, object] = json.loads(
        [line for line in text.splitlines() if line.startswith("{")][-1]
    )
    return summary


@pytest.fixture
def base(make_settings: Callable[..., ProcessorSettings]) -> ProcessorSettings:
    settings = make_settings(partitions=PARTITIONS, max_batch=300, checkpoint_interval=1.0)
    ensure_topics(settings)
    return settings


# N = 1 and N = 2 (forgotten users, every instance's share, summaries, nothing stale) are
# checked by test_an_instance_joining_mid_stream_takes_a_share, before and after the join
@pytest.mark.parametrize("count", [3])
def test_n_instances_publish_the_lists_of_one_batch_computation(
    count: int,
    base: ProcessorSettings,
    make_settings: Callable[..., ProcessorSettings],
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    events = spread(3000)
    users = sorted({e.user_id for e in events})
    forgotten = [ForgetUserEvent(user_id=users[i]) for i in (3, 17)]
    events = [*events, *forgotten]
    produce_keyed(kafka_bootstrap, base.input_topic, events)
    expected = expected_lists(base, events)

    procs = []
    for k in range(count):
        log = tmp_path / f"instance-{k}.log"
        procs.append((start(instance(make_settings, base, str(k)), log), log))
    try:
        converge(base, expected, timeout=180)
        owned = settled_assignment([log for _, log in procs])
        converge(base, expected, timeout=60)  # and after the group settled
    finally:
        summaries = [stop(proc, log) for proc, log in procs]
    # nothing published after convergence changed a list (none stale)
    assert not differences(last_lists(kafka_bootstrap, base.output_topic), expected)
    if count > 1:
        assert all(owned), f"an instance owns nothing: {owned}"
        assert all(int(s["published"]) > 0 for s in summaries), summaries  # type: ignore[call-overload]
    # the footprint in the summary: each instance's pair rows (its owned users' only)
    assert all(0 < int(s["pair_bytes"]) < int(s["state_bytes"]) for s in summaries), summaries  # type: ignore[call-overload]


def test_a_sigkilled_instance_s_users_move_to_the_others(
    base: ProcessorSettings,
    make_settings: Callable[..., ProcessorSettings],
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    events = spread(4000)
    first, second = events[:2000], events[2000:]
    produce_keyed(kafka_bootstrap, base.input_topic, first)
    procs = []
    for k in range(3):
        log = tmp_path / f"instance-{k}.log"
        procs.append((start(instance(make_settings, base, str(k)), log), log))
    try:
        converge(base, expected_lists(base, first), timeout=180)
        victim, _ = procs.pop(0)
        victim.kill()  # SIGKILL: no leave-group, no final publish; not restarted
        victim.wait(timeout=30)
        produce_keyed(kafka_bootstrap, base.input_topic, second)
        # the victim's users are owed lists from the events after its death: they come only
        # from the instances that took its partitions over
        converge(base, expected_lists(base, events), timeout=SESSION + 120)
        owned = settled_assignment([log for _, log in procs])
    finally:
        summaries = [stop(proc, log) for proc, log in procs]
    assert all(owned), owned
    assert all(int(s["rebalances"]) >= 2 for s in summaries), summaries  # type: ignore[call-overload]


def test_an_instance_joining_mid_stream_takes_a_share(
    base: ProcessorSettings,
    make_settings: Callable[..., ProcessorSettings],
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    """One instance alone publishes the lists of one batch computation (tombstones of forgotten
    users included); a second one joins mid-stream, takes a share of the users, and the two
    publish the lists of one batch computation over every event (a user forgotten after the
    join included): each owns partitions and published lists, nothing stale after they stop."""
    events = spread(4000)
    first, second = events[:2000], events[2000:]
    users = sorted({e.user_id for e in first})
    first = [*first, *(ForgetUserEvent(user_id=users[i]) for i in (3, 17))]
    second = [*second, ForgetUserEvent(user_id=users[29])]
    events = [*first, *second]
    produce_keyed(kafka_bootstrap, base.input_topic, first)
    log0 = tmp_path / "instance-0.log"
    procs = [(start(instance(make_settings, base, "0"), log0), log0)]
    try:
        alone = expected_lists(base, first)
        assert [alone[users[i]] for i in (3, 17)] == [None, None]
        converge(base, alone, timeout=180)
        assert settled_assignment([log0]) == [set(range(PARTITIONS))]
        log1 = tmp_path / "instance-1.log"
        procs.append((start(instance(make_settings, base, "1"), log1), log1))
        produce_keyed(kafka_bootstrap, base.input_topic, second)
        wait_until(
            lambda: "assigned partitions" in log1.read_text(),
            timeout=120,
            what="the new instance's assignment",
        )
        expected = expected_lists(base, events)
        assert expected[users[29]] is None
        converge(base, expected, timeout=180)
        owned = settled_assignment([log for _, log in procs])
        converge(base, expected, timeout=60)  # and after the group settled
    finally:
        summaries = [stop(proc, log) for proc, log in procs]
    # nothing published after convergence changed a list (none stale)
    assert not differences(last_lists(kafka_bootstrap, base.output_topic), expected)
    assert owned[1], f"the new instance owns nothing: {owned}"
    assert all(owned), f"an instance owns nothing: {owned}"
    assert all(int(s["published"]) > 0 for s in summaries), summaries  # type: ignore[call-overload]
    assert all(0 < int(s["pair_bytes"]) < int(s["state_bytes"]) for s in summaries), summaries  # type: ignore[call-overload]
    # the instance that joined had caught up before it published: each of its users' lists
    # equal to the final one or later replaced (checked by converge); and it took users over
    assert int(summaries[1]["gained_users"]) > 0, summaries[1]  # type: ignore[call-overload]


def test_ownership_divides_users_by_kafka_s_partitioner(
    kafka_bootstrap: str, base: ProcessorSettings
) -> None:
    """The owner of a user is the owner of the partition a keyed record of the user goes to."""
    users = [f"user-{k}" for k in range(40)]
    produce(
        kafka_bootstrap,
        base.input_topic,
        [b"{}" for _ in users],
        keys=[u.encode("utf-8") for u in users],
    )
    records = read_all(kafka_bootstrap, base.input_topic, timeout=30.0)
    assert len(records) == len(users)
    for record in records:
        assert record.partition == partition_of(record.key.decode("utf-8"), PARTITIONS)
