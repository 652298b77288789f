"""Event files: CSV, TSV or JSON lines, mapped to events by a :class:`ColumnMapping`.

Malformed lines are yielded as :class:`Malformed` with their line number, never dropped silently:
the caller (``stream-cf replay``, ``stream-cf evaluate``) decides whether to skip them or stop.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from stream_cf.events import Event, validate_event
from stream_cf.exceptions import ConfigError, InvalidEvent

EventType = Literal["rating", "purchase", "unrate", "forget_user"]


FileFormat = Literal["csv", "tsv", "jsonl"]
FILE_FORMATS: tuple[str, ...] = get_args(FileFormat)


@dataclass(frozen=True)
class ColumnMapping:
    """Which column (CSV/TSV header name, or JSON-lines key) holds each field of an event.

    A field left ``None`` uses the column of the wire name (``user_id``, ``item_id``, ``rating``,
    ``quantity``, ``ts``, ``type``, ``event_id``) when the file has one. ``event_type`` fixes the
    type of every event; otherwise the ``type`` column gives it, and without one a line with a
    rating is a ``rating`` and any other a ``purchase``. ``time_unit`` says whether numeric times
    are epoch seconds or milliseconds (ISO-8601 strings are accepted either way).
    """

    user: str | None = None
    item: str | None = None
    rating: str | None = None
    quantity: str | None = None
    time: str | None = None
    type: str | None = None
    event_id: str | None = None
    event_type: EventType | None = None
    time_unit: Literal["s", "ms"] = "s"

    def resolve(self, columns: Sequence[str] | None) -> dict[str, str]:
        """``{event field: column}`` for a file with these columns (``None``: JSON lines, any key).

        Raises :class:`ConfigError` if a column named explicitly is not in the header.
        """
        resolved: dict[str, str] = {}
        for field, wire in _WIRE_NAMES.items():
            given = getattr(self, field)
            if given is not None:
                if columns is not None and given not in columns:
                    raise ConfigError(
                        f"the {field} column {given!r} is not in the header "
                        f"(columns: {', '.join(columns)})"
                    )
                resolved[wire] = given
            elif columns is None or wire in columns:
                resolved[wire] = wire
        if columns is not None and "user_id" not in resolved:
            raise ConfigError(
                f"no user column: name it (--user-col) or use a header with 'user_id' "
                f"(columns: {', '.join(columns)})"
            )
        return resolved


_WIRE_NAMES = {
    "user": "user_id",
    "item": "item_id",
    "rating": "rating",
    "quantity": "quantity",
    "time": "ts",
    "type": "type",
    "event_id": "event_id",
}


@dataclass(frozen=True)
class Malformed:
    """A line of an event file that is not an event: its 1-based line number and why."""

    line: int
    reason: str
    text: str

    def __str__(self) -> str:
        shown = self.text if len(self.text) <= 80 else self.text[:77] + "..."
        return f"line {self.line}: {self.reason}: {shown!r}"


def file_format(path: str | os.PathLike[str], fmt: FileFormat | None = None) -> FileFormat:
    """The format of an event file: ``fmt`` if given, else from the suffix.

    ``.csv``; ``.tsv`` or ``.tab``; ``.jsonl``, ``.ndjson`` or ``.json`` (JSON lines).
    """
    if fmt is not None:
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix in (".tsv", ".tab"):
        return "tsv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise ConfigError(
        f"cannot tell the format of {os.fspath(path)!r} from its suffix: say --format"
    )


def read_event_file(
    path: str | os.PathLike[str],
    mapping: ColumnMapping | None = None,
    fmt: FileFormat | None = None,
) -> Iterator[tuple[int, Event | Malformed]]:
    """``(line number, event)`` for each line of a CSV/TSV (with a header) or JSON-lines file.

    A line that cannot be made into an event is yielded as ``(line number, Malformed(...))``;
    blank lines are skipped. Line numbers are 1-based physical lines (the header is line 1).
    Raises :class:`ConfigError` if the file is missing or the mapping does not fit the header.
    """
    mapping = mapping or ColumnMapping()
    kind = file_format(path, fmt)
    try:
        handle = open(path, encoding="utf-8", newline="")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ConfigError(f"cannot read {os.fspath(path)!r}: {exc.strerror}") from exc
    with handle:
        if kind == "jsonl":
            fields = mapping.resolve(None)
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line, parse_constant=_reject_constant)
                except ValueError as exc:
                    yield line_no, Malformed(line_no, f"not JSON ({exc})", line.rstrip("\r\n"))
                    continue
                if not isinstance(obj, dict):
                    reason = f"a JSON {type(obj).__name__}, not an object"
                    yield line_no, Malformed(line_no, reason, line.rstrip("\r\n"))
                    continue
                yield line_no, _to_event(obj, fields, mapping, line_no, line.rstrip("\r\n"))
            return
        delimiter = "\t" if kind == "tsv" else ","
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            return
        header = [h.strip() for h in header]
        fields = mapping.resolve(header)
        index = {name: i for i, name in enumerate(header)}
        while True:
            line_no = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield line_no, Malformed(line_no, f"not {kind.upper()} ({exc})", "")
                continue
            if not any(cell.strip() for cell in row):
                continue
            text = delimiter.join(row)
            if len(row) != len(header):
                reason = f"{len(row)} fields, the header has {len(header)}"
                yield line_no, Malformed(line_no, reason, text)
                continue
            obj = {name: row[index[name]] for name in header}
            yield line_no, _to_event(obj, fields, mapping, line_no, text)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a finite number")


def _to_event(
    obj: dict[str, Any], fields: dict[str, str], mapping: ColumnMapping, line_no: int, text: str
) -> Event | Malformed:
    """Map one row/object to an event via :func:`validate_event`, or a :class:`Malformed`."""

    def get(wire: str) -> Any:
        column = fields.get(wire)
        value = obj.get(column) if column is not None else None
        if isinstance(value, str):
            value = value.strip()
            return value or None
        return value

    try:
        data: dict[str, Any] = {"user_id": get("user_id")}
        for wire in ("item_id", "event_id"):
            if (value := get(wire)) is not None:
                data[wire] = value
        rating, quantity = get("rating"), get("quantity")
        kind = mapping.event_type or get("type") or ("rating" if rating is not None else "purchase")
        data["type"] = kind
        if kind == "rating" and rating is not None:
            data["rating"] = _number(rating, "rating")
        if kind == "purchase" and quantity is not None:
            data["quantity"] = _number(quantity, "quantity")
        if (ts := get("ts")) is not None:
            data["ts"] = _time(ts, mapping.time_unit)
        return validate_event(data)
    except (InvalidEvent, ValueError) as exc:
        return Malformed(line_no, str(exc), text)


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


def _time(value: Any, unit: Literal["s", "ms"]) -> Any:
    """Numeric times (or numeric strings) as epoch seconds; anything else is left to the model."""
    try:
        seconds = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return value  # an ISO-8601 string, validated by the event model
    if seconds is None or not math.isfinite(seconds):
        raise ValueError(f"ts must be epoch {unit} or ISO-8601, got {value!r}")
    return seconds / 1000.0 if unit == "ms" else seconds
