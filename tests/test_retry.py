"""The retry helper: what is retried, the waits, the give-up rules, the callbacks (no broker)."""

from __future__ import annotations

import pytest

from stream_cf.retry import (
    Attempt,
    after_attempts,
    after_stop,
    any_of,
    exponential,
    no_wait,
    retry,
    within,
)


class Flaky:
    """Fails with ``error`` ``failures`` times, then returns ``"ok"``."""

    def __init__(self, failures: int, error: BaseException | None = None) -> None:
        self.failures = failures
        self.calls = 0
        self.error = error or ConnectionError("down")

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


def test_exponential_doubles_up_to_the_cap() -> None:
    delay = exponential(first=0.25, cap=2.0)
    error = ValueError()
    assert [delay(n, error) for n in range(1, 7)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    # a cap below the first wait: the first wait as given, then the cap
    assert [exponential(first=0.25, cap=0.1)(n, error) for n in (1, 2, 3)] == [0.25, 0.1, 0.1]


def test_retries_until_success_sleeping_the_backoff() -> None:
    slept: list[float] = []
    retried: list[Attempt] = []
    succeeded: list[int] = []
    action = Flaky(3)
    result = retry(
        action,
        retry_on=ConnectionError,
        backoff=exponential(first=0.25, cap=0.6),
        on_retry=retried.append,
        on_success=succeeded.append,
        sleep=slept.append,
    )
    assert result == "ok"
    assert action.calls == 4
    assert slept == [0.25, 0.5, 0.6]
    assert [a.number for a in retried] == [1, 2, 3]
    assert all(isinstance(a.error, ConnectionError) for a in retried)
    assert succeeded == [4]


def test_no_success_callback_on_the_first_try() -> None:
    succeeded: list[int] = []
    assert retry(Flaky(0), retry_on=ConnectionError, backoff=no_wait, on_success=succeeded.append)
    assert succeeded == []


def test_other_errors_are_not_retried() -> None:
    action = Flaky(5, KeyError("fatal"))
    with pytest.raises(KeyError):
        retry(action, retry_on=ConnectionError, backoff=no_wait)
    assert action.calls == 1


def test_giving_up_raises_the_error_or_what_fail_says() -> None:
    slept: list[float] = []
    errors: list[int] = []
    retried: list[int] = []
    with pytest.raises(ConnectionError):
        retry(
            Flaky(10),
            retry_on=ConnectionError,
            backoff=no_wait,
            give_up=after_attempts(3),
            on_error=lambda a: errors.append(a.number),
            on_retry=lambda a: retried.append(a.number),
            sleep=slept.append,
        )
    # on_error sees every failure, on_retry only those tried again; no wait of zero is slept
    assert (errors, retried, slept) == ([1, 2, 3], [1, 2], [])

    with pytest.raises(RuntimeError, match="could not connect: ConnectionError") as info:
        retry(
            Flaky(10),
            retry_on=ConnectionError,
            backoff=no_wait,
            give_up=after_attempts(1),
            fail=lambda a: RuntimeError(f"could not connect: {a.error!r}"),
        )
    assert isinstance(info.value.__cause__, ConnectionError)


def test_within_counts_the_next_wait_if_asked() -> None:
    attempt = Attempt(number=1, error=ValueError(), delay=1.0, elapsed=9.5)
    assert not within(10.0)(attempt)
    assert within(10.0, counting_the_wait=True)(attempt)


def test_after_stop_gives_a_grace_period_from_the_first_failure_after_the_stop() -> None:
    stop = [False]
    attempt = Attempt(number=1, error=ValueError(), delay=0.0, elapsed=0.0)
    give_up = after_stop(lambda: stop[0], grace=0.0)
    assert not give_up(attempt)
    stop[0] = True
    assert give_up(attempt) or give_up(attempt)  # the grace is 0 s: over at once
    long = after_stop(lambda: True, grace=60.0)
    assert not long(attempt)
    assert not long(attempt)


def test_any_of_asks_the_rules_in_order() -> None:
    asked: list[str] = []

    def rule(name: str, answer: bool) -> object:
        def ask(_attempt: Attempt) -> bool:
            asked.append(name)
            return answer

        return ask

    attempt = Attempt(number=1, error=ValueError(), delay=0.0, elapsed=0.0)
    assert any_of(rule("a", False), rule("b", True), rule("c", True))(attempt)  # type: ignore[arg-type]
    assert asked == ["a", "b"]
