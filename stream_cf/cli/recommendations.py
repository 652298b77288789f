"""``stream-cf recommendations [USER ...]``: the latest list of each user in the output topic."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from stream_cf.cli.replay import add_bootstrap_argument
from stream_cf.datasets import DATASETS, item_titles
from stream_cf.kafka_config import ConnectionConfig
from stream_cf.replay.recommendations import DEFAULT_OUTPUT_TOPIC, UserList, read_latest


def register(subparsers: Any) -> None:
    """Add the ``recommendations`` sub-command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "recommendations",
        help="print the latest recommendations of users from the output topic",
        description="Read the output topic to its end and print the latest list of each user "
        "(or of the users given); a forgotten user's tombstone removes them.",
    )
    parser.add_argument("users", nargs="*", metavar="USER", help="user ids (default: all)")
    parser.add_argument(
        "--topic",
        default=DEFAULT_OUTPUT_TOPIC,
        help=f"output topic (default {DEFAULT_OUTPUT_TOPIC})",
    )
    add_bootstrap_argument(parser)
    parser.add_argument(
        "--titles", choices=DATASETS, help="show the item titles of this dataset (ml-100k)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per user (lines)")
    parser.add_argument("-n", "--top", type=int, metavar="N", help="show at most N items each")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to reach the end (default 60)"
    )
    parser.set_defaults(func=run)


def ordered_users(users: Iterable[str]) -> list[str]:
    """Numeric ids in numeric order, then the others in text order."""
    return sorted(users, key=lambda u: (0, int(u), "") if u.isdigit() else (1, 0, u))


def format_table(
    lists: Iterable[UserList],
    *,
    titles: dict[str, str] | None = None,
    top: int | None = None,
    width: int = 60,
) -> str:
    """A readable block per user: rank, item (title), score and predicted rating (when the list
    has them); the fallback reason if any."""
    lines: list[str] = []
    for user_list in lists:
        header = f"user {user_list.user_id}"
        if user_list.fallback:
            header += f"  (fallback: {user_list.fallback})"
        if user_list.event_time:
            header += f"  as of {user_list.event_time}"
        lines.append(header)
        items = user_list.items if top is None else user_list.items[:top]
        if not items:
            lines.append("   (no recommendations)")
        for rank, (item, score) in enumerate(items, start=1):
            rating = ""
            if user_list.ratings is not None:
                rating = f"  ({user_list.ratings[rank - 1]:.2f}★)"
            name = item
            if titles is not None and item in titles:
                title = titles[item]
                if len(title) > width:
                    title = title[: width - 3] + "..."
                name = f"{title}  [{item}]"
            lines.append(f"  {rank:2d}. {score:6.3f}{rating}  {name}")
        lines.append("")
    return "\n".join(lines)


def print_lists(
    lists: list[UserList],
    *,
    as_json: bool,
    titles: dict[str, str] | None,
    top: int | None,
    out: TextIO,
) -> None:
    if as_json:
        for user_list in lists:
            body = user_list.to_dict(titles)
            if top is not None:
                body["items"] = body["items"][:top]
            out.write(json.dumps(body) + "\n")
        return
    out.write(format_table(lists, titles=titles, top=top))


def run(args: argparse.Namespace) -> int:
    connection = ConnectionConfig.from_env(args.bootstrap_servers)
    titles = item_titles(args.titles) if args.titles else None
    wanted = list(args.users) if args.users else None
    snapshot = read_latest(connection, args.topic, users=wanted, timeout=args.timeout)
    users = wanted if wanted is not None else ordered_users(snapshot.lists)
    found = [snapshot.lists[u] for u in users if u in snapshot.lists]
    print_lists(found, as_json=args.json, titles=titles, top=args.top, out=sys.stdout)
    missing = [u for u in users if u not in snapshot.lists]
    if missing:
        shown = ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else "")
        print(f"no recommendations for: {shown}", file=sys.stderr)
    if not args.json:
        print(
            f"{len(snapshot.lists)} users with a list in {args.topic} "
            f"({snapshot.records} records, {snapshot.tombstones} tombstones)",
            file=sys.stderr,
        )
    return 1 if missing else 0
