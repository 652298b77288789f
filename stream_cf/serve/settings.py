"""The settings of ``stream-cf serve``: one typed, frozen class, like the processor's.

Every field is a keyword (the CLI passes its flags that way) or a ``STREAM_CF_<FIELD>``
environment variable (keywords win). The Kafka connection and security fields are the
processor's own (:class:`~stream_cf.kafka_config.ConnectionFields`), so one set of
``STREAM_CF_*`` variables configures the processor and the server alike; ``max_id_length`` is
the processor's limit too (a longer id can never have a list).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream_cf.events import DEFAULT_MAX_ID_LENGTH
from stream_cf.exceptions import ConfigError
from stream_cf.kafka_config import ConnectionConfig, ConnectionFields

DEFAULT_PORT = 8080


class ServeSettings(BaseSettings, ConnectionFields):
    """Settings of ``stream-cf serve`` (and of :func:`stream_cf.serve.server.build_app`)."""

    model_config = SettingsConfigDict(
        env_prefix="STREAM_CF_",
        frozen=True,
        extra="forbid",
        case_sensitive=False,
        hide_input_in_errors=True,  # a validation error would otherwise quote the passwords
    )

    # bootstrap_servers and the security options: the fields of ConnectionFields
    output_topic: str = Field("cf.recommendations", min_length=1)
    host: str = Field("127.0.0.1", min_length=1, description="address the HTTP server binds")
    port: int = Field(DEFAULT_PORT, ge=0, le=65535, description="HTTP port (0: any free port)")
    max_id_length: int = Field(
        DEFAULT_MAX_ID_LENGTH,
        ge=1,
        description="longest user id in characters (the processor's limit); longer: 422",
    )
    max_target_length: int = Field(
        8192,
        ge=256,
        description="longest request target (path and query, as sent, in bytes); longer: 414",
    )
    popular_size: int = Field(
        100, ge=1, le=10_000, description="items in the popularity list (?fallback=popular)"
    )
    poll_timeout: float = Field(0.1, gt=0.0, le=5.0, description="seconds one poll waits (s)")
    fetch_wait: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="seconds a fetch waits for more records (fewer fetches; more delay per list)",
    )
    stats_interval: float = Field(
        1.0, gt=0.0, description="seconds between end-offset (lag) requests to the broker"
    )
    retry_backoff_max: float = Field(5.0, gt=0.0, description="longest wait between retries (s)")

    @model_validator(mode="after")
    def _cross_field(self) -> ServeSettings:
        problems = self.security_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def connection(self) -> ConnectionConfig:
        """The brokers and security options these settings name (see kafka_config.py)."""
        # validated already, by the same rules (security_problems)
        return ConnectionConfig.model_construct(
            **{name: getattr(self, name) for name in ConnectionConfig.model_fields}
        )


def load_serve_settings(**overrides: Any) -> ServeSettings:
    """The settings of keywords and ``STREAM_CF_*`` variables, or ConfigError naming the fields
    (never quoting a password)."""
    try:
        return ServeSettings(**overrides)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        raise ConfigError(f"invalid serve settings: {details}") from exc
