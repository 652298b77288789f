"""The hot route, ``GET /users/{user_id}/recommendations[?n=N]`` for a held user, answered in a
few µs of plain ASGI instead of FastAPI's request machinery (about 300 µs a request here, most of
it solving the parameters).

:class:`FastPath` answers only what it can answer exactly as the FastAPI route would: a GET whose
decoded path is ``/users/<id>/recommendations`` with an id of 1 to ``max_id_length`` characters,
no query or exactly ``n=<1..1000>``, and a user the view holds. The answer is the same bytes
(:meth:`HeldList.response`) with the same headers; it is counted in the request metrics like the
route's other answers (timed to the answer's start). Everything else (an unknown user, a bad
``n``, ``?fallback=popular``, any other route) goes on to the FastAPI app, which validates,
answers and documents it: the OpenAPI document describes both, and the tests (schemathesis
among them) go through both.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from stream_cf.serve.metrics import ServeMetrics
from stream_cf.serve.view import ListView

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]

ROUTE = "/users/{user_id}/recommendations"
_PREFIX = "/users/"
_SUFFIX = "/recommendations"
_N_ONLY = re.compile(rb"n=([1-9][0-9]{0,3})")


class FastPath:
    """ASGI middleware answering a held user's list (counted in ``metrics`` as the route's
    200s); the rest goes to ``app``."""

    def __init__(
        self,
        app: ASGIApp,
        view: ListView,
        metrics: ServeMetrics,
        *,
        max_id_length: int,
        max_n: int,
        max_target_length: int,
    ) -> None:
        self.app = app
        self.view = view
        self.metrics = metrics
        self.max_id_length = max_id_length
        self.max_n = max_n
        self.max_target_length = max_target_length

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            started = time.perf_counter()
            body = self._answer(scope)
            if body is not None:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-length", str(len(body)).encode()),
                            (b"content-type", b"application/json"),
                        ],
                    }
                )
                self.metrics.observe(ROUTE, "GET", 200, time.perf_counter() - started)
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def _answer(self, scope: dict[str, Any]) -> bytes | None:
        path: str = scope["path"]
        if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
            return None
        query: bytes = scope.get("query_string", b"")
        if len(scope.get("raw_path") or b"") + len(query) > self.max_target_length:
            return None  # a 414, from the app
        user_id = path[len(_PREFIX) : -len(_SUFFIX)]
        if not 1 <= len(user_id) <= self.max_id_length:
            return None
        n: int | None = None
        if query:
            match = _N_ONLY.fullmatch(query)
            if match is None:
                return None
            n = int(match.group(1))
            if n > self.max_n:
                return None
        held = self.view.get(user_id)
        if held is None:
            return None
        return held.response(n)
