"""``stream-cf evaluate`` end to end: a generated event file, the JSON line, the report files."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from eval_reference import (
    assert_same,
    generated_stream,
    popularity,
    reference_prequential,
    reference_split,
)

from stream_cf.cli import run_cli
from stream_cf.datasets import dataset_available
from stream_cf.events import RatingEvent

FIGURES = ("rmse", "mae", "warm_rmse", "warm_mae", "hit_rate_at_10", "ndcg_at_10", "coverage_at_10")


def write_ratings(path: Path, seed: int) -> list[RatingEvent]:
    """The generated stream as a CSV file with its own column names, rows shuffled."""
    events = [e for e in generated_stream(seed) if isinstance(e, RatingEvent)]
    rows = [(e.user_id, e.item_id, e.rating, int(e.ts.timestamp()) if e.ts else 0) for e in events]
    random.Random(seed).shuffle(rows)  # the evaluation must put them back in time order
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["who", "what", "stars", "when"])
        writer.writerows(rows)
    return events


def last_json(out: str) -> dict[str, Any]:
    line = out.strip().splitlines()[-1]
    data: dict[str, Any] = json.loads(line)
    return data


def pick(data: dict[str, Any], want: dict[str, Any]) -> dict[str, Any]:
    """The part of the JSON object that the reference computes."""
    got = {key: data[key] for key in want if key != "baselines"}
    got["baselines"] = {
        name: {key: figs[key] for key in FIGURES} for name, figs in data["baselines"].items()
    }
    return got


MAPPING = ["--user-col", "who", "--item-col", "what", "--rating-col", "stars", "--time-col", "when"]
# the reference (eval_reference.py) ranks by, and predicts as, KNNWithMeans
MODEL = [
    *("--rank", "rating", "--predictor", "knn_means"),
    *("--similarity", "msd", "--k", "100", "--min-similarity", "0.0"),
]


def test_cli_prequential_json_and_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ratings.csv"
    events = write_ratings(path, seed=7)
    out_dir = tmp_path / "report"
    argv = ["evaluate", str(path), *MAPPING, *MODEL]
    argv += ["--rank-sample", "0.4", "--seed", "7", "--json", "--out", str(out_dir)]
    assert run_cli(argv) == 0
    data = last_json(capsys.readouterr().out)
    want = reference_prequential(list(events), rank_sample=0.4, seed=7)
    assert_same(pick(data, want), want)
    assert data["events"] == len(events) and data["seconds"] > 0
    assert data["mode"] == "prequential" and data["rank_sample"] == 0.4
    assert data["model_config"]["similarity"] == "msd"
    # the report: table, the same JSON, the trace and its plot
    report = (out_dir / "report.md").read_text(encoding="utf-8")
    assert "| UserKNN |" in report and "| popularity |" in report and "hit@10" in report
    assert json.loads((out_dir / "result.json").read_text(encoding="utf-8")) == data
    with (out_dir / "trace.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[-1]["events"] == str(len(events))
    assert math.isclose(float(rows[-1]["model.rmse"]), want["rmse"], rel_tol=1e-5)
    png = (out_dir / "metrics.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_cli_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ratings.csv"
    events = write_ratings(path, seed=8)
    out_dir = tmp_path / "split"
    argv = ["evaluate", str(path), *MAPPING, *MODEL, "--split", "--rank-sample", "1", "--json"]
    assert run_cli([*argv, "--out", str(out_dir)]) == 0
    data = last_json(capsys.readouterr().out)
    want = reference_split(list(events), train_fraction=0.8, rank_sample=1.0, seed=0)
    assert_same(pick(data, want), want)
    assert data["mode"] == "split" and data["train_fraction"] == 0.8
    # no stream to follow in the split mode: the table and the JSON, no trace or plot
    assert sorted(p.name for p in out_dir.iterdir()) == ["report.md", "result.json"]
    assert "(split)" in (out_dir / "report.md").read_text(encoding="utf-8")


def test_cli_implicit_purchases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Purchases: an implicit model, no rating figures, hit-rate beside popularity."""
    rng = random.Random(3)
    lines = []
    for t in range(400):
        user = f"c{rng.randrange(25)}"
        item = f"p{min(int(rng.expovariate(0.1)), 40)}"
        lines.append(json.dumps({"user_id": user, "item_id": item, "ts": 1_600_000_000 + t}))
    path = tmp_path / "baskets.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    argv = ["evaluate", str(path), "--rank-sample", "0.5", "--seed", "3", "--json"]
    assert run_cli(argv) == 0
    data = last_json(capsys.readouterr().out)
    assert data["model_config"]["feedback"] == "implicit"
    assert data["rmse"] is None and data["baselines"]["global_mean"]["rmse"] is None
    assert data["rating_metrics"] is False
    assert 0.0 <= data["hit_rate_at_10"] <= 1.0
    # popularity, recomputed plainly with the same draws and the same repeat rule
    draws = random.Random(3)
    held: dict[str, dict[str, float]] = {}
    first_seen: list[str] = []
    hits: list[int] = []
    repeats = 0
    for line in lines:
        obj = json.loads(line)
        user, item = obj["user_id"], obj["item_id"]
        if draws.random() < 0.5:
            if item in held.get(user, {}):
                repeats += 1
            else:
                hits.append(int(item in popularity(held, first_seen, user, 10)))
        held.setdefault(user, {})[item] = 1.0
        if item not in first_seen:
            first_seen.append(item)
    assert data["ranked"] == len(hits) and data["ranking_repeats"] == repeats
    pop = data["baselines"]["popularity"]["hit_rate_at_10"]
    assert math.isclose(pop, sum(hits) / len(hits))


def test_cli_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["evaluate", str(tmp_path / "missing.csv")]) == 2
    assert "neither a file nor a dataset" in capsys.readouterr().err
    path = tmp_path / "no_time.csv"
    path.write_text("user_id,item_id,rating\nu,i,4\n", encoding="utf-8")
    assert run_cli(["evaluate", str(path)]) == 2
    assert "--order file" in capsys.readouterr().err
    assert run_cli(["evaluate", str(path), "--order", "file", "--k", "0"]) == 2
    assert "k" in capsys.readouterr().err
    assert run_cli(["evaluate", str(path), "--split", "--train-fraction", "1.0"]) == 2
    assert "--train-fraction must be in (0, 1), got 1.0" in capsys.readouterr().err


@pytest.mark.skipif(not dataset_available("ml-100k"), reason="recbole (ml-100k) not installed")
def test_cli_ml100k_first_events(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["evaluate", "ml-100k", "--limit", "2000", "--rank-sample", "0.05", "--json"]
    assert run_cli(argv) == 0
    data = last_json(capsys.readouterr().out)
    assert data["events"] == 2000 and data["rated"] == 2000
    assert data["new_user"] + data["new_item"] + data["rated_warm"] == 2000
    for name in ("global_mean", "user_mean", "item_mean"):
        assert data["baselines"][name]["rmse"] > 0
    assert data["ranked"] + data["ranking_repeats"] > 50


def test_cli_compare_runs_every_rule_on_the_same_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--compare prints one row per ranking mode and for the other predictor; each row's figures
    are those of a run of that model alone (same events, same ranking sample)."""
    path = tmp_path / "ratings.csv"
    write_ratings(path, seed=3)
    common = ["evaluate", str(path), *MAPPING, "--rank-sample", "0.5", "--seed", "3"]
    assert run_cli([*common, "--compare"]) == 0
    table = capsys.readouterr().out.split("## Compared", 1)[1]
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line[:2] == "| "}
    assert set(rows) == {
        "rank=vote, predictor=knn_baseline (asked)",
        "rank=item",
        "rank=rating",
        "predictor=knn_means",
        "popularity",
        "model",
    }
    for mode in ("item", "rating"):
        assert run_cli([*common, "--rank", mode, "--json"]) == 0
        alone = last_json(capsys.readouterr().out)
        cells = [c.strip() for c in rows[f"rank={mode}"].split("|")[2:7]]
        assert cells[2] == f"{alone['hit_rate_at_10']:.4f}", (mode, cells, alone)
        assert cells[0] == f"{alone['rmse']:.4f}"
