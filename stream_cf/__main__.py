"""``python -m stream_cf`` runs the ``stream-cf`` command."""

import sys

from stream_cf.cli import run_cli

sys.exit(run_cli())
