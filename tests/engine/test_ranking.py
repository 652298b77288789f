"""The ranking modes ``vote`` and ``item`` against the plain reference, after every event of random
streams (explicit and implicit, any parameters, re-ratings, take-backs, erasures, micro-batches,
save/load), and the promises every list keeps: seen items never listed (unless asked), forgotten
users leave no trace, cold users get popularity flagged as a fallback."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream_cf.engine import UserKNN
from stream_cf.exceptions import ConfigError

from .checks import check_recommend, reloaded
from .reference import Reference
from .test_oracle import (
    SETTINGS,
    USERS,
    apply_direct,
    as_event,
    concrete_stream,
    forget_ev,
    mix,
    purchase_ev,
    rate_ev,
    unrate_ev,
)

rank_config = st.fixed_dictionaries(
    {
        "rank": st.sampled_from(["vote", "item"]),
        "feedback": st.sampled_from(["explicit", "implicit"]),
        "rank_half_life": st.sampled_from([1.0, 2.5, 5.0]),
        "rank_neighbours": st.integers(1, 4),
        "rank_exponent": st.sampled_from([1.0, 2.0, 0.5]),
        "rank_damping": st.sampled_from([0.0, 0.2, 1.0]),
        "include_seen": st.booleans(),
        "rank_neighbour_recency": st.sampled_from(["none", "latest", "shared"]),
        "rank_neighbour_half_life": st.sampled_from([0.5, 2.0, 5.0]),
        "rank_rarity": st.sampled_from([None, 0.0, 0.5, 1.0]),
    }
)
events = st.lists(mix((50, rate_ev), (30, purchase_ev), (12, unrate_ev), (8, forget_ev)))


def stream_for(config: dict[str, Any], raws: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    if config["feedback"] == "explicit":
        raws = [r for r in raws if r[0] != "purchase"]
    return concrete_stream(raws, config)


def check_lists(model: UserKNN, ref: Reference, n: int = 3) -> None:
    for user in [*USERS, "nobody"]:
        check_recommend(model, ref, user, n)
        if not ref.include_seen and model.has_user(user):
            listed = {item for item, _ in model.recommend(user, 10)}
            assert not listed & set(model.user_items(user)), f"{user} is offered what they have"


def lists_match_reference(config: dict[str, Any], raws: list[tuple[Any, ...]]) -> None:
    """The engine's lists equal the reference's after every event of the stream."""
    model = UserKNN(**config)
    ref = Reference(**config)
    for ev in stream_for(config, raws):
        apply_direct(model, ev)
        apply_direct(ref, ev)
        check_lists(model, ref)


@SETTINGS
@given(config=rank_config, raws=events)
def test_lists_match_reference_after_every_event(
    config: dict[str, Any], raws: list[tuple[Any, ...]]
) -> None:
    lists_match_reference(config, raws)


@SETTINGS
@given(config=rank_config, raws=events, cuts=st.lists(st.integers(0, 40), max_size=4))
def test_micro_batches_and_save_load_give_the_same_lists(
    config: dict[str, Any], raws: list[tuple[Any, ...]], cuts: list[int]
) -> None:
    stream = stream_for(config, raws)
    one = UserKNN(**config)
    for ev in stream:
        apply_direct(one, ev)
    many = UserKNN(**config)
    bounds = sorted({0, len(stream), *(c for c in cuts if c <= len(stream))})
    for lo, hi in itertools.pairwise(bounds):
        many.apply_many(as_event(ev) for ev in stream[lo:hi])
        many = reloaded(many)
    users = [*USERS, "nobody"]
    assert many.recommend_many(users, 4) == one.recommend_many(users, 4)
    ref = Reference(**config)
    for ev in stream:
        apply_direct(ref, ev)
    check_lists(many, ref)


@pytest.mark.parametrize(
    ("rank", "extra"), [("vote", {}), ("item", {}), ("vote", {"rank_rarity": 1.0})]
)
def test_a_forgotten_user_leaves_no_trace(rank: str, extra: dict[str, Any]) -> None:
    """After forget_user(x) every list equals the list of a model that never saw x (x rated
    nothing first, so the items' first appearances, which order ties, are the same)."""
    stream: list[tuple[Any, ...]] = []
    for step in range(120):
        user = f"u{step % 7}"
        item = f"i{(step * 5) % 11}"
        stream.append(("rate", user, item, float(1 + step % 5)))
    stream.insert(40, ("rate", "x", "i3", 5.0))
    stream.insert(60, ("rate", "x", "only-x", 4.0))
    stream.insert(80, ("rate", "x", "i7", 2.0))
    seen = UserKNN(rank=rank, rank_neighbours=3, **extra)
    for ev in stream:
        apply_direct(seen, ev)
    before = {u: seen.recommend(u, 5) for u in seen.users()}
    seen.forget_user("x")
    never = UserKNN(rank=rank, rank_neighbours=3, **extra)
    for ev in stream:
        if ev[1] != "x":
            apply_direct(never, ev)
    users = sorted(never.users())
    assert sorted(seen.users()) == users
    changed = 0
    for user in users:
        got = seen.recommend(user, 5)
        want = never.recommend(user, 5)
        assert [i for i, _ in got] == [i for i, _ in want], user
        assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-12), user
        assert "only-x" not in [i for i, _ in got]
        changed += got != before[user]
    assert changed > 0, "x influenced nobody: the test proves nothing"


def test_a_cold_user_gets_popularity_as_a_fallback() -> None:
    model = UserKNN()  # vote, the default
    for user, item in [("a", "p"), ("b", "p"), ("b", "q"), ("c", "q"), ("loner", "solo")]:
        model.rate(user, item, 4.0)
    recs = model.recommendations("loner", 5)  # nobody shares an item with loner
    assert recs.fallback == "no neighbours: popularity"
    assert [i for i, _ in recs.items] == ["p", "q"]
    assert model.recommendations("nobody", 5).fallback == "unknown user: popularity"
    assert model.recommendations("a", 5).fallback is None
    assert [i for i, _ in model.recommend("a", 5)] == ["q"]


def test_recency_weights_the_latest_items_first() -> None:
    """Two neighbours share one item each with u; the one who shares u's latest item wins."""
    model = UserKNN(
        rank_neighbours=1, rank_half_life=1.0, rank_damping=0.0, rank_neighbour_recency="none"
    )
    model.rate("old-friend", "a", 5.0)
    model.rate("old-friend", "from-old", 5.0)
    model.rate("new-friend", "b", 5.0)
    model.rate("new-friend", "from-new", 5.0)
    model.rate("u", "a", 5.0)
    model.rate("u", "b", 5.0)  # b is u's latest: x_b = 1, x_a = 1/2
    assert model.recommend("u", 5) == [("from-new", pytest.approx(0.5))]  # (1/√2)²
    model.rate("u", "a", 3.0)  # a re-rated: now the latest
    assert [i for i, _ in model.recommend("u", 5)] == ["from-old"]


def test_rarity_weights_a_rare_shared_item_above_a_staple() -> None:
    """u shares a staple (4 buyers) with one neighbour and a rare item (2 buyers) with another:
    the staple's sharer votes more without rarity (the staple is u's latest), the rare item's
    sharer with b = 1."""
    events = [
        ("staple-friend", "staple"),
        ("staple-friend", "from-staple"),
        ("rare-friend", "rare"),
        ("rare-friend", "from-rare"),
        ("x", "staple"),
        ("y", "staple"),
        ("u", "rare"),
        ("u", "staple"),  # the latest: x_staple = 1, x_rare = 2^(−1/2) (h = 2)
    ]

    def top(rarity: float) -> list[str]:
        model = UserKNN(
            feedback="implicit",
            rank_half_life=2.0,
            rank_neighbour_recency="none",
            rank_rarity=rarity,
        )
        for user, item in events:
            model.purchase(user, item)
        return [item for item, _ in model.recommend("u", 5)]

    assert top(0.0) == ["from-staple", "from-rare"]  # 1/√2 against 0.71/√2
    assert top(1.0) == ["from-rare", "from-staple"]  # (0.71/2)/√2 against (1/4)/√2


def test_a_neighbours_items_count_by_their_recency() -> None:
    """``latest``: a neighbour's latest items first; ``shared``: the items the neighbour bought
    next to the one they share with u (the rest of that basket) first."""
    events = [
        ("n", "bread"),
        ("n", "milk"),  # shared with u, between bread and jam in n's history
        ("n", "jam"),
        ("n", "a"),
        ("n", "b"),
        ("n", "c"),
        ("u", "milk"),
    ]

    def top(recency: str) -> list[str]:
        model = UserKNN(
            feedback="implicit", rank_neighbour_recency=recency, rank_neighbour_half_life=1.0
        )
        for user, item in events:
            model.purchase(user, item)
        return [item for item, _ in model.recommend("u", 5)]

    assert top("none") == ["bread", "jam", "a", "b", "c"]  # equal scores: first appearance
    assert top("latest") == ["c", "b", "a", "jam", "bread"]
    assert top("shared") == ["bread", "jam", "a", "b", "c"]  # 1 step from milk, then 2, 3, 4
    model = UserKNN(feedback="implicit", rank_neighbour_half_life=1.0)  # shared, the default
    for user, item in events:
        model.purchase(user, item)
    # pos_n: c 0, b 1, a 2, jam 3, milk 4, bread 5; w_un = 1/√6; g = 2^−|pos − 4|
    w = 1 / 6**0.5
    assert model.recommend("u", 2) == [
        ("bread", pytest.approx(w / 2)),
        ("jam", pytest.approx(w / 2)),
    ]


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("rank", "stars"),
        ("rank_half_life", 0.0),
        ("rank_half_life", float("inf")),
        ("rank_neighbours", 0),
        ("rank_exponent", -1.0),
        ("rank_damping", 1.5),
        ("rank_damping", -1.5),
        ("rank_damping", float("nan")),
        ("rank_neighbour_recency", "oldest"),
        ("rank_neighbour_half_life", 0.0),
        ("rank_neighbour_half_life", float("nan")),
        ("rank_rarity", -0.5),
        ("rank_rarity", 2.5),
        ("rank_rarity", float("inf")),
    ],
)
def test_bad_ranking_settings_are_refused(keyword: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=keyword):
        UserKNN(**{keyword: value})


def test_implicit_defaults_build() -> None:
    """UserKNN(feedback="implicit") as a user writes it: cosine is chosen, vote ranks."""
    model = UserKNN(feedback="implicit")
    assert model.config()["similarity"] == "cosine"
    assert model.config()["rank"] == "vote"
    assert (model.config()["rank_exponent"], model.config()["rank_damping"]) == (1.0, 0.0)
    assert model.config()["rank_neighbour_recency"] == "shared"
    assert not model.lists_follow_item_counts  # undamped: no item count enters a list
    explicit = UserKNN()
    assert (explicit.config()["rank_exponent"], explicit.config()["rank_damping"]) == (2.0, 0.2)
    assert explicit.config()["rank_neighbour_recency"] == "shared"
    assert explicit.lists_follow_item_counts
