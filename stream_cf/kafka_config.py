"""How every Kafka client of stream_cf connects: one frozen config, built once, reused by all.

:class:`ConnectionConfig` holds the brokers and the security options (passwords as ``SecretStr``,
never in a repr or a log line). :meth:`ConnectionConfig.from_env` reads them from the
``STREAM_CF_*`` variables once (the brokers also from ``KAFKA_BOOTSTRAP_SERVERS``);
:meth:`ConnectionConfig.client_kwargs` gives the keywords of a kafka-python client. The processor's
settings (``ProcessorSettings.connection()``), ``stream-cf replay``, ``stream-cf recommendations``
and ``stream-cf demo`` all build their clients from it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from stream_cf.exceptions import ConfigError

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI"]

#: Environment variables read, in order, for the brokers when none are given.
BOOTSTRAP_ENV = ("STREAM_CF_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS")
DEFAULT_BOOTSTRAP = "localhost:9092"
ENV_PREFIX = "STREAM_CF_"

_SSL_FILES = ("ssl_cafile", "ssl_certfile", "ssl_keyfile")


def security_problems(
    *,
    security_protocol: str,
    sasl_mechanism: str | None,
    sasl_plain_username: str | None,
    sasl_plain_password: SecretStr | None,
    ssl_files: Mapping[str, Path | None],
) -> list[str]:
    """What contradicts itself in these security options (empty: nothing), values named."""
    problems: list[str] = []
    sasl = security_protocol.startswith("SASL_")
    if sasl and sasl_mechanism is None:
        problems.append(
            f"security_protocol={security_protocol} needs sasl_mechanism "
            f"(PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, ...)"
        )
    if not sasl and sasl_mechanism is not None:
        problems.append(
            f"sasl_mechanism={sasl_mechanism} is set but security_protocol is "
            f"{security_protocol}; use SASL_PLAINTEXT or SASL_SSL"
        )
    if sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512") and (
        not sasl_plain_username or sasl_plain_password is None
    ):
        problems.append(
            f"sasl_mechanism={sasl_mechanism} needs sasl_plain_username and "
            f"sasl_plain_password (username given: {sasl_plain_username is not None}, "
            f"password given: {sasl_plain_password is not None})"
        )
    uses_ssl = security_protocol in ("SSL", "SASL_SSL")
    given = {name: path for name, path in ssl_files.items() if path is not None}
    if given and not uses_ssl:
        problems.append(
            f"{', '.join(given)} set but security_protocol is {security_protocol}; "
            f"use SSL or SASL_SSL"
        )
    for name, path in given.items():
        if not Path(path).is_file():
            problems.append(f"{name}={path} is not a file")
    return problems


def named_bootstrap(
    value: str | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    order: tuple[str, ...] = BOOTSTRAP_ENV,
) -> str | None:
    """``value``, else the first of the ``order`` variables set (not blank), else None."""
    if value:
        return value
    env = os.environ if environ is None else environ
    for name in order:
        found = env.get(name, "").strip()
        if found:
            return found
    return None


def resolve_bootstrap(value: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """``value``, else ``STREAM_CF_BOOTSTRAP_SERVERS``, else ``KAFKA_BOOTSTRAP_SERVERS``, else
    ``localhost:9092`` (the host listener of this repository's docker compose)."""
    return named_bootstrap(value, environ) or DEFAULT_BOOTSTRAP


def split_servers(servers: str) -> list[str]:
    """``"a:1, b:2"`` -> ``["a:1", "b:2"]``."""
    return [s.strip() for s in servers.split(",") if s.strip()]


class ConnectionFields(BaseModel):
    """The connection fields, declared once: :class:`ConnectionConfig` and the processor's
    settings (which read them from flags and ``STREAM_CF_*`` variables) both have them."""

    bootstrap_servers: str = Field(DEFAULT_BOOTSTRAP, min_length=1)
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_password: SecretStr | None = None
    ssl_check_hostname: bool = True

    def security_problems(self) -> list[str]:
        """What is wrong with the security options (see :func:`security_problems`)."""
        return security_problems(
            security_protocol=self.security_protocol,
            sasl_mechanism=self.sasl_mechanism,
            sasl_plain_username=self.sasl_plain_username,
            sasl_plain_password=self.sasl_plain_password,
            ssl_files={name: getattr(self, name) for name in _SSL_FILES},
        )


class ConnectionConfig(ConnectionFields):
    """The brokers and the security options of a Kafka client (frozen; passwords secret)."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    @model_validator(mode="after")
    def _consistent(self) -> ConnectionConfig:
        problems = self.security_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @classmethod
    def from_env(
        cls, bootstrap_servers: str | None = None, environ: Mapping[str, str] | None = None
    ) -> ConnectionConfig:
        """The config of the ``STREAM_CF_<FIELD>`` variables (names in any case). The brokers:
        ``bootstrap_servers`` if given, else ``STREAM_CF_BOOTSTRAP_SERVERS``, else
        ``KAFKA_BOOTSTRAP_SERVERS``, else ``localhost:9092``. ConfigError if they contradict
        each other (the message never quotes a password)."""
        env = os.environ if environ is None else environ
        upper = {name.upper(): value for name, value in env.items()}
        values: dict[str, Any] = {"bootstrap_servers": resolve_bootstrap(bootstrap_servers, upper)}
        for field in cls.model_fields:
            value = upper.get(f"{ENV_PREFIX}{field.upper()}")
            if value is not None and field != "bootstrap_servers":
                values[field] = value
        try:
            return cls(**values)
        except ValidationError as exc:
            details = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
                for err in exc.errors(include_url=False)
            )
            raise ConfigError(f"invalid Kafka connection settings: {details}") from exc

    @property
    def servers(self) -> list[str]:
        """The brokers as a list."""
        return split_servers(self.bootstrap_servers)

    def security_kwargs(self) -> dict[str, Any]:
        """The kafka-python security keywords (none for PLAINTEXT, kafka-python's default)."""
        config: dict[str, Any] = {}
        if self.security_protocol != "PLAINTEXT":
            config["security_protocol"] = self.security_protocol
        if self.sasl_mechanism is not None:
            config["sasl_mechanism"] = self.sasl_mechanism
        if self.sasl_plain_username is not None:
            config["sasl_plain_username"] = self.sasl_plain_username
        if self.sasl_plain_password is not None:
            config["sasl_plain_password"] = self.sasl_plain_password.get_secret_value()
        if self.security_protocol in ("SSL", "SASL_SSL"):
            config["ssl_check_hostname"] = self.ssl_check_hostname
            for name in _SSL_FILES:
                value = getattr(self, name)
                if value is not None:
                    config[name] = str(value)
            if self.ssl_password is not None:
                config["ssl_password"] = self.ssl_password.get_secret_value()
        return config

    def client_kwargs(self, client_id: str | None = None, **extra: Any) -> dict[str, Any]:
        """Keywords of a kafka-python client: the brokers, ``client_id``, the security options,
        then ``extra``."""
        config: dict[str, Any] = {"bootstrap_servers": self.servers}
        if client_id is not None:
            config["client_id"] = client_id
        config.update(self.security_kwargs())
        config.update(extra)
        return config

    def connection_hint(self) -> str:
        """What a failed bootstrap may mean with these security settings ('' for PLAINTEXT):
        kafka-python reports a refused SASL handshake or wrong credentials only in its own ERROR
        log lines, then 'Unable to bootstrap'."""
        if self.security_protocol.startswith("SASL_"):
            return (
                f"; with security_protocol={self.security_protocol} and sasl_mechanism="
                f"{self.sasl_mechanism} this is also what a listener without SASL, a mechanism "
                f"the broker does not enable or wrong credentials give: kafka-python's ERROR "
                f"lines 'SaslHandshake failed' or 'SaslAuthenticate failed' say which"
            )
        if self.security_protocol == "SSL":
            return "; with security_protocol=SSL this is also what a failed TLS handshake gives"
        return ""
