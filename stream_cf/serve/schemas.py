"""The answers of the HTTP API, as pydantic models: what the OpenAPI document describes.

The hot answer (a user's list) is rendered once per list by :mod:`stream_cf.serve.held_list`,
not through these models; the tests check that the two agree (schemathesis validates every
answer against this document).
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class Item(BaseModel):
    """One recommended item, best first."""

    item_id: str
    score: float = Field(description="its rank score (the processor's --rank)")
    rating: float | None = Field(
        None, description="its predicted rating (explicit feedback only; absent otherwise)"
    )


class Recommendations(BaseModel):
    """A user's latest list and where it comes from."""

    age_seconds: float = Field(description="seconds since the list was published (0: fallback)")
    user_id: str
    items: list[Item]
    fallback: str | None = Field(description="null, or why the list is a fallback")
    event_time: str | None = Field(description="the latest event the list reflects (ISO-8601)")
    input_topic: str | None = Field(description="the processor's input topic")
    input_offsets: dict[str, int] = Field(
        description="next input offset per partition: every input record before is reflected"
    )
    published_at: str | None = Field(description="the output record's timestamp (ISO-8601)")
    partition: int | None = Field(description="the output record's partition")
    offset: int | None = Field(description="the output record's offset")


class Problem(BaseModel):
    """An error: what was wrong."""

    detail: str


class Users(BaseModel):
    """Some of the users with a list."""

    users: list[str] = Field(description="user ids starting with the prefix, in text order")
    matching: int = Field(description="how many user ids start with the prefix")
    held: int = Field(description="users with a list")


class Health(BaseModel):
    """Whether the server has caught up with the output topic."""

    status: str = Field(description="ready, starting (reading the topic) or failed")
    lists: int
    lag_records: int | None


class InputStats(BaseModel):
    """The processor's input as its lists reflect it."""

    topic: str
    events_per_second: float | None = Field(
        description="input records reflected per second (the processor's throughput)"
    )
    lag_records: int | None = Field(description="input records not yet reflected in any list")


class Stats(BaseModel):
    """What the live page shows beside a user's list."""

    ready: bool
    lists: int
    records: int
    tombstones: int
    unreadable: int
    lag_records: int | None = Field(description="output records not yet read by this server")
    lists_per_second: float | None = Field(description="output records read per second")
    sse_streams: int
    inputs: list[InputStats]
