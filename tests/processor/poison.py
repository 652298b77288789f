"""Poison records: input values that once crashed the processor, each with the dead-letter reason
it must get (issue 13). Shared by the codec tests and the broker test."""

from __future__ import annotations

import json
from typing import Any


def _event(**fields: Any) -> bytes:
    """A rating of item i by user p with ``fields`` replaced (JSON escapes for odd strings)."""
    body = {"type": "rating", "user_id": "p", "item_id": "i", "rating": 3, **fields}
    return json.dumps(body).encode("ascii")


DEEP = b"[" * 10_000 + b"]" * 10_000

# (value, reason) for any feedback mode; the record's append time is "now"
POISON: list[tuple[bytes, str]] = [
    (
        b'{"type": "rating", "user_id": "p", "item_id": "i", "rating": 3, "x": ' + DEEP + b"}",
        "too_deep",
    ),
    (DEEP, "too_deep"),
    ((_event(ts=1e20)), "ts_out_of_range"),
    ((_event(ts=1.7e18)), "ts_out_of_range"),  # nanoseconds
    ((_event(ts=10**400)), "ts_out_of_range"),
    ((_event(ts=-1)), "ts_out_of_range"),  # before 1970
    ((_event(ts=1e11)), "ts_out_of_range"),  # the year 5138: far after the append time
    ((_event(ts="9999-12-31T23:59:59-14:00")), "ts_out_of_range"),  # the year 10000 in UTC
    ((_event(ts="0001-01-01T00:00:00+14:00")), "ts_out_of_range"),  # the year 0 in UTC
    ((_event(user_id="\ud800")), "not_unicode"),  # a lone surrogate, as a JSON escape
    ((_event(item_id="a\udfffb")), "not_unicode"),
    ((_event(event_id="\udbff")), "not_unicode"),
    (b"", "empty_value"),
    (
        b'{"type": "rating", "user_id": "p", "item_id": "i", "rating": ' + b"7" * 5000 + b"}",
        "number_too_large",
    ),
    ((_event(rating=10**400)), "number_too_large"),
    (b'{"type": "rating", "user_id": "p", "item_id": "i", "rating": 1e400}', "number_too_large"),
]

# only with feedback="implicit" (a purchase is unsupported_event with explicit ratings)
IMPLICIT_POISON: list[tuple[bytes, str]] = [
    ((_event(type="purchase", quantity=1e200)), "value_too_large"),
    ((_event(type="purchase", quantity=10**400)), "number_too_large"),
]
