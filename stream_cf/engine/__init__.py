"""The UserKNN engine: exact incremental user-based kNN over a stream of events.

Modules, one concept each, importing one way (each only from those listed before it):
:mod:`storage` (growable arrays, id maps, row pools), :mod:`validation` (event fields),
:mod:`config` (the frozen :class:`EngineConfig`), :mod:`results` (the values handed back),
:mod:`ratings` (the ratings per user and per item), :mod:`products`, :mod:`scatter` and
:mod:`pairs` (the pair sums and their exact update, by blocks or pair by pair), :mod:`owned` (the
owned users' rows of them, scale-out), :mod:`state` (the whole state), :mod:`similarity` (the
formulas), :mod:`neighbours` (similarity rows), :mod:`knn` (N(i;u) selection), :mod:`baseline`,
:mod:`ranking`, :mod:`predict` (the estimators and lists), :mod:`commit`, :mod:`fast`, :mod:`batch`
(writes), :mod:`rebuild` (sums from the ratings), :mod:`ownership` (own/disown: owned rows built
from the ratings), :mod:`persist` (save/load), and :mod:`model` (the :class:`UserKNN` face on top).
"""

from stream_cf.engine.model import UserKNN
from stream_cf.engine.results import BatchEffect, Explanation, Neighbour, Recommendations

__all__ = ["BatchEffect", "Explanation", "Neighbour", "Recommendations", "UserKNN"]
