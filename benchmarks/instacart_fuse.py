"""Fuse the lists dumped by ``instacart_rules.py --dump`` and print each fusion's hit@10.

    python benchmarks/instacart_fuse.py /tmp/lists_0.05:0.pkl /tmp/lists_0.05:1.pkl ...

A dump holds, per ranked event of one sample, the target item and each rule's top 50 (the
popularity list where the rule had no neighbour). Fusions, all over the lists alone:

- reciprocal-rank fusion of lists L_1..L_m with weights λ_l: score(i) = Σ_l λ_l / (k + rank_l(i))
  (rank from 0; ties by the best first appearance), the top 10;
- interleaving: the first n of list A, then B's items not yet listed, then the rest of A.

Needs the dumps of the rules ``base none rarity0.5-h10 boost0.2 h20`` (``--dump PREFIX``).
"""

from __future__ import annotations

import argparse
import pickle
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

Dump = dict[str, Any]  # rule name -> top-50 list per event; "target" -> item per event
Fusion = Callable[[Dump, int], list[int]]
ENSEMBLE = ("base", "none", "rarity0.5-h10", "boost0.2", "h20")


def rrf(lists: list[list[int]], weights: list[float], k: float) -> list[int]:
    score: dict[int, float] = {}
    first: dict[int, tuple[int, int]] = {}
    for n, (items, weight) in enumerate(zip(lists, weights, strict=True)):
        for rank, item in enumerate(items):
            score[item] = score.get(item, 0.0) + weight / (k + rank)
            first[item] = min(first.get(item, (rank, n)), (rank, n))
    return sorted(score, key=lambda item: (-score[item], first[item]))[:10]


def interleave(a: list[int], b: list[int], n: int) -> list[int]:
    out = list(a[:n])
    for item in [*b, *a[n:]]:
        if len(out) == 10:
            break
        if item not in out:
            out.append(item)
    return out


def top(dump: Dump, event: int, name: str) -> list[int]:
    head: list[int] = dump[name][event][:10]
    return head


def rrf_of(
    dump: Dump, event: int, names: tuple[str, ...], weights: list[float], k: float
) -> list[int]:
    return rrf([dump[name][event] for name in names], weights, k)


def interleave_of(dump: Dump, event: int, n: int) -> list[int]:
    return interleave(dump["base"][event], dump["popularity"][event], n)


def fusions() -> dict[str, Fusion]:
    out: dict[str, Fusion] = {"popularity": partial(top, name="popularity")}
    for name in ENSEMBLE:
        out[name] = partial(top, name=name)
    for k in (10.0, 60.0):
        for lam in (0.25, 0.5, 1.0):
            out[f"rrf base+popularity λ={lam:g} k={k:g}"] = partial(
                rrf_of, names=("base", "popularity"), weights=[1.0, lam], k=k
            )
    for n in (5, 7, 8, 9):
        out[f"base's first {n}, then popularity"] = partial(interleave_of, n=n)
    for k in (5.0, 20.0, 60.0):
        out[f"rrf of the five votes k={k:g}"] = partial(
            rrf_of, names=ENSEMBLE, weights=[1.0] * 5, k=k
        )
        out[f"rrf of the five votes + popularity k={k:g}"] = partial(
            rrf_of, names=(*ENSEMBLE, "popularity"), weights=[1.0] * 6, k=k
        )
    for other in ("none", "boost0.2", "h20"):
        out[f"rrf base+{other} k=60"] = partial(
            rrf_of, names=("base", other), weights=[1.0, 1.0], k=60.0
        )
    return out


def hit(dump: Dump, fusion: Fusion) -> float:
    targets = dump["target"]
    return sum(targets[e] in fusion(dump, e) for e in range(len(targets))) / len(targets)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dumps", nargs="+")
    args = parser.parse_args(argv)
    dumps = []
    for path in args.dumps:
        with open(path, "rb") as handle:
            dumps.append(pickle.load(handle))
    popular = [hit(d, fusions()["popularity"]) for d in dumps]
    for name, fusion in fusions().items():
        ratios = [hit(d, fusion) / p for d, p in zip(dumps, popular, strict=True)]
        cells = "  ".join(f"{r * p:.4f} ({r:.2f}x)" for r, p in zip(ratios, popular, strict=True))
        print(f"{name:40s} {cells}  mean {sum(ratios) / len(ratios):.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
