"""``GET /users/{id}/recommendations/stream``: Server-Sent Events of a user's lists."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from stream_cf.serve import BackgroundServer
from tests.serve.helpers import SSEReader, list_value, path_of, publish

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(60)]

Serve = Callable[..., BackgroundServer]


def test_current_list_then_every_new_one(
    kafka_bootstrap: str, output_topic: str, serve: Serve
) -> None:
    user = "a/b é"
    publish(kafka_bootstrap, output_topic, [(user, list_value(user, [("x", 1.0)]))])
    server = serve(output_topic)
    assert server.wait_ready(30)
    reader = SSEReader(server.url + path_of(user) + "/stream").start()
    try:
        (current,) = reader.wait_for(1)
        assert (current.name, current.id) == ("list", "0:0")
        assert current.data["user_id"] == user and current.data["items"][0]["item_id"] == "x"
        delays = []
        for number in range(1, 4):
            sent = time.monotonic()
            publish(
                kafka_bootstrap,
                output_topic,
                [
                    ("someone else", list_value("someone else", [("o", 1.0)])),
                    (user, list_value(user, [(f"new{number}", 1.0)], input_offset=number)),
                ],
            )
            event = reader.wait_for(1 + number)[-1]
            delays.append(event.seen - sent)
            assert event.name == "list"
            assert event.data["items"] == [{"item_id": f"new{number}", "score": 1.0}]
            assert event.data["input_offsets"] == {"0": number}
        # produce (a new producer, acks=all) -> broker -> follower -> SSE: well under a second
        assert max(delays) < 2.0, delays
        publish(kafka_bootstrap, output_topic, [(user, None)])
        erased = reader.wait_for(5)[-1]
        assert erased.name == "erased" and erased.data == {"user_id": user}
    finally:
        reader.close()


def test_a_user_without_a_list_gets_one_when_it_arrives(
    kafka_bootstrap: str, output_topic: str, serve: Serve
) -> None:
    server = serve(output_topic)
    assert server.wait_ready(30)
    reader = SSEReader(server.url + path_of("new") + "/stream").start()
    try:
        (missing,) = reader.wait_for(1)
        assert (missing.name, missing.data) == ("missing", {"user_id": "new"})
        publish(kafka_bootstrap, output_topic, [("new", list_value("new", [("x", 1.0)]))])
        arrived = reader.wait_for(2)[-1]
        assert arrived.name == "list" and arrived.data["user_id"] == "new"
    finally:
        reader.close()
