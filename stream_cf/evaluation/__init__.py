"""Evaluation of the engine on a stream: prequential (test-then-learn) and 80/20 split.

The model and the baselines (global, user and item means; popularity) see the same events in
the same protocol; see :mod:`stream_cf.evaluation.prequential` and
:mod:`stream_cf.evaluation.split` for what is predicted and counted.
"""

from stream_cf.evaluation.baselines import BASELINES, Baselines, MeanBaselines, Popularity
from stream_cf.evaluation.prequential import TOP_N, Recommender, prequential
from stream_cf.evaluation.report import result_json, summary_text, write_report
from stream_cf.evaluation.scoreboard import EvaluationResult, Figures
from stream_cf.evaluation.split import split_evaluate

__all__ = [
    "BASELINES",
    "TOP_N",
    "Baselines",
    "EvaluationResult",
    "Figures",
    "MeanBaselines",
    "Popularity",
    "Recommender",
    "prequential",
    "result_json",
    "split_evaluate",
    "summary_text",
    "write_report",
]
