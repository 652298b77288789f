"""Bad input: a clear domain exception (or a documented no-op) and the state left unchanged."""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from stream_cf.engine import UserKNN
from stream_cf.events import PurchaseEvent, RatingEvent, UnrateEvent
from stream_cf.exceptions import (
    ConfigError,
    InvalidEvent,
    StateFormatError,
    StreamCFError,
    UnknownRating,
    UnknownUser,
)

from .checks import saved_bytes, snapshot

USERS = ["a", "b", "c", "ghost"]
ITEMS = ["x", "y", "z", "nothing"]
ROWS = [
    ("a", "x", 5.0),
    ("a", "y", 3.0),
    ("b", "x", 4.0),
    ("b", "y", 2.0),
    ("b", "z", 1.0),
    ("c", "y", 4.5),
    ("c", "z", 2.0),
]


def explicit_model() -> UserKNN:
    model = UserKNN(similarity="pearson", min_similarity=None)
    for row in ROWS:
        model.rate(*row)
    return model


def implicit_model() -> UserKNN:
    model = UserKNN(feedback="implicit", similarity="cosine", implicit_cap=5.0)
    for user, item, value in ROWS:
        model.purchase(user, item, value)
    return model


def assert_rejected(
    model: UserKNN, action: Callable[[UserKNN], Any], exc: type[Exception], reason: str | None
) -> None:
    before = snapshot(model, USERS, ITEMS)
    before_bytes = saved_bytes(model)
    with pytest.raises(exc) as info:
        action(model)
    if reason is not None:
        assert isinstance(info.value, InvalidEvent)
        assert info.value.reason == reason, info.value
        assert str(info.value)
    assert snapshot(model, USERS, ITEMS) == before
    assert saved_bytes(model) == before_bytes


@pytest.mark.parametrize("value", [0.5, 5.5, -1.0, 100.0, 0.0])
def test_rating_outside_the_scale(value: float) -> None:
    model = explicit_model()
    assert_rejected(model, lambda m: m.rate("a", "z", value), InvalidEvent, "rating_out_of_scale")
    # a re-rating of an existing pair too
    assert_rejected(model, lambda m: m.rate("a", "x", value), InvalidEvent, "rating_out_of_scale")
    # and a new user
    assert_rejected(model, lambda m: m.rate("new", "x", value), InvalidEvent, "rating_out_of_scale")


def test_rating_outside_a_custom_scale() -> None:
    model = UserKNN(rating_scale=(0.0, 10.0))
    model.rate("a", "x", 0.0)
    model.rate("a", "y", 10.0)
    assert_rejected(model, lambda m: m.rate("a", "z", 10.5), InvalidEvent, "rating_out_of_scale")
    assert_rejected(model, lambda m: m.rate("a", "z", -0.5), InvalidEvent, "rating_out_of_scale")


@pytest.mark.parametrize("value", [-2.0, 0.0, 0.5, 9.0])
def test_implicit_rating_outside_the_scale(value: float) -> None:
    """The scale holds in implicit mode too: a negative or zero "rating" would make a negative or
    empty weight (a negative cosine, an item held with weight 0)."""
    model = implicit_model()
    assert_rejected(model, lambda m: m.rate("a", "z", value), InvalidEvent, "rating_out_of_scale")
    assert_rejected(model, lambda m: m.rate("a", "x", value), InvalidEvent, "rating_out_of_scale")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_rating_not_finite(value: float) -> None:
    model = explicit_model()
    assert_rejected(model, lambda m: m.rate("a", "z", value), InvalidEvent, "not_finite")
    assert_rejected(model, lambda m: m.rate("a", "x", value), InvalidEvent, "not_finite")


@pytest.mark.parametrize("quantity", [math.nan, math.inf, -math.inf])
def test_purchase_not_finite(quantity: float) -> None:
    model = implicit_model()
    assert_rejected(model, lambda m: m.purchase("a", "z", quantity), InvalidEvent, "not_finite")
    assert_rejected(model, lambda m: m.purchase("a", "x", quantity), InvalidEvent, "not_finite")


@pytest.mark.parametrize("quantity", [0.0, -1.0])
def test_purchase_not_positive(quantity: float) -> None:
    model = implicit_model()
    assert_rejected(model, lambda m: m.purchase("a", "z", quantity), InvalidEvent, None)


@pytest.mark.parametrize(
    "action",
    [
        lambda m: m.rate("", "x", 3.0),
        lambda m: m.rate("a", "", 3.0),
        lambda m: m.rate("", "", 3.0),
    ],
    ids=["empty-user", "empty-item", "both-empty"],
)
def test_empty_id_in_a_rating(action: Callable[[UserKNN], Any]) -> None:
    assert_rejected(explicit_model(), action, InvalidEvent, "empty_id")


@pytest.mark.parametrize(
    "action",
    [lambda m: m.purchase("", "x", 1.0), lambda m: m.purchase("a", "", 1.0)],
    ids=["empty-user", "empty-item"],
)
def test_empty_id_in_a_purchase(action: Callable[[UserKNN], Any]) -> None:
    assert_rejected(implicit_model(), action, InvalidEvent, "empty_id")


@pytest.mark.parametrize(
    ("user", "item"),
    [("a", "z"), ("ghost", "x"), ("a", "nothing"), ("ghost", "nothing")],
    ids=["known-both", "unknown-user", "unknown-item", "unknown-both"],
)
def test_unrate_of_a_missing_pair(user: str, item: str) -> None:
    assert_rejected(explicit_model(), lambda m: m.unrate(user, item), UnknownRating, None)
    assert_rejected(implicit_model(), lambda m: m.unrate(user, item), UnknownRating, None)


def test_unrate_twice() -> None:
    model = explicit_model()
    model.unrate("a", "x")
    assert_rejected(model, lambda m: m.unrate("a", "x"), UnknownRating, None)


def test_unknown_rating_is_a_domain_error() -> None:
    assert issubclass(UnknownRating, StreamCFError)
    assert issubclass(InvalidEvent, StreamCFError)


@pytest.mark.parametrize("build", [explicit_model, implicit_model], ids=["explicit", "implicit"])
def test_forget_of_an_unknown_user_is_a_no_op(build: Callable[[], UserKNN]) -> None:
    model = build()
    before = snapshot(model, USERS, ITEMS)
    before_bytes = saved_bytes(model)
    model.forget_user("ghost")
    assert snapshot(model, USERS, ITEMS) == before
    assert saved_bytes(model) == before_bytes
    effect = model.apply_many([])
    assert effect.events == 0


def test_bad_event_through_apply() -> None:
    model = explicit_model()
    # the pydantic models accept any float for a rating; the engine checks the scale
    assert_rejected(
        model,
        lambda m: m.apply(RatingEvent(user_id="a", item_id="z", rating=9.0)),
        InvalidEvent,
        "rating_out_of_scale",
    )
    assert_rejected(
        model, lambda m: m.apply(UnrateEvent(user_id="a", item_id="z")), UnknownRating, None
    )


def test_bad_event_in_a_batch_raises() -> None:
    """A batch stops at its bad event with the same exception; the events before it are applied,
    as they would be one by one (apply_many is apply in order)."""
    model = explicit_model()
    reference = explicit_model()
    reference.rate("a", "z", 2.0)
    with pytest.raises(InvalidEvent):
        model.apply_many(
            [
                RatingEvent(user_id="a", item_id="z", rating=2.0),
                RatingEvent(user_id="c", item_id="x", rating=7.0),
            ]
        )
    assert snapshot(model, USERS, ITEMS) == snapshot(reference, USERS, ITEMS)


def test_purchase_in_explicit_mode_or_works_or_is_refused_cleanly() -> None:
    model = explicit_model()
    before = snapshot(model, USERS, ITEMS)
    try:
        model.apply(PurchaseEvent(user_id="a", item_id="z", quantity=1.0))
    except StreamCFError:
        assert snapshot(model, USERS, ITEMS) == before


# ---------------------------------------------------------------------------- saved states


def _rewrite_meta(data: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    """A copy of a saved state whose JSON metadata is changed by ``change``."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            payload = src.read(info.filename)
            if info.filename == "meta.npy":
                meta = json.loads(str(np.load(io.BytesIO(payload)).reshape(-1)[0]))
                change(meta)
                buf = io.BytesIO()
                np.save(buf, np.array([json.dumps(meta)]))
                payload = buf.getvalue()
            dst.writestr(info.filename, payload)
    return out.getvalue()


def _bad_states() -> dict[str, bytes]:
    good = saved_bytes(explicit_model())

    def version(meta: dict[str, Any]) -> None:
        meta["format_version"] = 999

    def kind(meta: dict[str, Any]) -> None:
        meta["kind"] = "something else"

    def config(meta: dict[str, Any]) -> None:
        meta["config"]["k"] = 0

    def count(meta: dict[str, Any]) -> None:
        meta["n_ratings"] = meta["n_ratings"] + 1

    return {
        "empty": b"",
        "text": b"not a saved state at all",
        "truncated": good[: len(good) // 2],
        "npy-not-npz": _npy_bytes(),
        "future-version": _rewrite_meta(good, version),
        "other-kind": _rewrite_meta(good, kind),
        "bad-config": _rewrite_meta(good, config),
        "wrong-count": _rewrite_meta(good, count),
    }


def _npy_bytes() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.arange(3))
    return buf.getvalue()


@pytest.mark.parametrize("name", sorted(_bad_states()))
def test_load_refuses_an_unreadable_state(name: str, tmp_path: Any) -> None:
    data = _bad_states()[name]
    with pytest.raises(StateFormatError):
        UserKNN.load(io.BytesIO(data))
    path = tmp_path / "state.npz"
    path.write_bytes(data)
    with pytest.raises(StateFormatError):
        UserKNN.load(path)


def test_load_of_a_missing_file(tmp_path: Any) -> None:
    with pytest.raises(StateFormatError):
        UserKNN.load(tmp_path / "nothing-here.npz")


def test_save_is_deterministic() -> None:
    assert saved_bytes(explicit_model()) == saved_bytes(explicit_model())
    assert saved_bytes(implicit_model()) == saved_bytes(implicit_model())


# ---------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    "kwargs",
    [
        {"similarity": "jaccard"},
        {"k": 0},
        {"min_k": -1},
        {"min_support": -1},
        {"min_similarity": math.nan},
        {"shrinkage": -1.0},
        {"shrinkage": math.inf},
        {"rating_scale": (5.0, 1.0)},
        {"rating_scale": (1.0, math.inf)},
        {"feedback": "both"},
        {"implicit_weights": {"purchase": -1.0}},
        {"implicit_weights": {"purchase": math.nan}},
        {"implicit_cap": 0.0},
        {"similarity": "pearson", "feedback": "implicit"},  # implicit is cosine only
    ],
    ids=repr,
)
def test_bad_settings_raise_config_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        UserKNN(**kwargs)
    key = next(iter(kwargs))
    assert key in str(info.value)  # the message names the offending setting


def test_mean_of_an_unknown_user() -> None:
    with pytest.raises(UnknownUser):
        explicit_model().mean("ghost")
