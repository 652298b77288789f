"""The one connection config: environment reading, client keywords, secrets kept out of reprs."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_cf.exceptions import ConfigError
from stream_cf.kafka_config import ConnectionConfig
from stream_cf.processor.settings import load_settings

SECRET = "pa55-w0rd"


def test_the_brokers_come_from_the_argument_then_the_variables_then_the_default() -> None:
    env = {"STREAM_CF_BOOTSTRAP_SERVERS": "s:1", "KAFKA_BOOTSTRAP_SERVERS": "k:1"}
    assert ConnectionConfig.from_env("a:1", env).bootstrap_servers == "a:1"
    assert ConnectionConfig.from_env(None, env).bootstrap_servers == "s:1"
    assert ConnectionConfig.from_env(None, {"KAFKA_BOOTSTRAP_SERVERS": "k:1"}).servers == ["k:1"]
    assert ConnectionConfig.from_env(None, {}).servers == ["localhost:9092"]


def test_plaintext_adds_no_security_keywords() -> None:
    config = ConnectionConfig.from_env("a:1, b:2", {"UNRELATED": "x"})
    assert config.client_kwargs("me", acks="all") == {
        "bootstrap_servers": ["a:1", "b:2"],
        "client_id": "me",
        "acks": "all",
    }


def test_security_from_the_variables_in_any_case(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    env = {
        "STREAM_CF_SECURITY_PROTOCOL": "SASL_SSL",
        "stream_cf_sasl_mechanism": "SCRAM-SHA-512",
        "STREAM_CF_SASL_PLAIN_USERNAME": "alice",
        "STREAM_CF_SASL_PLAIN_PASSWORD": SECRET,
        "STREAM_CF_SSL_CAFILE": str(ca),
        "STREAM_CF_SSL_CHECK_HOSTNAME": "false",
        "STREAM_CF_K": "not a connection setting",  # other STREAM_CF_ variables are ignored
    }
    config = ConnectionConfig.from_env("a:1", env)
    kwargs = config.client_kwargs("me")
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("alice", SECRET)
    assert (kwargs["ssl_cafile"], kwargs["ssl_check_hostname"]) == (str(ca), False)
    assert "SaslHandshake" in config.connection_hint()


def test_secrets_stay_out_of_reprs_and_errors() -> None:
    config = ConnectionConfig(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_plain_username="alice",
        sasl_plain_password=SECRET,  # type: ignore[arg-type]
    )
    assert SECRET not in repr(config)
    assert SECRET not in str(config)
    assert SECRET not in str(config.model_dump())
    with pytest.raises(ConfigError, match="sasl_mechanism") as info:
        ConnectionConfig.from_env(
            "a:1",
            {"STREAM_CF_SECURITY_PROTOCOL": "SASL_SSL", "STREAM_CF_SASL_PLAIN_PASSWORD": SECRET},
        )
    assert SECRET not in str(info.value)


def test_the_config_is_frozen() -> None:
    config = ConnectionConfig()
    with pytest.raises(ValueError, match="frozen"):
        config.bootstrap_servers = "other:1"  # type: ignore[misc]


def test_the_processor_settings_build_on_it(tmp_path: Path) -> None:
    settings = load_settings(
        bootstrap_servers="a:1,b:2",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_plain_username="alice",
        sasl_plain_password=SECRET,
        retry_backoff_max=2.0,
        bootstrap_timeout=4.0,
    )
    connection = settings.connection()
    assert isinstance(connection, ConnectionConfig)
    assert settings.kafka_config() == {
        **connection.client_kwargs(),
        "reconnect_backoff_max_ms": 2000,
        "bootstrap_timeout_ms": 4000,
    }
    assert settings.kafka_config()["sasl_plain_password"] == SECRET
