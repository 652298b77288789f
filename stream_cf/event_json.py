"""An input record's bytes as a JSON value, with every hostile shape refused before it can hurt.

:func:`load_json` raises :class:`~stream_cf.exceptions.InvalidEvent` for:

- no value or zero bytes (``empty_value``) and bytes that are not UTF-8 (``not_utf8``);
- arrays and objects nested deeper than :data:`MAX_DEPTH` (``too_deep``): counted before parsing,
  so that ``json.loads`` never recurses into 10,000 levels;
- numbers no double holds: ``1e400`` and integers beyond Python's digit limit
  (``number_too_large``), and the ``NaN``/``Infinity`` literals (``not_finite``);
- anything else that is not JSON (``invalid_json``).

Integers within the digit limit stay Python ints (an id may be an integer); whether a large one
fits its field is for the event models to say.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from stream_cf.exceptions import InvalidEvent

MAX_DEPTH = 32
"""The deepest nesting of JSON arrays and objects accepted (an event needs 1)."""

# a JSON string (skipped whole, so that brackets inside strings are not counted) or a bracket
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


class _NumberTooLarge(ValueError):
    """Raised from inside ``json.loads`` by the number hooks."""


class _NotFinite(ValueError):
    """Raised from inside ``json.loads`` for the NaN and Infinity literals."""


def _depth_exceeds(text: str, limit: int) -> bool:
    """Whether arrays and objects nest deeper than ``limit`` in ``text``."""
    if text.count("[") + text.count("{") <= limit:  # the usual case: too few brackets to tell
        return False
    depth = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > limit:
                return True
        elif token in ("]", "}"):
            depth -= 1
    return False


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _NumberTooLarge(f"the number {text[:40]} is too large for a double")
    return value


def _parse_int(text: str) -> int:
    limit = sys.get_int_max_str_digits()
    digits = len(text) - text.startswith("-")
    if limit and digits > limit:
        raise _NumberTooLarge(f"an integer of {digits} digits (the limit is {limit})")
    return int(text)


def _reject_constant(name: str) -> float:
    raise _NotFinite(f"{name} is not a finite number")


# one decoder for every record (``json.loads`` with hooks builds a new one per call)
_DECODER = json.JSONDecoder(
    parse_float=_parse_float, parse_int=_parse_int, parse_constant=_reject_constant
)


def load_json(data: bytes | None) -> Any:
    """The JSON value of a record's bytes, or InvalidEvent with the reason it cannot be read."""
    if not data:
        what = "null" if data is None else "zero bytes"
        raise InvalidEvent("empty_value", f"the record has no value ({what})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent(
            "not_utf8", f"the value is not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from exc
    if _depth_exceeds(text, MAX_DEPTH):
        raise InvalidEvent("too_deep", f"arrays or objects nest deeper than {MAX_DEPTH} levels")
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise InvalidEvent(
            "invalid_json", f"the value is not JSON: {exc.msg} at char {exc.pos}"
        ) from exc
    except _NumberTooLarge as exc:
        raise InvalidEvent("number_too_large", str(exc)) from exc
    except _NotFinite as exc:
        raise InvalidEvent("not_finite", str(exc)) from exc
    except RecursionError as exc:  # last resort: the depth count above should make it unreachable
        raise InvalidEvent("too_deep", "arrays or objects nest too deep to decode") from exc
