"""Ownership, held dead letters and the tracker's hand-over, without a broker (the group protocol
itself is exercised on the real broker in test_scaleout.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_cf.engine import UserKNN
from stream_cf.events import RatingEvent
from stream_cf.processor.ownership import Ownership, partition_of
from stream_cf.processor.publisher import OutgoingRecord
from stream_cf.processor.scaleout import HeldDeadLetters
from stream_cf.processor.tracker import ListTracker

# Kafka's own vectors (org.apache.kafka.common.utils.UtilsTest#testMurmur2): murmur2 as an int32
MURMUR2 = {
    "21": -973932308,
    "foobar": -790332482,
    "a-little-bit-long-string": -985981536,
    "a-little-bit-longer-string": -1486304829,
    "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    "abc": 479470107,
}


def test_partition_of_is_the_java_client_s_default_partitioner() -> None:
    for user, hashed in MURMUR2.items():
        for partitions in (1, 4, 7, 12):
            assert partition_of(user, partitions) == (hashed & 0x7FFFFFFF) % partitions


@settings(max_examples=50)
@given(
    st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=40, unique=True),
    st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=6),
)
def test_every_user_has_exactly_one_owner_once_settled(users: list[str], sizes: list[int]) -> None:
    """Whatever the group's successive assignments of 4 partitions to up to 3 members, once a
    rebalance ends each user is owned by exactly one member; during it, by none."""
    members = [Ownership(scale_out=True) for _ in range(3)]
    for member in members:
        member.partitions = 4
    for size in sizes:
        for member in members:
            member.unsettle()
        assert not any(m.owns(u) for m in members for u in users)
        for index, member in enumerate(members):  # range assignor over `size` members
            mine = [p for p in range(4) if p % size == index] if index < size else []
            member.settle(mine)
        for user in users:
            assert sum(m.owns(user) for m in members) == 1


def test_settle_reports_gained_and_lost_partitions() -> None:
    own = Ownership(scale_out=True)
    own.partitions = 4
    assert own.settle([0, 1]) == (frozenset({0, 1}), frozenset())
    own.unsettle()
    assert not own.owns_partition(0)
    assert own.settle([1, 2]) == (frozenset({2}), frozenset({0}))
    assert own.owns_partition(2) and not own.owns_partition(0)


def test_one_instance_owns_everyone() -> None:
    own = Ownership(scale_out=False)
    assert own.settled and own.owns("anyone") and own.owns_partition(7)


def test_held_dead_letters_past_the_committed_position_are_published_at_takeover() -> None:
    held = HeldDeadLetters()
    letters = {o: OutgoingRecord("dlq", b"k", str(o).encode()) for o in (3, 5, 9)}
    for offset, record in letters.items():
        held.hold(2, offset, record)
    held.hold(1, 4, OutgoingRecord("dlq", b"k", b"other"))
    held.trim({2: 4})  # the owner of partition 2 has published up to offset 4
    assert len(held) == 3
    assert held.take(2, since=6) == [letters[9]]  # committed 6 at takeover: 9 was not published
    assert held.take(2, since=0) == []  # taken once
    assert len(held) == 1


def test_hand_over_and_take_over() -> None:
    engine = UserKNN()
    engine.apply_many(
        [
            RatingEvent(user_id=u, item_id=i, rating=r)
            for u, i, r in [
                ("a", "x", 5),
                ("a", "y", 3),
                ("b", "x", 4),
                ("b", "z", 2),
                ("c", "y", 1),
            ]
        ]
    )
    owned = {"a", "b"}
    tracker = ListTracker(policy="neighbours", n=5, owns=lambda user: user in owned)
    tracker.pending = {"a", "b", "c"}
    changed = tracker.drain(engine, budget=10.0)
    assert {entry.user for entry in changed} == {"a", "b"}  # c is another instance's
    assert not tracker.pending and set(tracker.digests) == {"a", "b"}
    tracker.hand_over(["b"])
    owned.discard("b")
    assert "b" not in tracker.digests and "b" not in tracker.shown
    owned.add("c")
    tracker.take_over(["c", "a"])  # a: owned again after someone else may have published it
    assert tracker.pending == {"a", "c"} and "a" not in tracker.digests
    changed = tracker.drain(engine, budget=10.0)
    assert {entry.user for entry in changed} == {"a", "c"}  # a is published again
