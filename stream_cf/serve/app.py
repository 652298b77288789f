"""The HTTP API (FastAPI): the lists of the view, their changes as Server-Sent Events, health,
metrics and the live page.

| route | answer |
| --- | --- |
| ``GET /users/{user_id}/recommendations?n=&fallback=popular`` | the latest list (404 unknown) |
| ``GET /users/{user_id}/recommendations/stream`` | SSE: the current list, then every new one |
| ``GET /users?prefix=&limit=`` | some user ids with a list (the page's picker) |
| ``GET /stats`` | counts, rates and lags (the page's side panel) |
| ``GET /healthz`` | 200 once caught up with the topic, else 503 |
| ``GET /metrics`` | Prometheus text |
| ``GET /`` | the live page; ``/openapi.json`` and ``/docs``: the OpenAPI document |

User ids are path segments, percent-encoded (any character, ``/`` as ``%2F``); after decoding
they may have 1 to ``max_id_length`` characters (422 otherwise, FastAPI's validation answer). A
request target longer than ``max_target_length`` bytes is refused with 414 before routing.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations,
# some of which are local to create_app.

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any, Literal

import orjson
from fastapi import FastAPI, Path, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.convertors import Convertor, register_url_convertor

from stream_cf.serve.changes import ChangeHub
from stream_cf.serve.fast_path import FastPath
from stream_cf.serve.follower import TopicFollower
from stream_cf.serve.held_list import HeldList, popular_body
from stream_cf.serve.metrics import CONTENT_TYPE, RequestMetrics, ServeMetrics
from stream_cf.serve.progress import TopicProgress
from stream_cf.serve.schemas import Health, Problem, Recommendations, Stats, Users
from stream_cf.serve.settings import ServeSettings
from stream_cf.serve.view import POPULAR_REASON, Change, ListView

logger = logging.getLogger(__name__)

MAX_N = 1000


class _AnyText(Convertor[str]):
    """A path parameter of any characters, ``/`` and line breaks included (Starlette's ``path``
    convertor stops at a line break: an id like ``"a\\nb"``, sent as ``a%0Ab``, would not match)."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anytext", _AnyText())
KEEP_ALIVE_SECONDS = 15.0
JSON = "application/json"


@dataclass
class ServeState:
    """What the app serves: the view, the follower's progress, the change hub, the follower."""

    settings: ServeSettings
    view: ListView
    progress: TopicProgress
    hub: ChangeHub
    follower: TopicFollower | None


def build_state(settings: ServeSettings, *, follow: bool = True) -> ServeState:
    """A view and its follower (not started); ``follow=False`` for a view fed by hand."""
    view = ListView(settings.popular_size)
    progress = TopicProgress()
    hub = ChangeHub()
    view.add_listener(hub.publish)
    follower = TopicFollower(settings, view, progress) if follow else None
    return ServeState(settings, view, progress, hub, follower)


def create_app(state: ServeState) -> "ServeApp":
    """The ASGI app over ``state``; its lifespan starts and stops the follower."""
    settings = state.settings
    view, progress, hub = state.view, state.progress, state.hub

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        hub.bind(asyncio.get_running_loop())
        if state.follower is not None:
            state.follower.start()
        try:
            yield
        finally:
            if state.follower is not None:
                await asyncio.to_thread(state.follower.stop)

    app = FastAPI(
        title="stream-cf serve",
        summary="The latest recommendations of each user, read from the processor's output topic.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.serve = state
    metrics = ServeMetrics(view, progress.snapshot, lambda: hub.watchers)

    UserId = Annotated[
        str,
        Path(
            min_length=1,
            max_length=settings.max_id_length,
            description="the user id, percent-encoded (any character; '/' as %2F)",
            openapi_examples={
                "a user": {"value": "196"},
                "an id with a slash": {"value": "shop/42"},
            },
        ),
    ]

    @app.get(
        "/users/{user_id:anytext}/recommendations/stream",
        response_class=StreamingResponse,
        responses={
            200: {
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
                "description": "events 'list' (data: the list, as GET .../recommendations), "
                "'erased' (a tombstone) and 'missing' (no list yet); comments as keep-alives",
            }
        },
        summary="Server-Sent Events: the user's current list, then every new one",
    )
    async def stream(user_id: UserId) -> StreamingResponse:
        return StreamingResponse(
            _events(user_id),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def _events(user_id: str) -> AsyncIterator[bytes]:
        with hub.watch(user_id) as watcher:
            held = view.get(user_id)
            last: tuple[int, int] | None = None
            yield b"retry: 1000\n\n"
            if held is None:
                yield _sse("missing", None, orjson.dumps({"user_id": user_id}))
            else:
                last = (held.partition, held.offset)
                yield _sse("list", last, held.response())
            while True:
                change = await watcher.next(KEEP_ALIVE_SECONDS)
                if watcher.closed:
                    return  # the server stops
                if change is None:
                    yield b": keep-alive\n\n"
                    continue
                position = (change.partition, change.offset)
                if last is not None and position[0] == last[0] and position[1] <= last[1]:
                    continue  # already sent (it arrived while the stream started)
                last = position
                yield _change_event(change)

    @app.get(
        "/users/{user_id:anytext}/recommendations",
        response_model=Recommendations,
        responses={
            404: {"model": Problem, "description": "no list for this user"},
            414: {"model": Problem, "description": "the request target is too long"},
        },
        summary="The user's latest list",
    )
    async def recommendations(
        user_id: UserId,
        n: Annotated[
            int | None, Query(ge=1, le=MAX_N, description="at most this many items (default all)")
        ] = None,
        fallback: Annotated[
            Literal["popular"] | None,
            Query(description="popular: answer an unknown user with the popularity list"),
        ] = None,
    ) -> Response:
        held = view.get(user_id)
        if held is not None:
            return Response(held.response(n), media_type=JSON)
        if fallback == "popular":
            items = view.popular(settings.popular_size if n is None else n)
            return Response(popular_body(user_id, items, POPULAR_REASON), media_type=JSON)
        return JSONResponse({"detail": "no list for this user"}, status_code=404)

    @app.get("/users", response_model=Users, summary="Some users with a list (the page's picker)")
    async def users(
        prefix: Annotated[str, Query(max_length=settings.max_id_length)] = "",
        limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    ) -> Response:
        found, matching = view.users(prefix, limit)
        body = {"users": found, "matching": matching, "held": len(view)}
        return Response(orjson.dumps(body), media_type=JSON)

    @app.get("/stats", response_model=Stats, summary="Counts, rates and lags (the page's panel)")
    async def stats() -> Response:
        snapshot = progress.snapshot()
        body = {
            "ready": snapshot.ready,
            "lists": len(view),
            "records": view.records,
            "tombstones": view.tombstones,
            "unreadable": view.unreadable,
            "lag_records": snapshot.lag,
            "lists_per_second": snapshot.lists_per_second,
            "sse_streams": hub.watchers,
            "inputs": [
                {
                    "topic": entry.topic,
                    "events_per_second": entry.events_per_second,
                    "lag_records": entry.lag,
                }
                for entry in snapshot.inputs
            ],
        }
        return Response(orjson.dumps(body), media_type=JSON)

    @app.get(
        "/healthz",
        response_model=Health,
        responses={503: {"model": Health, "description": "not caught up yet, or failed"}},
        summary="200 once the topic was read up to its end at start-up, else 503",
    )
    async def healthz() -> Response:
        follower_failed = state.follower is not None and (
            state.follower.failed is not None or (progress.ready and not state.follower.alive)
        )
        ready = progress.ready and not follower_failed
        status = "ready" if ready else ("failed" if follower_failed else "starting")
        body = {"status": status, "lists": len(view), "lag_records": progress.snapshot().lag}
        return Response(orjson.dumps(body), status_code=200 if ready else 503, media_type=JSON)

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}},
        summary="Prometheus metrics",
    )
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    page = resources.files("stream_cf.serve").joinpath("static/index.html").read_bytes()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> Response:
        return Response(page, media_type="text/html; charset=utf-8")

    return ServeApp(app, state, metrics)


class ServeApp:
    """The ASGI app served: the hot route's fast path (:mod:`stream_cf.serve.fast_path`), else
    the request metrics, the 414 check and the FastAPI app (``api``). Outside FastAPI's own
    middleware stack, so that the hot route pays for none of it."""

    def __init__(self, api: FastAPI, state: ServeState, metrics: ServeMetrics) -> None:
        self.api = api
        self.state = state
        settings = state.settings
        limited = TargetLimit(api, max_length=settings.max_target_length)
        self._app = FastPath(
            RequestMetrics(limited, metrics),
            state.view,
            metrics,
            max_id_length=settings.max_id_length,
            max_n=MAX_N,
            max_target_length=settings.max_target_length,
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)


def _sse(event: str, position: tuple[int, int] | None, data: bytes) -> bytes:
    head = f"event: {event}\n"
    if position is not None:
        head += f"id: {position[0]}:{position[1]}\n"
    return head.encode() + b"data: " + data + b"\n\n"


def _change_event(change: Change) -> bytes:
    position = (change.partition, change.offset)
    held: HeldList | None = change.held
    if held is None:
        return _sse("erased", position, orjson.dumps({"user_id": change.user_id}))
    return _sse("list", position, held.response())


class TargetLimit:
    """ASGI middleware: 414 for a request target (raw path and query) over ``max_length``."""

    def __init__(self, app: Callable[..., Awaitable[None]], max_length: int) -> None:
        self.app = app
        self.max_length = max_length

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path") or scope["path"].encode()
            if len(raw) + len(scope.get("query_string", b"")) > self.max_length:
                response = JSONResponse(
                    {"detail": f"the request target is longer than {self.max_length} bytes"},
                    status_code=414,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
