"""``ServeSettings``: the processor's connection fields and environment, checked at start-up."""

from __future__ import annotations

import pytest

from stream_cf.exceptions import ConfigError
from stream_cf.serve import load_serve_settings

pytestmark = pytest.mark.timeout(30)


def test_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_CF_OUTPUT_TOPIC", "shop.lists")
    monkeypatch.setenv("STREAM_CF_INPUT_TOPIC", "ignored: a processor setting")
    settings = load_serve_settings(port=9000)
    assert settings.output_topic == "shop.lists"
    assert (settings.host, settings.port) == ("127.0.0.1", 9000)
    assert settings.max_id_length == 256 and settings.fetch_wait == 0.05
    assert load_serve_settings().port == 8080


def test_security_rules_and_no_password_in_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        load_serve_settings(security_protocol="PLAINTEXT", sasl_mechanism="PLAIN",
                            sasl_plain_username="cf", sasl_plain_password="hunter2")  # fmt: skip
    assert "sasl_mechanism=PLAIN is set but security_protocol is PLAINTEXT" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    settings = load_serve_settings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="cf",
        sasl_plain_password="hunter2",
    )
    kwargs = settings.connection().client_kwargs("x")
    assert kwargs["sasl_plain_password"] == "hunter2" and "hunter2" not in repr(settings)
    with pytest.raises(ConfigError, match="port"):
        load_serve_settings(port=70_000)
