"""Fuzz of the in-process path (issue 13): hostile records mixed with valid ones, through decode,
validation, the batch checker, ``apply_many``, the recommendations and the output encoding.

Nothing may raise; every record is applied or dead-lettered with a known reason; every valid event
is applied. No broker: seconds for a few hundred batches.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_cf.engine import UserKNN
from stream_cf.processor.codec import SourceRecord, encode_key, encode_recommendations
from stream_cf.processor.dlq import HEADER_OFFSET, HEADER_REASON
from stream_cf.processor.intake import take_in
from stream_cf.processor.semantics import BatchChecker
from stream_cf.processor.settings import ProcessorSettings, load_settings
from stream_cf.reasons import REASONS

NOW_MS = 1_700_000_000_000
USERS = ["u0", "u1", "u2", "u3", 4, "ü5"]
ITEMS = ["i0", "i1", "i2", "i3", 7]


@dataclass(frozen=True)
class Input:
    """One record's value and what it is: ``valid`` (must be applied), ``unrate`` (a well-formed
    take-back: applied or ``unknown_rating``) or ``hostile`` (anything may happen but a crash)."""

    value: bytes | None
    kind: str
    timestamp_ms: int = NOW_MS


def _json(body: dict[str, Any]) -> bytes:
    # allow_nan: NaN and Infinity literals; ensure_ascii: lone surrogates as \\ud800 escapes
    return json.dumps(body, allow_nan=True).encode("ascii")


odd_text = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["", "\ud800", "a\udfff", "\x00", "\u202e", "\ufeff", "\uffff", "\U0010ffff", "x" * 300]
    ),
)
odd_number = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1e-320, 5e-324, 1e11, 1.7e18, 1e20, 1e200, 6e11, 10**400, -(10**400)]),
    st.integers(),
)
odd_iso = st.one_of(
    st.sampled_from(
        [
            "9999-12-31T23:59:59-14:00",
            "0001-01-01T00:00:00+14:00",
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "2023-11-14T22:13:20+23:59",
            "2023-02-30T00:00:00",
            "1700000000000",
            "nonsense",
        ]
    ),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
)
odd_value = st.one_of(
    odd_text,
    odd_number,
    odd_iso,
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
FIELDS = ["type", "user_id", "item_id", "rating", "quantity", "ts", "event_id"]


@st.composite
def valid_event(draw: st.DrawFn, implicit: bool) -> Input:
    kind = draw(st.sampled_from(["rating", "purchase", "unrate", "forget_user"]))
    body: dict[str, Any] = {"type": kind, "user_id": draw(st.sampled_from(USERS))}
    if kind != "forget_user":
        body["item_id"] = draw(st.sampled_from(ITEMS))
    if kind == "rating":
        body["rating"] = draw(st.sampled_from([1, 2.5, 3, 4.5, 5]))
    if kind == "purchase":
        if not implicit:
            body["type"] = kind = "rating"
            body["rating"] = 4
        else:
            body["quantity"] = draw(st.sampled_from([1, 2, 0.5, 3]))
    if draw(st.booleans()):
        body["ts"] = draw(st.sampled_from([0, 881250949, 1.7e9, "2023-11-14T22:13:20+02:00"]))
    return Input(_json(body), "unrate" if kind == "unrate" else "valid")


@st.composite
def hostile_event(draw: st.DrawFn, implicit: bool) -> Input:
    base = draw(valid_event(implicit))
    assert base.value is not None
    body = json.loads(base.value)
    for name in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3)):
        if draw(st.booleans()):
            body[name] = draw(odd_value)
        else:
            body.pop(name, None)
    if draw(st.booleans()):
        body[draw(st.text(max_size=5))] = draw(odd_value)  # an extra field
    return Input(_json(body), "hostile", draw(st.sampled_from([NOW_MS, -1, 0, 2**62])))


@st.composite
def raw_record(draw: st.DrawFn) -> Input:
    depth = draw(st.sampled_from([1, 31, 32, 33, 10_000]))
    nested = b"[" * depth + b"]" * depth
    value = draw(
        st.sampled_from(
            [
                None,
                b"",
                b"\xff\xfe",
                b"[]",
                b"null",
                b"NaN",
                nested,
                b'{"type": "rating", "user_id": "u0", "item_id": "i0", "rating": 3, "x": '
                + nested
                + b"}",
                b'{"type": "rating", "user_id": "u0", "item_id": "i0", "rating": '
                + b"9" * 5000
                + b"}",
                b'{"type": "rating", "user_id": "u0", "item_id": "i0", "rating": 1e400}',
                b'{"type": "rating", "user_id": "u0", "item_id": "i0", "rating": -Infinity}',
                b'{"type": "rating", "user_id": "u0", "item_id": "i0", "ts": "\\ud800"}',
            ]
        )
    )
    return Input(value, "hostile")


def records_of(inputs: list[Input], start: int) -> list[SourceRecord]:
    return [
        SourceRecord("in", 0, start + n, record.timestamp_ms, b"k", record.value)
        for n, record in enumerate(inputs)
    ]


def run_batches(settings_: ProcessorSettings, batches: list[list[Input]]) -> None:
    """The processor's path, batch by batch, with the checks of the module docstring."""
    engine = UserKNN(**settings_.engine_config())
    offset = 0
    event_time_ms: int | None = None
    for batch in batches:
        records = records_of(batch, offset)
        checker = BatchChecker(engine, implicit=settings_.feedback == "implicit")
        intake = take_in(records, settings_, checker)
        assert len(intake.events) + len(intake.dead_letters) == len(records)
        reasons: dict[int, str] = {}
        for letter in intake.dead_letters:
            headers = dict(letter.headers)
            reasons[int(headers[HEADER_OFFSET])] = headers[HEADER_REASON].decode()
        for record, sent in zip(records, batch, strict=True):
            reason = reasons.get(record.offset)
            assert reason is None or reason in REASONS, reason
            if sent.kind == "valid":
                assert reason is None, (sent.value, reason)
            elif sent.kind == "unrate":
                assert reason in (None, "unknown_rating"), (sent.value, reason)
        if intake.event_time_ms is not None:
            event_time_ms = max(event_time_ms or 0, intake.event_time_ms)
        effect = engine.apply_many(intake.events)
        lists = engine.recommend_many(sorted(effect.users - effect.forgotten), n=settings_.n)
        for user, recs in lists.items():
            encode_key(user)
            encode_recommendations(
                user,
                recs.items,
                recs.fallback,
                event_time_ms=event_time_ms,
                input_topic="in",
                input_offsets={0: offset + len(records)},
            )
        for user in effect.forgotten:
            encode_key(user)
        offset += len(records)
    buffer = io.BytesIO()
    engine.save(buffer)  # the checkpoint
    buffer.seek(0)
    assert UserKNN.load(buffer).users() == engine.users()


def batches_of(implicit: bool) -> st.SearchStrategy[list[list[Input]]]:
    record = st.one_of(valid_event(implicit), hostile_event(implicit), raw_record())
    return st.lists(st.lists(record, min_size=1, max_size=12), min_size=1, max_size=4)


@pytest.mark.parametrize("feedback", ["explicit", "implicit"])
def test_no_record_can_stop_the_path(feedback: str) -> None:
    settings_ = load_settings(input_topic="in", output_topic="out", feedback=feedback, n=3)

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(batches_of(feedback == "implicit"))
    def check(batches: list[list[Input]]) -> None:
        run_batches(settings_, batches)

    check()


def test_weights_that_would_overflow_are_refused() -> None:
    """Implicit weights accumulated across batches stop at the limit, never at inf."""
    settings_ = load_settings(input_topic="in", output_topic="out", feedback="implicit")
    heavy = _json({"type": "purchase", "user_id": "u0", "item_id": "i0", "quantity": 4e11})
    run_batches(
        settings_,
        [[Input(heavy, "valid"), Input(heavy, "valid")], [Input(heavy, "hostile")] * 3],
    )
