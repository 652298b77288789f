"""schemathesis against the app's own OpenAPI document, in process (ASGI), on a view fed by the
processor's encoder: every answer must match the document (status, content type, schema)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from stream_cf.serve import build_state, create_app, load_serve_settings
from tests.serve.helpers import list_value

pytestmark = pytest.mark.timeout(120)


def _app() -> object:
    state = build_state(
        load_serve_settings(bootstrap_servers="127.0.0.1:1", max_id_length=32),
        follow=False,
    )
    users = ["196", "2", "shop/42", "é", "x y"]  # 196 and shop/42: the examples
    for offset, user in enumerate(users):
        state.view.apply(
            user.encode(),
            list_value(
                user, [("i1", 2.0), ("i2", 1.0)], ratings=[4.5, 3.0] if offset % 2 else None
            ),
            partition=0,
            offset=offset,
            timestamp_ms=1_700_000_000_000,
        )
    state.view.apply(b"2", None, partition=0, offset=len(users))
    state.progress.start_from({0: len(users) + 1})
    state.progress.read_up_to({0: len(users) + 1})
    return create_app(state)


schema = schemathesis.openapi.from_asgi("/openapi.json", _app()).exclude(
    path_regex=r".*/stream$"  # an endless stream: tested on the broker (test_stream.py)
)


def test_the_document_lists_the_routes() -> None:
    paths = set(schema.raw_schema["paths"])
    assert {
        "/users/{user_id}/recommendations",
        "/users/{user_id}/recommendations/stream",
        "/users",
        "/stats",
        "/healthz",
        "/metrics",
    } <= paths


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_api_matches_its_openapi_document(case: schemathesis.Case) -> None:
    case.call_and_validate()


def test_the_examples_are_held_lists() -> None:
    async def answers() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=_app())  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
            return [await client.get(f"/users/{u}/recommendations") for u in ("196", "shop%2F42")]

    for answer in asyncio.run(answers()):
        assert answer.status_code == 200 and answer.json()["items"], answer.text
