"""Command-line options shared by the commands that read event files (replay, evaluate)."""

from __future__ import annotations

import argparse
from typing import Any

from stream_cf.event_files import FILE_FORMATS, ColumnMapping

_COLUMNS = (
    ("user", "user_id"),
    ("item", "item_id"),
    ("rating", "rating"),
    ("quantity", "quantity"),
    ("time", "ts"),
    ("type", "type"),
    ("event-id", "event_id"),
)


def add_mapping_arguments(group: Any) -> None:
    """``--format``, ``--<field>-col``, ``--event-type`` and ``--time-unit`` on ``group``."""
    group.add_argument("--format", choices=FILE_FORMATS, help="default: from the file suffix")
    for field, default in _COLUMNS:
        group.add_argument(
            f"--{field}-col",
            metavar="COLUMN",
            help=f"column (JSON key) of the {field.replace('-', ' ')} (default {default!r})",
        )
    group.add_argument(
        "--event-type",
        choices=["rating", "purchase", "unrate", "forget_user"],
        help="one type for every line (default: the type column, else 'rating' when the line "
        "has a rating and 'purchase' otherwise)",
    )
    group.add_argument(
        "--time-unit",
        choices=["s", "ms"],
        default="s",
        help="unit of numeric times (ISO-8601 works too)",
    )


def mapping_of(args: argparse.Namespace) -> ColumnMapping:
    """The column mapping the options of :func:`add_mapping_arguments` describe."""
    return ColumnMapping(
        user=args.user_col,
        item=args.item_col,
        rating=args.rating_col,
        quantity=args.quantity_col,
        time=args.time_col,
        type=args.type_col,
        event_id=args.event_id_col,
        event_type=args.event_type,
        time_unit=args.time_unit,
    )
