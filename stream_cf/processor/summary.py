"""What one processor run did: the counts, times and positions :meth:`Processor.run
<stream_cf.processor.loop.Processor.run>` returns (``stream-cf run --json`` prints them) and
``/metrics`` reads while it runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class RunSummary:
    """What one :meth:`Processor.run` did."""

    events: int = 0
    dead_letters: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    published: int = 0
    tombstones: int = 0
    recomputed: int = 0
    apply_seconds: float = 0.0
    recommend_seconds: float = 0.0
    batches: int = 0
    checkpoints: int = 0
    restored: bool = False
    # exactly-once restart: input records applied again without publishing (already committed)
    replayed: int = 0
    start_offsets: dict[int, int] = field(default_factory=dict)
    end_offsets: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    stopped_by: str = ""
    # input records not yet applied at the last checkpoint (high watermark - position, summed
    # over the partitions; None before the first fetch)
    input_lag: int | None = None
    # scale-out: rebalances ended here, the users gained in them, and the partitions owned now
    rebalances: int = 0
    gained_users: int = 0
    owned_partitions: list[int] = field(default_factory=list)
    # the engine's footprint at the last checkpoint (model.footprint()): the pair sums' bytes
    # (scale-out: the owned users' rows only) and the whole state's
    pair_bytes: int = 0
    state_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)
