"""The id maps' string -> slot table (:class:`stream_cf.engine.ids.SlotTable`) against a dict."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_cf.engine.ids import SHARDS, IdMap, SlotTable

keys = st.text(min_size=0, max_size=6)
op = st.one_of(
    st.tuples(st.just("set"), keys, st.integers(0, 10**6)),
    st.tuples(st.just("del"), keys),
    st.tuples(st.just("pop"), keys),
)


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(op, max_size=60), probe=st.lists(keys, max_size=20))
def test_slot_table_is_a_dict(ops: list[Any], probe: list[str]) -> None:
    """After every write: every read (item, get, in, len, iteration, lookup, ==) is the plain
    dict's."""
    table, plain = SlotTable(), {}
    for step in ops:
        kind, key = step[0], step[1]
        if kind == "set":
            table[key] = plain[key] = step[2]
        elif key in plain:
            if kind == "del":
                del table[key], plain[key]
            else:
                assert table.pop(key) == plain.pop(key)
        else:
            assert key not in table
        assert len(table) == len(plain)
        assert sorted(table) == sorted(plain) and dict(table.items()) == plain
        assert table == SlotTable(plain.items())
        wanted = [*probe, *plain]
        assert table.lookup(wanted) == [plain.get(k, -1) for k in wanted]
        assert table.lookup(wanted, missing=-9) == [plain.get(k, -9) for k in wanted]
        for k in wanted:
            assert table.get(k) == plain.get(k) and table.get(k, -7) == plain.get(k, -7)
            assert (k in table) == (k in plain)


def test_a_large_table_spreads_over_its_shards() -> None:
    """10,000 ids land in every shard, none holding more than 3× its share: a growing table
    rebuilds one small dict at a time."""
    table = SlotTable((f"u{k}", k) for k in range(10_000))
    sizes = [len(shard) for shard in table._shards]
    assert len(sizes) == SHARDS and sum(sizes) == 10_000
    assert min(sizes) > 0 and max(sizes) < 3 * 10_000 / SHARDS
    assert table.lookup(["u0", "u9999", "nobody"]) == [0, 9999, -1]


def test_id_map_round_trip() -> None:
    """Slots, releases and the lowest-free-first reuse survive to_meta/from_meta."""
    ids = IdMap()
    for key in "abcde":
        ids.add(key)
    ids.remove("b")
    ids.remove("d")
    back = IdMap.from_meta(ids.to_meta())
    assert back.slot_of == ids.slot_of and back.id_of == ids.id_of and len(back) == 3
    assert back.add("x") == 1 and ids.add("x") == 1
