"""The README's example runs as written and prints what its comments say."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_engine_example_runs(tmp_path: Path, monkeypatch: Any) -> None:
    blocks = _python_blocks()
    assert blocks, "the README has no python example"
    monkeypatch.chdir(tmp_path)  # the example saves state.npz in the working directory
    namespace: dict[str, Any] = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    model = namespace["model"]
    # after the example: bob erased, dee's micro-batch kept through save/load
    assert "bob" not in model.users()
    assert model.user_items("dee") == {"up": 4.0}
    assert (tmp_path / "state.npz").is_file()
    fallback = model.recommendations("nobody")
    assert fallback.fallback is not None and "unknown user" in fallback.fallback


def test_readme_example_comments_match() -> None:
    from stream_cf import UserKNN  # noqa: PLC0415

    model = UserKNN(similarity="pearson", k=40)
    for user, item, rating in [
        ("ann", "alien", 5), ("ann", "heat", 3), ("ann", "up", 4),
        ("bob", "alien", 4), ("bob", "heat", 2), ("bob", "coco", 5),
        ("cid", "alien", 2), ("cid", "heat", 5), ("cid", "coco", 1),
    ]:  # fmt: skip
        model.rate(user, item, rating)
    assert round(model.predict("ann", "coco"), 2) == 3.67
    explanation = model.explain("ann", "coco")
    assert [n.user for n in explanation.neighbours] == ["bob"]
    assert explanation.baseline is not None
    terms = explanation.baseline
    assert [round(x, 2) for x in (terms.global_mean, terms.user_bias, terms.item_bias)] == [
        3.44,
        0.20,
        -0.07,
    ]
    assert model.predict_many("ann", ["coco", "up"]) == [
        model.predict("ann", "coco"),
        model.predict("ann", "up"),
    ]
    assert [(i, round(s, 2)) for i, s in model.recommend("ann", n=5)] == [("coco", 1.17)]


def test_every_dead_letter_reason_is_documented() -> None:
    from stream_cf.reasons import REASONS  # noqa: PLC0415

    text = README.read_text(encoding="utf-8")
    section = text[text.index("- **Dead letters**") : text.index("### Configuration")]
    documented = re.findall(r"^  \| `(\w+)` \|", section, re.M)
    assert documented == list(REASONS)
