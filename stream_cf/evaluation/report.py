"""The report of an evaluation run: a table of the final figures and a plot along the stream.

:func:`write_report` writes into one directory:

* ``report.md`` — the table (model and baselines side by side), the event counts and the run's
  settings;
* ``result.json`` — the ``--json`` object;
* ``trace.csv`` and ``metrics.png`` — the running figures every few events and their plot
  (prequential mode only; the split mode has no stream to follow). The plot uses matplotlib's
  Agg backend (no display needed); matplotlib is the ``report`` extra.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

from stream_cf.evaluation.scoreboard import MODEL, EvaluationResult, Figures

_COLUMNS = (
    ("RMSE", "rmse"),
    ("MAE", "mae"),
    ("warm RMSE", "warm_rmse"),
    ("warm MAE", "warm_mae"),
    ("hit@{n}", "hit_rate"),
    ("NDCG@{n}", "ndcg"),
    ("coverage@{n}", "coverage"),
)


def _cell(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.4f}"


def figures_table(result: EvaluationResult) -> str:
    """A Markdown table: one row per predictor/ranker, one column per figure."""
    cols = [(label.format(n=result.n), key) for label, key in _COLUMNS]
    if not result.rating_metrics:
        cols = [c for c in cols if c[1] in ("hit_rate", "ndcg", "coverage")]
    rows: list[tuple[str, Figures]] = [("UserKNN", result.model)]
    rows += [(name.replace("_", " "), fig) for name, fig in result.baselines.items()]
    if not result.rating_metrics:
        rows = [r for r in rows if r[1].hit_rate is not None or r[0] == "UserKNN"]
    lines = [
        "| | " + " | ".join(label for label, _ in cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for name, fig in rows:
        cells = " | ".join(_cell(getattr(fig, key)) for _, key in cols)
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)


def summary_text(result: EvaluationResult) -> str:
    """The table plus the counts and settings, as printed by the CLI and written to report.md."""
    rate = result.events / result.seconds if result.seconds else float("nan")
    counts = ", ".join(f"{k} {v:,}" for k, v in result.counts.items())
    config = ", ".join(f"{k}={v}" for k, v in result.config.items())
    lines = [
        f"# Evaluation of {result.dataset or 'the stream'} ({result.mode})",
        "",
        figures_table(result),
        "",
        f"- events: {result.events:,} in {result.seconds:.1f} s ({rate:,.0f} events/s)",
        f"- counts: {counts}",
        f"- ranking sample: {result.rank_sample:g} of ratings/purchases, seed {result.seed}; "
        f"top-{result.n}; coverage over a catalogue of {result.catalogue_size:,} items",
        f"- model: UserKNN({config})",
    ]
    for key, value in result.extra.items():
        lines.append(f"- {key.replace('_', ' ')}: {value}")
    return "\n".join(lines) + "\n"


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    return obj


def result_json(result: EvaluationResult) -> str:
    """The one-line JSON object of a run (NaN written as null)."""
    return json.dumps(_json_safe(result.to_json()), sort_keys=False)


def write_trace_csv(result: EvaluationResult, path: Path) -> None:
    keys = list(result.trace)
    rows = zip(*(result.trace[k] for k in keys), strict=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(keys)
        for row in rows:
            writer.writerow(["" if math.isnan(v) else f"{v:.6g}" for v in row])


def plot_trace(result: EvaluationResult, path: Path) -> None:
    """The running figures along the stream: RMSE, MAE and hit-rate@N, model vs baselines."""
    # matplotlib is the optional ``report`` extra: imported only when a plot is asked for
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    trace = result.trace
    x = trace.get("events", [])
    panels: list[tuple[str, str, list[str]]] = []
    if result.rating_metrics:
        names = [MODEL, "global_mean", "user_mean", "item_mean"]
        panels.append(("RMSE", "rmse", names))
        panels.append(("MAE", "mae", names))
    if result.counts.get("ranked", 0):
        panels.append((f"hit-rate@{result.n}", "hit_rate", [MODEL, "popularity"]))
        panels.append((f"NDCG@{result.n}", "ndcg", [MODEL, "popularity"]))
    fig, axes = plt.subplots(
        len(panels) or 1, 1, figsize=(8, 2.6 * max(len(panels), 1)), sharex=True, squeeze=False
    )
    for ax, (title, key, names) in zip(axes[:, 0], panels, strict=False):
        for name in names:
            ys = trace.get(f"{name}.{key}")
            if ys:
                label = "UserKNN" if name == MODEL else name.replace("_", " ")
                ax.plot(x, ys, label=label, linewidth=1.6 if name == MODEL else 1.0)
        ax.set_ylabel(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    axes[-1, 0].set_xlabel("events seen (prequential: predicted, then learnt)")
    axes[0, 0].set_title(f"{result.dataset or 'stream'}: running figures along the stream")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(result: EvaluationResult, out: str | os.PathLike[str]) -> list[Path]:
    """Write report.md, result.json and (prequential) trace.csv + metrics.png into ``out``."""
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / "report.md", directory / "result.json"]
    written[0].write_text(summary_text(result), encoding="utf-8")
    written[1].write_text(result_json(result) + "\n", encoding="utf-8")
    if result.trace.get("events"):
        csv_path, png_path = directory / "trace.csv", directory / "metrics.png"
        write_trace_csv(result, csv_path)
        plot_trace(result, png_path)
        written += [csv_path, png_path]
    return written
