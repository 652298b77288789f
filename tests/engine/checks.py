"""Comparisons of a live UserKNN with the plain reference, shared by the oracle tests."""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Iterable, Sequence
from typing import Any

from .reference import Reference

TOL = 1e-9


def close(a: float, b: float, tol: float = TOL) -> bool:
    return math.isclose(a, b, rel_tol=0.0, abs_tol=tol)


def assert_close(actual: float, expected: float, what: str, tol: float = TOL) -> None:
    assert close(actual, expected, tol), f"{what}: engine {actual!r}, reference {expected!r}"


def check_reads(model: Any, ref: Reference, ordered: bool = True) -> None:
    """users, items, counts, user_items, raters, means and the global mean; ``ordered``: users in
    order of creation, items of first appearance, raters of their rating's latest change."""
    if ordered:
        assert model.users() == ref.users_by_creation()
        assert model.items() == ref.items_by_first_appearance()
    assert sorted(model.users()) == ref.users()
    assert sorted(model.items()) == ref.items()
    assert model.n_users == len(ref.users())
    assert model.n_items == len(ref.items())
    assert model.n_ratings == len(ref.ratings)
    for user in ref.users():
        assert model.has_user(user)
        got = model.user_items(user)
        want = ref.user_items(user)
        assert set(got) == set(want), f"user_items({user})"
        for item, value in want.items():
            assert_close(got[item], value, f"user_items({user})[{item}]")
        if ref.feedback == "explicit":
            assert_close(model.mean(user), ref.mean(user), f"mean({user})")
    for item in ref.items():
        assert model.has_item(item)
        if ordered:
            assert model.raters(item) == ref.raters_by_seq(item), f"raters({item})"
        assert sorted(model.raters(item)) == sorted(ref.raters_by_seq(item)), f"raters({item})"
    if ref.ratings and ref.feedback == "explicit":
        assert_close(model.global_mean, ref.global_mean(), "global_mean")


def check_similarities(model: Any, ref: Reference) -> None:
    users = ref.users()
    for u in users:
        for v in users:
            if u == v:
                continue
            assert_close(model.similarity(u, v), ref.similarity(u, v), f"similarity({u}, {v})")


def check_prediction(model: Any, ref: Reference, user: str, item: str) -> float:
    """The engine's prediction equals the reference, or, when the k-th and (k+1)-th neighbours are
    exactly tied in exact arithmetic but not in floating point, is a valid choice among them."""
    got = model.predict(user, item)
    want = ref.predict_full(user, item)
    if close(got, want.estimate):
        return got
    message = (
        f"predict({user}, {item}): engine {got!r}, reference {want.estimate!r} "
        f"(reference neighbours {want.neighbours}, fallback {want.fallback})"
    )
    if ref.feedback == "implicit":
        # N_k(u) with an exact tie at the k-th place: any choice among the tied users is allowed
        assert ref.has_user(user) and ref.has_item(item), message
        choices = ref.implicit_tied_choices(user)
        assert len(choices) > 1, message
        # excused only by unequal floats: where the engine's own similarities of the tied users
        # are equal, the earlier created user must win, i.e. the reference's choice
        found = ref.implicit_candidates(user)
        run = [c[2] for c in found if c[0] == found[ref.k - 1][0]]
        assert len({model.similarity(user, v) for v in run}) > 1, message + f", tied run {run}"
        assert any(close(got, ref.implicit_score(user, item, c)) for c in choices), message
        return got
    user_tied = ref.boundary_tied(user, item)
    item_tied = bool(ref.item_residual) and ref.item_boundary_tied(user, item)
    assert user_tied or item_tied, (
        f"predict({user}, {item}): engine {got!r}, reference {want.estimate!r} "
        f"(reference neighbours {want.neighbours}, items {want.items}, fallback {want.fallback})"
    )
    explanation = model.explain(user, item)
    chosen = [nb.user for nb in explanation.neighbours]
    chosen_items = [it.item for it in explanation.item_neighbours]
    if user_tied:
        check_tied_choice(model, ref, user, item, chosen)
    else:
        chosen = [nb.user for nb in want.neighbours]
    if item_tied:
        # M(u;i) with an exact tie at the K-th place: any choice among the tied items is allowed
        found = ref.item_candidates(user, item)
        boundary = found[ref.item_residual - 1][0]
        must = {c[2] for c in found if c[0] > boundary}
        may = {c[2] for c in found if c[0] == boundary}
        message = f"predict({user}, {item}): item neighbours {chosen_items}"
        assert must <= set(chosen_items) <= must | may, message
        assert len(chosen_items) == ref.item_residual, message
    else:
        chosen_items = [it.item for it in want.items]
    assert_close(
        got, ref.estimate_from(user, item, chosen, chosen_items), f"predict({user}, {item}) tie"
    )
    return got


def check_tied_choice(model: Any, ref: Reference, user: str, item: str, chosen: list[str]) -> None:
    """The engine's N(i;u) is a valid choice when the k-th and (k+1)-th raters are exactly
    tied."""
    cands = ref.candidates(user, item)
    boundary = cands[ref.k - 1][0]
    must = {c[2] for c in cands if c[0] > boundary}
    may = {c[2] for c in cands if c[0] == boundary}
    assert must <= set(chosen) <= must | may, f"predict({user}, {item}): neighbours {chosen}"
    assert len(chosen) == ref.k
    # a choice among exact ties is only excused by unequal floating-point similarities: where the
    # engine's own values are equal, the earlier rating of the item must win
    seq = {c[2]: c[1] for c in cands}
    for inside in set(chosen) & may:
        for outside in may - set(chosen):
            if model.similarity(user, inside) == model.similarity(user, outside):
                assert seq[inside] < seq[outside], (
                    f"predict({user}, {item}): {inside} (seq {seq[inside]}) chosen over "
                    f"{outside} (seq {seq[outside]}) at an equal similarity"
                )


def check_explanation(model: Any, ref: Reference, user: str, item: str) -> None:
    """explain() agrees with predict() and, for knn_baseline, with the reference's baseline
    terms, each neighbour's b_vi and its weight w_uv / (Σ|w| + damping)."""
    got = model.explain(user, item)
    assert got.estimate == model.predict(user, item), f"explain({user}, {item}) != predict"
    want = ref.predict_full(user, item)
    assert got.fallback == want.fallback, f"explain({user}, {item}): {got}, reference {want}"
    if ref.predictor != "knn_baseline":
        assert got.baseline is None
        return
    what = f"explain({user}, {item})"
    assert got.baseline is not None, what
    assert_close(got.baseline.global_mean, ref.global_mean(), f"{what} μ")
    assert_close(got.baseline.user_bias, ref.user_bias(user), f"{what} b_u")
    assert_close(got.baseline.item_bias, ref.item_bias(item), f"{what} b_i")
    den = sum(abs(nb.similarity) for nb in got.neighbours) + ref.damping
    den += sum(it.similarity for it in got.item_neighbours)
    mine = ref.user_items(user) if ref.has_user(user) else {}
    item_candidates = (
        {c[2] for c in ref.item_candidates(user, item)} if ref.has_user(user) else set()
    )
    assert len(got.item_neighbours) <= ref.item_residual, what
    for it in got.item_neighbours:
        assert it.item in item_candidates, f"{what}: item neighbour {it.item}"
        assert_close(it.similarity, ref.item_similarity(user, item, it.item)[1], f"{what} s_ij")
        assert_close(it.rating, mine[it.item], f"{what} r_uj of {it.item}")
        assert_close(it.baseline, ref.baseline(user, it.item), f"{what} b_uj of {it.item}")
        assert_close(it.weight, it.similarity / den, f"{what} weight of {it.item}")
    values = dict(ref.raters_values(item))
    for nb in got.neighbours:
        assert_close(nb.similarity, ref.similarity(user, nb.user), f"{what} w of {nb.user}")
        assert_close(nb.rating, values[nb.user], f"{what} rating of {nb.user}")
        assert nb.neighbour_baseline is not None, what
        assert_close(nb.neighbour_baseline, ref.baseline(nb.user, item), f"{what} b_vi")
        assert_close(nb.weight, nb.similarity / den, f"{what} weight of {nb.user}")
    # which neighbours: check_prediction has judged (ties at the k-th place, and similarities
    # that are 0 in exact arithmetic but 1e-17 in floating point, included)
    candidates = {c[2] for c in ref.candidates(user, item)} if ref.has_user(user) else set()
    assert {nb.user for nb in got.neighbours if abs(nb.similarity) > TOL} <= candidates, what


def check_predictions(
    model: Any, ref: Reference, users: Iterable[str], items: Sequence[str]
) -> dict[tuple[str, str], float]:
    out = {}
    if not ref.ratings:
        return out
    for user in users:
        for item in items:
            out[(user, item)] = check_prediction(model, ref, user, item)
            if ref.feedback == "explicit":
                check_explanation(model, ref, user, item)
        if ref.feedback == "explicit":
            many = model.predict_many(user, list(items))
            for item, value in zip(items, many, strict=True):
                assert_close(value, out[(user, item)], f"predict_many({user})[{item}]", 1e-12)
    return out


def check_recommend(model: Any, ref: Reference, user: str, n: int) -> None:
    """recommend(user, n) is the reference's list: same fallback, same candidates, best first,
    ties (equal engine scores) by the unclipped estimate, the number of neighbours, then the
    item's first appearance."""
    got = model.recommend(user, n)
    recs = model.recommendations(user, n)
    assert list(recs.items) == list(got), "recommend and recommendations disagree"
    want, is_fallback = ref.recommendations(user, n)
    assert (recs.fallback is not None) == is_fallback, (
        f"recommend({user}): fallback {recs.fallback!r}, reference fallback={is_fallback}; "
        f"engine {got}, reference {want}"
    )
    if is_fallback:
        assert [i for i, _ in got] == [i for i, _ in want], f"popularity for {user}"
        for (_i, s), (_j, t) in zip(got, want, strict=True):
            assert_close(s, t, "popularity score")
        return
    if ref.rank != "rating":
        check_ranked(got, ref, user, n)
        return
    candidates = ref.candidate_items(user)
    ids = [i for i, _ in got]
    if ref.feedback == "implicit" and not set(ids) <= set(candidates):
        # an exact tie at the k-th place of N_k(u): the candidates of one of the allowed choices
        for choice in ref.implicit_tied_choices(user):
            if set(ids) <= set(ref.implicit_candidate_items(user, choice)):
                candidates = ref.implicit_candidate_items(user, choice)
                break
    assert len(ids) == len(set(ids)) == min(n, len(candidates)), f"recommend({user}, {n}): {got}"
    assert set(ids) <= set(candidates)
    scores = {item: model.predict(user, item) for item in candidates}
    for item, score in got:
        assert_close(score, scores[item], f"score of {item} for {user}")
        check_prediction(model, ref, user, item)

    def rank(item: str) -> tuple[float, float, int, int]:
        """Best first: the score, then (ties at the clip) the unclipped estimate (rounded: the
        engine sums in another order), the number of neighbours, the first appearance. Where
        the neighbours are a choice among exact ties (the k-th user or the K-th item), the
        unclipped estimate of the engine's own choice (check_prediction has judged it)."""
        _clipped, raw, count = ref.rating_rank(user, item)
        tied = ref.boundary_tied(user, item) or (
            bool(ref.item_residual) and ref.item_boundary_tied(user, item)
        )
        if tied and ref.predictor == "knn_baseline":
            exp = model.explain(user, item)
            raw = -ref.baseline_estimate(
                user,
                item,
                [nb.user for nb in exp.neighbours],
                [it.item for it in exp.item_neighbours],
            )
        return (-scores[item], round(raw, 9), count, ref.first_seen[item])

    assert ids == sorted(ids, key=rank), f"recommend({user}) order: {got}"
    if ids:
        last = rank(ids[-1])
        for item in candidates:
            if item not in ids:
                assert rank(item) > last, f"recommend({user}, {n}) misses {item}: {got}"


def check_ranked(got: list[tuple[str, float]], ref: Reference, user: str, n: int) -> None:
    """A ``vote`` or ``item`` list is a top n of the reference's scores: the same number of items,
    each a candidate with the reference's score, best first, nothing left out that scores more
    (equal scores, within rounding, may come in either order: the sums run in another order)."""
    scores = ref.ranked_scores(user)
    ids = [i for i, _ in got]
    assert len(ids) == len(set(ids)) == min(n, len(scores)), f"recommend({user}, {n}): {got}"
    for item, score in got:
        assert item in scores, f"recommend({user}) lists {item}, not a candidate: {got}"
        assert_close(score, scores[item], f"rank score of {item} for {user}")
    for a, b in itertools.pairwise(got):
        assert a[1] >= b[1] - TOL, f"recommend({user}) order: {got}"
        if close(a[1], b[1], 1e-12) and a[1] != b[1]:
            continue
        if a[1] == b[1]:
            assert ref.first_seen[a[0]] < ref.first_seen[b[0]], f"recommend({user}) ties: {got}"
    if ids:
        last = got[-1][1]
        for item, score in scores.items():
            if item not in ids:
                assert score <= last + TOL, f"recommend({user}, {n}) misses {item}: {got}"


def check_all(
    model: Any, ref: Reference, users: Sequence[str], items: Sequence[str], n: int = 3
) -> None:
    check_reads(model, ref)
    check_similarities(model, ref)
    check_predictions(model, ref, users, items)
    if ref.ratings:
        for user in users:
            check_recommend(model, ref, user, n)


def snapshot(model: Any, users: Sequence[str], items: Sequence[str]) -> dict[str, Any]:
    """Everything readable about a model, for before/after comparisons."""
    state: dict[str, Any] = {
        "users": sorted(model.users()),
        "items": sorted(model.items()),
        "n": (model.n_users, model.n_items, model.n_ratings),
        "user_items": {u: model.user_items(u) for u in model.users()},
        "raters": {i: list(model.raters(i)) for i in model.items()},
        "sims": {(u, v): model.similarity(u, v) for u in model.users() for v in model.users()},
    }
    if model.n_ratings:
        state["global_mean"] = model.global_mean
        state["means"] = {u: model.mean(u) for u in model.users()}
        state["predict"] = {(u, i): model.predict(u, i) for u in users for i in items}
        state["recommend"] = {u: model.recommend(u, 5) for u in users}
    return state


def saved_bytes(model: Any) -> bytes:
    buf = io.BytesIO()
    model.save(buf)
    return buf.getvalue()


def reloaded(model: Any) -> Any:
    buf = io.BytesIO(saved_bytes(model))
    return type(model).load(buf)
