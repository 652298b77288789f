"""The fast path answers exactly what the FastAPI route answers, and only when it can."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from stream_cf.serve import build_state, create_app, load_serve_settings
from tests.serve.helpers import list_value

pytestmark = pytest.mark.timeout(30)

TARGETS = [
    "/users/1/recommendations",
    "/users/1/recommendations?n=1",
    "/users/1/recommendations?n=1000",
    "/users/1/recommendations?n=01",
    "/users/1/recommendations?n=0",
    "/users/1/recommendations?n=1001",
    "/users/1/recommendations?n=1&n=2",
    "/users/1/recommendations?fallback=popular",
    "/users/a%2Fb/recommendations",
    "/users/a%0Ab/recommendations",
    "/users/a%0Ab/recommendations?n=0",
    "/users/no%0Abody/recommendations",
    "/users/nobody/recommendations",
    "/users//recommendations",
    "/users/" + "x" * 9 + "/recommendations",
]


def test_same_answers_with_and_without_the_fast_path() -> None:
    state = build_state(
        load_serve_settings(bootstrap_servers="127.0.0.1:1", max_id_length=8), follow=False
    )
    for offset, user in enumerate(["1", "a/b", "a\nb"]):
        value = list_value(user, [("x", 2.0), ("y", 1.0)], ratings=[4.0, 3.0])
        state.view.apply(user.encode(), value, partition=0, offset=offset, timestamp_ms=0)
    served = create_app(state)

    async def answers(app: object, target: str) -> tuple[int, dict[str, str], bytes]:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
            answer = await client.get(target)
            headers = {k: v for k, v in answer.headers.items() if k != "content-length"}
            body = answer.content.replace(b'"age_seconds":', b"", 1).split(b",", 1)[-1]
            return answer.status_code, headers, body

    for target in TARGETS:
        fast = asyncio.run(answers(served, target))
        plain = asyncio.run(answers(served.api, target))
        assert fast == plain, target
