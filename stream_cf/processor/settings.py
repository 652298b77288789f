"""The processor's configuration: one typed, frozen settings class.

Every field can be given as a keyword (the CLI passes its flags that way) or as a
``STREAM_CF_<FIELD>`` environment variable (keywords win). Choices are ``Literal`` types,
passwords are ``SecretStr`` (never logged), and the rules that tie fields together are checked at
construction with the offending values in the message (:class:`~stream_cf.exceptions.ConfigError`).
"""

from __future__ import annotations

import math
import socket
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from stream_cf.engine.config import (
    NeighbourRecency,
    RankMode,
    default_item_residual,
    default_pair_sums,
    default_rarity,
    default_shrinkage,
    default_similarity,
    default_vote_shape,
)
from stream_cf.engine.validation import VALUE_LIMIT
from stream_cf.events import DEFAULT_MAX_FUTURE_SKEW
from stream_cf.exceptions import ConfigError
from stream_cf.kafka_config import ConnectionConfig, ConnectionFields

Similarity = Literal["cosine", "msd", "pearson", "adjusted_cosine"]
Predictor = Literal["knn_baseline", "knn_means"]
Feedback = Literal["explicit", "implicit"]
Refresh = Literal["actors", "neighbours"]
Guarantee = Literal["at-least-once", "exactly-once"]


def _parse_scale(value: Any) -> Any:
    """Accept ``"1,5"``, ``"1 5"``, ``"[1, 5]"`` or a pair of numbers."""
    if isinstance(value, str):
        text = value.strip().strip("[]()")
        parts = [p for p in text.replace(",", " ").split() if p]
        return tuple(parts)
    return value


RatingScale = Annotated[tuple[float, float], NoDecode, BeforeValidator(_parse_scale)]


class ProcessorSettings(BaseSettings, ConnectionFields):
    """Settings of ``stream-cf run`` (and of :class:`~stream_cf.processor.loop.Processor`)."""

    model_config = SettingsConfigDict(
        env_prefix="STREAM_CF_",
        frozen=True,
        extra="forbid",
        case_sensitive=False,
        hide_input_in_errors=True,  # a validation error would otherwise quote the passwords
    )

    # Kafka (bootstrap_servers: a field of ConnectionFields)
    input_topic: str = Field("cf.events", min_length=1)
    output_topic: str = Field("cf.recommendations", min_length=1)
    dlq_topic: str | None = Field(None, description="default: '<input topic>.dlq'")
    group_id: str = Field("stream-cf", min_length=1)
    partitions: int = Field(1, ge=1, description="partitions of the topics the processor creates")
    replication_factor: int = Field(1, ge=1)
    max_request_size: int = Field(
        1_048_576,
        ge=65_536,
        description="largest record batch the producer sends (bytes); larger dead letters are cut",
    )
    # Security (passed to every Kafka client): the fields of ConnectionFields
    # Engine (UserKNN constructor): the ranking of the lists, then the predictor's neighbourhood
    rank: RankMode = "vote"
    rank_half_life: float = Field(5.0, gt=0.0)
    rank_neighbours: int = Field(80, ge=1)
    rank_exponent: float | None = Field(None, gt=0.0, description="2 explicit, 1 implicit")
    rank_damping: float | None = Field(
        None, ge=-1.0, le=1.0, description="0.2 explicit, 0 implicit"
    )
    include_seen: bool = False
    rank_neighbour_recency: NeighbourRecency = "shared"
    rank_neighbour_half_life: float = Field(5.0, gt=0.0)
    rank_rarity: float | None = Field(None, ge=0.0, le=2.0, description="0 (both feedbacks)")
    similarity: Similarity | None = Field(
        None,
        description="default: the predictor's (knn_baseline adjusted_cosine, knn_means pearson); "
        "implicit feedback uses cosine",
    )
    k: int = Field(40, ge=1)
    min_k: int = Field(1, ge=0)
    min_support: int = Field(1, ge=0)
    min_similarity: float | None = 0.0
    shrinkage: float | None = Field(
        None, ge=0.0, description="default: the predictor's (knn_baseline 100, knn_means 0)"
    )
    feedback: Feedback = "explicit"
    rating_scale: RatingScale = (1.0, 5.0)
    # knn_means, not the engine's knn_baseline: a knn_baseline score depends on μ and every b_i,
    # which every rating moves, so no refresh policy short of every user keeps all lists exact
    predictor: Predictor = Field("knn_means", description="the rating estimator (explicit)")
    baseline_reg_items: float = Field(10.0, ge=0.0, description="knn_baseline: λ_i of b_i")
    baseline_reg_users: float = Field(5.0, ge=0.0, description="knn_baseline: λ_u of b_u")
    damping: float = Field(0.5, ge=0.0, description="knn_baseline: λ added to Σ|w|")
    item_residual: int | None = Field(
        None, ge=0, description="knn_baseline: item neighbours of the item-based residual (0 off)"
    )
    item_shrinkage: float = Field(100.0, ge=0.0, description="knn_baseline: β of s_ij·n/(n+β)")
    # Validation of the input
    max_id_length: int = Field(256, ge=1)
    max_future_skew: float = Field(
        DEFAULT_MAX_FUTURE_SKEW,
        ge=0.0,
        description="seconds an event's ts may be after its record's append time (one day)",
    )
    # Output and loop
    n: int = Field(10, ge=1, description="length of each published list")
    refresh: Refresh = "neighbours"
    guarantee: Guarantee = Field(
        "at-least-once",
        description="exactly-once: each batch's lists, tombstones, dead letters and input offsets "
        "commit as one Kafka transaction (see processor/transactions.py)",
    )
    transactional_id: str | None = Field(
        None,
        min_length=1,
        description="exactly-once: the producer's transactional id, stable across restarts "
        "(default: 'stream-cf.<group id>.<input topic>')",
    )
    accept_new_input_topic: bool = Field(
        False,
        description="keep the state when the input topic was re-created since the checkpoint and "
        "read the new topic from its beginning (else: stop with an error)",
    )
    scale_out: bool = Field(
        False,
        description="share the input with the other instances of the group: every instance reads "
        "every partition for the ratings, and owns (keeps pair rows for, computes and publishes "
        "the lists of) the users whose keys hash to the partitions the group assigns it",
    )
    session_timeout: float = Field(
        10.0,
        ge=1.0,
        le=1800.0,
        description="scale-out: seconds without a heartbeat before the group moves an instance's "
        "partitions to the others (the broker bounds it: group.min/max.session.timeout.ms)",
    )
    state_dir: Path = Field(
        Path("stream-cf-state"),
        description="directory of the checkpoint; '{host}' in it is replaced by the host name "
        "(one directory per instance on a shared volume)",
    )
    checkpoint_interval: float = Field(30.0, gt=0.0, description="seconds between checkpoints")
    max_batch: int = Field(20_000, ge=1, description="most records applied as one batch")
    refresh_budget: float = Field(
        0.05, gt=0.0, description="seconds per loop spent on pending neighbour refreshes"
    )
    poll_timeout: float = Field(0.2, gt=0.0, description="seconds one poll waits for records")
    retry_backoff_max: float = Field(5.0, gt=0.0, description="longest wait between retries (s)")
    bootstrap_timeout: float = Field(
        30.0,
        gt=0.0,
        le=3600.0,
        description="seconds a Kafka client waits for the broker's first metadata before that "
        "attempt fails (then retried with backoff, or reported)",
    )
    shutdown_timeout: float = Field(
        30.0, gt=0.0, description="seconds to keep trying to publish after a stop request"
    )
    # Operations
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="serve /metrics and /healthz on this port (0: any)"
    )
    metrics_host: str = "127.0.0.1"

    @field_validator(
        "min_similarity",
        "shrinkage",
        "max_future_skew",
        "rank_half_life",
        "rank_exponent",
        "rank_neighbour_half_life",
        "rank_rarity",
        "baseline_reg_items",
        "baseline_reg_users",
        "damping",
        "item_shrinkage",
    )
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError(f"must be finite, got {value}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _implicit_default_similarity(cls, data: Any) -> Any:
        """With ``feedback=implicit`` and no similarity named, the similarity is cosine."""
        if (
            isinstance(data, dict)
            and data.get("feedback") == "implicit"
            and data.get("similarity") is None
        ):
            return {**data, "similarity": "cosine"}
        return data

    @model_validator(mode="after")
    def _cross_field(self) -> ProcessorSettings:
        problems: list[str] = []
        low, high = self.rating_scale
        if not (-VALUE_LIMIT <= low < high <= VALUE_LIMIT):
            problems.append(
                f"rating_scale must be two numbers low < high, got {low}, {high} (each within "
                f"±{VALUE_LIMIT:g})"
            )
        if self.feedback == "implicit" and self.similarity != "cosine":
            problems.append(
                f"feedback=implicit uses cosine on the feedback weights; similarity="
                f"{self.similarity} cannot be used with it"
            )
        if self.min_k > self.k:
            problems.append(f"min_k ({self.min_k}) must not exceed k ({self.k})")
        topics = {
            "input_topic": self.input_topic,
            "output_topic": self.output_topic,
            "dlq_topic": self.dead_letter_topic,
        }
        if self.scale_out and self.exactly_once:
            problems.append(
                "scale_out works at least once: exactly-once commits the input offsets of every "
                "partition in one transaction, which instances sharing the input cannot do"
            )
        if len(set(topics.values())) < 3:
            problems.append(f"the input, output and dead-letter topics must differ, got {topics}")
        problems += self.security_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def dead_letter_topic(self) -> str:
        """The dead-letter topic: ``dlq_topic`` or ``<input topic>.dlq``."""
        return self.dlq_topic or f"{self.input_topic}.dlq"

    @property
    def exactly_once(self) -> bool:
        """Whether the outputs and the input offsets commit in Kafka transactions."""
        return self.guarantee == "exactly-once"

    @property
    def transaction_id(self) -> str:
        """The transactional id: ``transactional_id`` or ``stream-cf.<group id>.<input topic>``,
        the same at every restart, so that a restarted instance fences its predecessor."""
        return self.transactional_id or f"stream-cf.{self.group_id}.{self.input_topic}"

    @field_validator("state_dir", mode="after")
    @classmethod
    def _host_in_state_dir(cls, value: Path) -> Path:
        """``{host}`` in the state directory stands for this machine's (container's) host name."""
        text = str(value)
        if "{host}" in text:
            return Path(text.replace("{host}", socket.gethostname()))
        return value

    @property
    def checkpoint_path(self) -> Path:
        """The one checkpoint file in ``state_dir``."""
        return self.state_dir / "checkpoint.scf"

    def engine_config(self) -> dict[str, Any]:
        """The keywords of the ``UserKNN`` constructor these settings ask for."""
        shape = default_vote_shape(self.feedback)  # what None stands for, as UserKNN reads it
        return {
            "rank": self.rank,
            "rank_half_life": self.rank_half_life,
            "rank_neighbours": self.rank_neighbours,
            "rank_exponent": shape[0] if self.rank_exponent is None else self.rank_exponent,
            "rank_damping": shape[1] if self.rank_damping is None else self.rank_damping,
            "include_seen": self.include_seen,
            "rank_neighbour_recency": self.rank_neighbour_recency,
            "rank_neighbour_half_life": self.rank_neighbour_half_life,
            "rank_rarity": (
                default_rarity(self.feedback) if self.rank_rarity is None else self.rank_rarity
            ),
            "similarity": (
                default_similarity(self.predictor, self.feedback)
                if self.similarity is None
                else self.similarity
            ),
            "k": self.k,
            "min_k": self.min_k,
            "min_support": self.min_support,
            "min_similarity": self.min_similarity,
            "shrinkage": (
                default_shrinkage(self.predictor, self.feedback)
                if self.shrinkage is None
                else self.shrinkage
            ),
            "rating_scale": (float(self.rating_scale[0]), float(self.rating_scale[1])),
            "feedback": self.feedback,
            "predictor": self.predictor,
            "baseline_reg_items": self.baseline_reg_items,
            "baseline_reg_users": self.baseline_reg_users,
            "damping": self.damping,
            "item_residual": (
                default_item_residual(self.predictor, self.feedback)
                if self.item_residual is None
                else self.item_residual
            ),
            "item_shrinkage": self.item_shrinkage,
            # scale-out: pair rows for the owned users only, where the configuration keeps them
            "pair_rows": (
                "owned" if self.scale_out and default_pair_sums(self.feedback, self.rank) else "all"
            ),
        }

    def connection(self) -> ConnectionConfig:
        """The brokers and security options these settings name (see kafka_config.py)."""
        # validated already, by the same rules (security_problems): not checked again per client
        return ConnectionConfig.model_construct(
            **{name: getattr(self, name) for name in ConnectionConfig.model_fields}
        )

    def connection_hint(self) -> str:
        """What a failed bootstrap may mean with these security settings (see
        :meth:`ConnectionConfig.connection_hint`)."""
        return self.connection().connection_hint()

    def kafka_config(self) -> dict[str, Any]:
        """Connection and security keywords shared by every kafka-python client."""
        return {
            **self.connection().client_kwargs(),
            "reconnect_backoff_max_ms": int(self.retry_backoff_max * 1000),
            "bootstrap_timeout_ms": int(self.bootstrap_timeout * 1000),
        }


def load_settings(**overrides: Any) -> ProcessorSettings:
    """Build the settings from keywords and ``STREAM_CF_*`` variables, or raise ConfigError."""
    try:
        return ProcessorSettings(**overrides)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        raise ConfigError(f"invalid processor settings: {details}") from exc
