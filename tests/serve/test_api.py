"""``GET /users/{id}/recommendations``, ``/healthz``, ``/metrics``, ``/users``, ``/stats`` on a
server following a real topic."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import orjson
import pytest

from stream_cf.serve import BackgroundServer
from stream_cf.serve.view import POPULAR_REASON
from tests.kafka_utils import create_topic, unique_name, wait_until
from tests.serve.helpers import list_value, path_of, publish

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(60)]

Serve = Callable[..., BackgroundServer]

ODD_IDS = ["a/b", "é ü 東京", "?x=1&y#z", "%41", "..", " lead and trail ", "+plus+", "a\nb\t"]


def test_returns_what_was_published(kafka_bootstrap: str, output_topic: str, serve: Serve) -> None:
    values = {
        "196": list_value("196", [("242", 0.31), ("302", 0.2)], ratings=[4.61, 3.9]),
        "7": list_value("7", [("50", 1.5)], fallback="unknown user: popularity"),
        **{user: list_value(user, [("i", 1.0)], input_offset=9) for user in ODD_IDS},
    }
    publish(kafka_bootstrap, output_topic, list(values.items()))
    server = serve(output_topic)
    assert server.wait_ready(30)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/healthz").status_code == 200
        for offset, (user, value) in enumerate(values.items()):
            response = client.get(path_of(user))
            assert response.status_code == 200, (user, response.text)
            assert response.headers["content-type"] == "application/json"
            body = response.json()
            published = orjson.loads(value)
            assert {k: body[k] for k in published} == published, user
            assert (body["partition"], body["offset"]) == (0, offset)
            assert 0 <= body["age_seconds"] < 60
        first = client.get(path_of("196"), params={"n": 1}).json()
        assert first["items"] == [{"item_id": "242", "score": 0.31, "rating": 4.61}]
        assert client.get("/users", params={"prefix": "19"}).json() == {
            "users": ["196"],
            "matching": 1,
            "held": len(values),
        }


def test_unknown_user_and_popular_fallback(
    kafka_bootstrap: str, output_topic: str, serve: Serve
) -> None:
    publish(
        kafka_bootstrap,
        output_topic,
        [
            ("1", list_value("1", [("x", 1.0), ("y", 0.5)])),
            ("2", list_value("2", [("y", 1.0)])),
        ],
    )
    server = serve(output_topic)
    assert server.wait_ready(30)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        missing = client.get(path_of("nobody"))
        assert missing.status_code == 404
        assert missing.json() == {"detail": "no list for this user"}
        popular = client.get(path_of("nobody"), params={"fallback": "popular"}).json()
        assert popular["user_id"] == "nobody"
        assert popular["fallback"] == POPULAR_REASON
        assert popular["items"] == [
            {"item_id": "y", "score": 1.0},
            {"item_id": "x", "score": 0.5},
        ]
        one = client.get(path_of("nobody"), params={"fallback": "popular", "n": 1}).json()
        assert [item["item_id"] for item in one["items"]] == ["y"]
        # a known user gets their own list, fallback asked or not
        own = client.get(path_of("1"), params={"fallback": "popular"}).json()
        assert own["fallback"] is None and own["items"][0]["item_id"] == "x"


def test_follows_updates_and_tombstones(
    kafka_bootstrap: str, output_topic: str, serve: Serve
) -> None:
    publish(kafka_bootstrap, output_topic, [("u", list_value("u", [("x", 1.0)]))])
    server = serve(output_topic)
    assert server.wait_ready(30)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get(path_of("u")).json()["items"] == [{"item_id": "x", "score": 1.0}]
        publish(
            kafka_bootstrap, output_topic, [("u", list_value("u", [("z", 2.0)], input_offset=5))]
        )
        body = wait_until(
            lambda: (b := client.get(path_of("u")).json())["items"][0]["item_id"] == "z" and b,
            timeout=15,
            what="the new list",
        )
        assert body["input_offsets"] == {"0": 5} and body["offset"] == 1
        publish(kafka_bootstrap, output_topic, [("u", None)])
        wait_until(
            lambda: client.get(path_of("u")).status_code == 404, timeout=15, what="the erasure"
        )
        publish(kafka_bootstrap, output_topic, [("u", list_value("u", [("back", 1.0)]))])
        wait_until(
            lambda: client.get(path_of("u")).status_code == 200, timeout=15, what="a new list"
        )
        stats = client.get("/stats").json()
        assert (stats["records"], stats["tombstones"], stats["lists"]) == (4, 1, 1)


def test_refuses_bad_ids_and_bad_n(output_topic: str, serve: Serve) -> None:
    server = serve(output_topic, max_id_length=16, max_target_length=1024)
    assert server.wait_ready(30)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get(path_of("x" * 16)).status_code == 404  # at the limit: merely unknown
        too_long = client.get(path_of("x" * 17))
        assert too_long.status_code == 422
        assert too_long.json()["detail"][0]["loc"] == ["path", "user_id"]
        assert client.get(path_of("é" * 17)).status_code == 422  # characters, not bytes
        assert client.get("/users//recommendations").status_code == 422  # empty id
        assert client.get(path_of("x" * 2000)).status_code == 414
        assert client.get(path_of("x" * 2000) + "/stream").status_code == 414
        assert client.get(path_of("x" * 17) + "/stream").status_code == 422
        for n in ["0", "-1", "1001", "abc", "1.5", ""]:
            answer = client.get(path_of("x"), params={"n": n})
            assert answer.status_code == 422, n
            assert answer.json()["detail"][0]["loc"] == ["query", "n"]
        assert client.get(path_of("x"), params={"fallback": "other"}).status_code == 422


def test_health_waits_for_the_topic_then_metrics(
    kafka_bootstrap: str, kafka_admin: object, serve: Serve
) -> None:
    topic = unique_name("serve-late")
    server = serve(topic, retry_backoff_max=0.5)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        starting = client.get("/healthz")
        assert starting.status_code == 503
        assert starting.json()["status"] == "starting"
        create_topic(kafka_admin, topic, configs={"cleanup.policy": "compact"})  # type: ignore[arg-type]
        publish(kafka_bootstrap, topic, [("1", list_value("1", [("x", 1.0)]))])
        wait_until(lambda: client.get("/healthz").status_code == 200, timeout=30, what="ready")
        wait_until(lambda: client.get(path_of("1")).status_code == 200, timeout=15)
        client.get(path_of("nobody"))
        client.get(path_of("x" * 300))
        client.get("/no/such/route")
        text = wait_until(
            lambda: (
                (t := client.get("/metrics").text)
                and "stream_cf_serve_topic_lag_records 0" in t
                and t
            ),
            timeout=15,
            what="the lag in the metrics",
        )
    for line in [
        'stream_cf_serve_requests_total{method="GET",route="/users/{user_id}/recommendations",'
        'status="200"}',
        'stream_cf_serve_requests_total{method="GET",route="/users/{user_id}/recommendations",'
        'status="404"}',
        'stream_cf_serve_requests_total{method="GET",route="/users/{user_id}/recommendations",'
        'status="422"}',
        'stream_cf_serve_requests_total{method="GET",route="other",status="404"}',
        'stream_cf_serve_request_seconds_bucket{le="0.005",route="/users/{user_id}/recommendations"}',
        "stream_cf_serve_lists 1.0",
        "stream_cf_serve_ready 1.0",
        "stream_cf_serve_records_total 1.0",
        'stream_cf_serve_processor_input_offset_total{input_topic="cf.events"} 1.0',
    ]:
        assert line in text, line
