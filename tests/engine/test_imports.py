"""The engine's imports run one way: no module of ``stream_cf.engine`` imports another that
(directly or not) imports it back, nothing in the engine imports Kafka or the processor, and the
processor imports no similarity formula. Read from the source files, so a cycle that only
exists under ``TYPE_CHECKING`` or inside a function fails too."""

from __future__ import annotations

import ast
from pathlib import Path

import stream_cf

PACKAGE = Path(stream_cf.__file__).parent
ENGINE = PACKAGE / "engine"


def imported(path: Path) -> set[str]:
    """Every module name ``path`` imports (absolute, including ``from x import y`` as x.y)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def engine_graph() -> dict[str, set[str]]:
    modules = {p.stem for p in ENGINE.glob("*.py") if p.stem != "__init__"}
    graph: dict[str, set[str]] = {}
    for name in modules:
        deps = set()
        for full in imported(ENGINE / f"{name}.py"):
            parts = full.split(".")
            if parts[:2] == ["stream_cf", "engine"] and len(parts) > 2 and parts[2] in modules:
                deps.add(parts[2])
        graph[name] = deps - {name}
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_engine_imports_have_no_cycle() -> None:
    graph = engine_graph()
    assert len(graph) > 10
    assert cycle(graph) is None, " -> ".join(cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_model_is_on_top() -> None:
    """Nothing in the engine but its package face imports the public class's module."""
    graph = engine_graph()
    assert not [name for name, deps in graph.items() if "model" in deps]


def test_the_engine_knows_no_kafka_and_the_processor_no_formula() -> None:
    for path in ENGINE.glob("*.py"):
        names = imported(path)
        assert not [n for n in names if n.split(".")[0] == "kafka"], path
        assert not [n for n in names if n.startswith("stream_cf.processor")], path
    for path in (PACKAGE / "processor").glob("*.py"):
        names = imported(path)
        formulas = ("similarity", "neighbours", "knn", "pairs", "baseline", "ranking")
        assert not [n for n in names if n.split(".")[:3][-1] in formulas and "engine" in n], path
