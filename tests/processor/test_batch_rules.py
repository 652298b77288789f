"""BatchChecker (unrate of a missing pair) on a fake, and the co-rater set the refresh policy
reads from the engine."""

from __future__ import annotations

from stream_cf.engine import UserKNN, validation
from stream_cf.events import ForgetUserEvent, PurchaseEvent, RatingEvent, UnrateEvent
from stream_cf.processor.semantics import BatchChecker


class FakeEngine:
    def __init__(self, ratings: dict[str, dict[str, float]]) -> None:
        self.ratings = ratings

    @property
    def n_users(self) -> int:
        return len(self.ratings)

    def has_user(self, user: str) -> bool:
        return user in self.ratings

    def user_items(self, user: str) -> dict[str, float]:
        return dict(self.ratings[user])

    def raters(self, item: str) -> list[str]:
        return [u for u, items in self.ratings.items() if item in items]

    def implicit_amount(self, event: RatingEvent | PurchaseEvent) -> float:
        return event.rating if isinstance(event, RatingEvent) else event.quantity

    def accumulate(self, old: float | None, amount: float) -> float:
        return validation.accumulated(old, amount, None)


ENGINE = FakeEngine(
    {"a": {"x": 1.0, "y": 2.0}, "b": {"y": 3.0}, "c": {"z": 4.0}, "d": {"w": 5.0, "z": 1.0}}
)


def test_unrate_needs_a_pair_that_exists_at_that_point_of_the_batch() -> None:
    checker = BatchChecker(ENGINE, implicit=False)
    assert checker.check(UnrateEvent(user_id="a", item_id="x")) is None
    reason = checker.check(UnrateEvent(user_id="a", item_id="x"))  # already taken back
    assert reason is not None and reason[0] == "unknown_rating"
    assert checker.check(RatingEvent(user_id="a", item_id="x", rating=3.0)) is None
    assert checker.check(UnrateEvent(user_id="a", item_id="x")) is None
    assert checker.check(ForgetUserEvent(user_id="b")) is None
    assert checker.check(UnrateEvent(user_id="b", item_id="y")) is not None
    assert checker.check(UnrateEvent(user_id="new", item_id="y")) is not None
    purchase = checker.check(PurchaseEvent(user_id="a", item_id="x"))
    assert purchase is not None and purchase[0] == "unsupported_event"
    assert (
        BatchChecker(ENGINE, implicit=True).check(PurchaseEvent(user_id="a", item_id="x")) is None
    )


def test_co_raters_are_the_users_sharing_an_item() -> None:
    engine = UserKNN()
    for user, items in ENGINE.ratings.items():
        for item, value in items.items():
            engine.rate(user, item, value)
    assert engine.co_raters(["a"]) == {"a", "b"}
    assert engine.co_raters(["c"]) == {"c", "d"}
    assert engine.co_raters(["b", "c", "gone"]) == {"a", "b", "c", "d"}
    assert engine.co_raters([]) == set()
    engine.forget_user("b")
    assert engine.co_raters(["a"]) == {"a"}
