"""Validation of the engine's settings and of event fields, with machine-readable reasons.

Bad input raises :class:`~stream_cf.exceptions.InvalidEvent` (reason codes ``empty_id``,
``invalid_field``, ``not_finite``, ``rating_out_of_scale``, ``value_too_large``,
``unknown_type``) before anything is changed; contradictory settings raise
:class:`~stream_cf.exceptions.ConfigError` naming every offending value.

Every stored value (a rating, an implicit weight) is at most :data:`VALUE_LIMIT` in absolute
value, so that no sum the engine keeps can overflow.
"""

from __future__ import annotations

import math

from stream_cf.engine import similarity
from stream_cf.engine.ranking import RankConfig
from stream_cf.events import Event, ForgetUserEvent, PurchaseEvent, RatingEvent, UnrateEvent
from stream_cf.exceptions import ConfigError, InvalidEvent

VALUE_LIMIT = 1e12
"""The largest absolute value stored: a rating scale's ends, a purchase quantity, an accumulated
implicit weight. Squares (at most 1e24) summed over a billion items stay below float32's largest
value (3.4e38) and far below float64's (1.8e308): no pair sum, norm or score can overflow."""


def check_ids(user: object, item: object | None = None) -> None:
    """InvalidEvent unless ``user`` (and ``item`` when given) are non-empty strings."""
    for name, value in (("user_id", user), ("item_id", item)):
        if name == "item_id" and item is None:
            continue
        if not isinstance(value, str):
            raise InvalidEvent("invalid_field", f"{name} must be a string, not {value!r}")
        if value == "":
            raise InvalidEvent("empty_id", f"{name} is empty")


def rating_value(value: float, scale: tuple[float, float]) -> float:
    """A rating as float: finite and within ``scale`` (both feedback modes)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEvent("invalid_field", f"rating must be a number, not {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise InvalidEvent("not_finite", f"rating {value} is not a finite number")
    low, high = scale
    if not low <= value <= high:
        raise InvalidEvent(
            "rating_out_of_scale", f"rating {value} is outside the scale [{low}, {high}]"
        )
    return value


def quantity_value(quantity: float) -> float:
    """A purchase quantity as float: finite and > 0."""
    if isinstance(quantity, bool) or not isinstance(quantity, int | float):
        raise InvalidEvent("invalid_field", f"quantity must be a number, not {quantity!r}")
    quantity = float(quantity)
    if not math.isfinite(quantity):
        raise InvalidEvent("not_finite", f"quantity {quantity} is not a finite number")
    if quantity <= 0:
        raise InvalidEvent("invalid_field", f"quantity must be > 0, got {quantity}")
    if quantity > VALUE_LIMIT:
        raise InvalidEvent(
            "value_too_large", f"quantity {quantity:g} is above the limit {VALUE_LIMIT:g}"
        )
    return quantity


def accumulated(old: float | None, amount: float, cap: float | None) -> float:
    """An implicit weight after adding ``amount``: ``min(old + amount, cap)``, or InvalidEvent
    ``value_too_large`` if that is above :data:`VALUE_LIMIT` (or not a finite number)."""
    value = (0.0 if old is None else old) + amount
    if cap is not None:
        value = min(value, cap)
    if not value <= VALUE_LIMIT:  # also catches inf and NaN
        raise InvalidEvent(
            "value_too_large",
            f"the accumulated weight {value:g} would be above the limit {VALUE_LIMIT:g}",
        )
    return value


def check_config(
    *,
    ranking: RankConfig,
    similarity_name: str,
    k: int,
    min_k: int,
    min_support: int,
    min_similarity: float | None,
    shrinkage: float,
    scale: tuple[float, float],
    feedback: str,
    weights: dict[str, float],
    cap: float | None,
    predictor: str = "knn_means",
    baseline_regs: tuple[float, float] = (0.0, 0.0),
    damping: float = 0.0,
) -> None:
    problems = ranking.problems()
    if similarity_name not in similarity.SIMILARITIES:
        problems.append(f"similarity={similarity_name!r} (one of {similarity.SIMILARITIES})")
    if feedback not in ("explicit", "implicit"):
        problems.append(f"feedback={feedback!r} (explicit or implicit)")
    if feedback == "implicit" and similarity_name != "cosine":
        problems.append(
            f"similarity={similarity_name!r} with feedback='implicit' (implicit feedback uses "
            "similarity='cosine', on the full weight vectors)"
        )
    if k < 1:
        problems.append(f"k={k} (must be >= 1)")
    if min_k < 0:
        problems.append(f"min_k={min_k} (must be >= 0)")
    if min_support < 0:
        problems.append(f"min_support={min_support} (must be >= 0)")
    if min_similarity is not None and not math.isfinite(min_similarity):
        problems.append(f"min_similarity={min_similarity} (must be finite or None)")
    if not (math.isfinite(shrinkage) and shrinkage >= 0):
        problems.append(f"shrinkage={shrinkage} (must be >= 0)")
    if not (-VALUE_LIMIT <= scale[0] < scale[1] <= VALUE_LIMIT):
        problems.append(f"rating_scale={scale} (need low < high, within ±{VALUE_LIMIT:g})")
    if any(not math.isfinite(w) or w <= 0 for w in weights.values()):
        problems.append(f"implicit_weights={weights} (must be finite and > 0)")
    if cap is not None and not (math.isfinite(cap) and cap > 0):
        problems.append(f"implicit_cap={cap} (must be > 0 or None)")
    problems += _predictor_problems(predictor, baseline_regs, damping)
    if problems:
        raise ConfigError("invalid UserKNN settings: " + "; ".join(problems))


PREDICTORS = ("knn_means", "knn_baseline")


def _number(value: object) -> float | None:
    """``value`` as a float if it is a real number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _predictor_problems(predictor: str, regs: tuple[float, float], damping: float) -> list[str]:
    """The rating predictor and its parameters (implicit feedback does not use them, but they
    must still be valid: they are saved with the state)."""
    problems = []
    if predictor not in PREDICTORS:
        problems.append(f"predictor={predictor!r} (one of {PREDICTORS})")
    for name, value in (
        ("baseline_reg_items", regs[0]),
        ("baseline_reg_users", regs[1]),
        ("damping", damping),
    ):
        number = _number(value)
        if number is None or not (math.isfinite(number) and number >= 0):
            problems.append(f"{name}={value!r} (must be a finite number >= 0)")
    return problems


def event_kind(event: Event) -> str:
    """The event's type, or InvalidEvent for an object that is not one of the event models."""
    if isinstance(event, RatingEvent | PurchaseEvent | UnrateEvent | ForgetUserEvent):
        return event.type
    raise InvalidEvent("unknown_type", f"not an event: {type(event).__name__}")
