"""The ``stream-cf`` command: one sub-command per module of this package.

Each sub-command module defines ``register(subparsers)``, which adds its parser and sets
``func(args) -> int`` as the parser default. Only this module configures logging.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from stream_cf import redaction
from stream_cf.exceptions import StreamCFError

logger = logging.getLogger(__name__)

# Sub-command modules of stream_cf.cli, in the order `stream-cf --help` lists them.
SUBCOMMANDS = ("demo", "broker", "run", "serve", "replay", "recommendations", "evaluate")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``stream-cf`` with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="stream-cf",
        description="Real-time user-based collaborative filtering over Kafka.",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level of the messages written to standard error (default INFO)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"stream_cf.cli.{name}")
        module.register(subparsers)
    return parser


def run_cli(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the chosen sub-command, return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    redaction.install()  # kafka-python logs its configuration, passwords included, at DEBUG
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # kafka-python logs every connection at INFO, and "Task ran for 0.2s" when the I/O
        # thread waited for the GIL: keep its warnings only, unless --log-level DEBUG.
        logging.getLogger("kafka").setLevel(logging.WARNING)
        logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)
    try:
        code: int = args.func(args)
    except StreamCFError as exc:
        logger.debug("command failed", exc_info=True)
        print(f"stream-cf {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


def main() -> None:
    """Console-script entry point."""
    sys.exit(run_cli())
