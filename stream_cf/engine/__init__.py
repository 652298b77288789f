"""The UserKNN engine: exact incremental user-based kNN over a stream of events.

Modules, one concept each: :mod:`storage` (growable arrays and id maps), :mod:`pairs` (additive
pair sums and their exact block update), :mod:`similarity` (the formulas read from the sums),
:mod:`state` (the whole state and the single-cell update), :mod:`batch` (micro-batches),
:mod:`knn` (vectorized neighbourhood selection), :mod:`baseline` (the knn_baseline predictor's
terms), :mod:`predict` (the estimators and recommendations), :mod:`validation` (settings and
event fields), :mod:`model` (the :class:`UserKNN` API),
:mod:`persist` (save/load) and :mod:`results` (the values handed back).
"""

from stream_cf.engine.model import UserKNN
from stream_cf.engine.results import BatchEffect, Explanation, Neighbour, Recommendations

__all__ = ["BatchEffect", "Explanation", "Neighbour", "Recommendations", "UserKNN"]
