"""One retry helper: run an action again after the errors it may recover from, with a backoff.

:func:`retry` runs ``action`` until it returns. An exception of a ``retry_on`` type is a failed
attempt: ``on_error`` sees it (e.g. a log line for every failure), ``give_up`` decides whether to
stop (then ``fail`` says what to raise, from the last error; without ``fail`` the error itself is
raised), else ``on_retry`` sees it (the log line "retrying in ...", or whatever must be done before
trying again), the helper sleeps ``backoff(number, error)`` seconds and tries again. Any other
exception propagates at once: what is fatal is whatever ``retry_on`` leaves out (or the action
turns into another exception itself).

The waits (:func:`exponential`) and the give-up rules (:func:`within`, :func:`after_attempts`,
:func:`after_stop`, :func:`any_of`) are small callables, so that each call site states its own
policy in one place::

    retry(
        connect,
        retry_on=KafkaError,
        backoff=exponential(first=0.25, cap=5.0),
        give_up=any_of(within(120.0, counting_the_wait=True), lambda _: stop.is_set()),
        on_retry=lambda a: logger.warning("retrying in %.1fs (%r)", a.delay, a.error),
    )
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

_T = TypeVar("_T")

ErrorTypes = type[BaseException] | tuple[type[BaseException], ...]


@dataclass(frozen=True)
class Attempt:
    """A failed attempt: its number (1 for the first), its error, the wait before the next
    attempt and the seconds since the first attempt started."""

    number: int
    error: BaseException
    delay: float
    elapsed: float


Backoff = Callable[[int, BaseException], float]
GiveUp = Callable[[Attempt], bool]


def exponential(first: float, cap: float, factor: float = 2.0) -> Backoff:
    """Waits ``first``, ``first * factor``, ``first * factor**2``, ... never above ``cap``."""

    def delay(number: int, _error: BaseException) -> float:
        wait = first
        for _ in range(number - 1):
            wait = min(wait * factor, cap)
            if wait >= cap:
                break
        return wait

    return delay


def no_wait(_number: int, _error: BaseException) -> float:
    """Try again at once."""
    return 0.0


def never(_attempt: Attempt) -> bool:
    """Never give up (until the action succeeds or raises something not retried)."""
    return False


def within(seconds: float, *, counting_the_wait: bool = False) -> GiveUp:
    """Give up once ``seconds`` passed since the first attempt started (``counting_the_wait``:
    once the next attempt would start after that)."""

    def give_up(attempt: Attempt) -> bool:
        elapsed = attempt.elapsed + (attempt.delay if counting_the_wait else 0.0)
        return elapsed > seconds

    return give_up


def after_attempts(count: int) -> GiveUp:
    """Give up after ``count`` failed attempts."""
    return lambda attempt: attempt.number >= count


def after_stop(stop_requested: Callable[[], bool], grace: float) -> GiveUp:
    """Give up ``grace`` seconds after the first failure that found a stop requested."""
    deadline: float | None = None

    def give_up(_attempt: Attempt) -> bool:
        nonlocal deadline
        if not stop_requested():
            return False
        deadline = deadline or time.monotonic() + grace
        return time.monotonic() > deadline

    return give_up


def any_of(*rules: GiveUp) -> GiveUp:
    """Give up as soon as one of ``rules`` says so (they are asked in order)."""
    return lambda attempt: any(rule(attempt) for rule in rules)


def retry(
    action: Callable[[], _T],
    *,
    retry_on: ErrorTypes,
    backoff: Backoff,
    give_up: GiveUp = never,
    fail: Callable[[Attempt], BaseException] | None = None,
    on_error: Callable[[Attempt], None] | None = None,
    on_retry: Callable[[Attempt], None] | None = None,
    on_success: Callable[[int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> _T:
    """``action()``, tried again after each ``retry_on`` error (see the module doc).

    ``on_success`` is called with the number of attempts when one succeeds after a failure."""
    started = time.monotonic()
    number = 0
    while True:
        number += 1
        try:
            result = action()
        except retry_on as exc:
            attempt = Attempt(number, exc, backoff(number, exc), time.monotonic() - started)
            if on_error is not None:
                on_error(attempt)
            if give_up(attempt):
                if fail is None:
                    raise
                raise fail(attempt) from exc
            if on_retry is not None:
                on_retry(attempt)
            if attempt.delay > 0:
                sleep(attempt.delay)
            continue
        if number > 1 and on_success is not None:
            on_success(number)
        return result
