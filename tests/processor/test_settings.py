"""Settings: defaults, environment variables, flags, cross-field checks with values in messages."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from stream_cf.cli.run import FIELDS
from stream_cf.engine import UserKNN
from stream_cf.exceptions import ConfigError
from stream_cf.processor.settings import ProcessorSettings, load_settings


def test_defaults_follow_the_contract() -> None:
    settings = load_settings()
    assert settings.input_topic == "cf.events"
    assert settings.output_topic == "cf.recommendations"
    assert settings.dead_letter_topic == "cf.events.dlq"
    assert settings.refresh == "neighbours"
    assert settings.engine_config()["rating_scale"] == (1.0, 5.0)


def test_default_engine_settings_are_the_engines_knn_means_defaults() -> None:
    """The processor's engine keywords default to UserKNN's own defaults, but for the predictor:
    knn_means, whose lists the refresh policies keep exact (a knn_baseline score moves with
    every rating anywhere, through μ and b_i)."""
    wanted = load_settings().engine_config()
    assert wanted == {key: UserKNN(predictor="knn_means").config()[key] for key in wanted}
    baseline = load_settings(predictor="knn_baseline").engine_config()
    assert baseline == {key: UserKNN().config()[key] for key in wanted}


def test_environment_variables_and_keywords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_CF_INPUT_TOPIC", "in")
    monkeypatch.setenv("STREAM_CF_K", "7")
    monkeypatch.setenv("STREAM_CF_RATING_SCALE", "0.5,10")
    monkeypatch.setenv("STREAM_CF_REFRESH", "actors")
    settings = load_settings(k=9)
    assert settings.input_topic == "in"
    assert settings.dead_letter_topic == "in.dlq"
    assert settings.k == 9  # keywords (flags) win over the environment
    assert settings.rating_scale == (0.5, 10.0)
    assert settings.refresh == "actors"


def test_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.k = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"min_k": 5, "k": 3}, r"min_k \(5\) must not exceed k \(3\)"),
        ({"rating_scale": "5,1"}, "low < high, got 5.0, 1.0"),
        ({"output_topic": "cf.events"}, "must differ"),
        ({"similarity": "jaccard"}, "similarity"),
        ({"refresh": "everyone"}, "refresh"),
        ({"security_protocol": "SASL_SSL"}, "needs sasl_mechanism"),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"},
            "needs sasl_plain_username and sasl_plain_password",
        ),
        ({"sasl_mechanism": "PLAIN"}, "security_protocol is PLAINTEXT"),
        ({"ssl_cafile": "/nonexistent/ca.pem"}, "ssl_cafile set but security_protocol"),
        ({"checkpoint_interval": 0}, "checkpoint_interval"),
        ({"max_id_length": 0}, "max_id_length"),
        ({"shrinkage": float("inf")}, "finite"),
        ({"max_future_skew": -1}, "max_future_skew"),
        ({"max_future_skew": float("inf")}, "max_future_skew: .*finite"),
        ({"rating_scale": "1,1e300"}, r"within ±1e\+12"),
        ({"scale_out": True, "guarantee": "exactly-once"}, "scale_out works at least once"),
        ({"session_timeout": 0.5}, "session_timeout"),
        ({"bootstrap_timeout": 0}, "bootstrap_timeout"),
    ],
)
def test_invalid_settings_name_the_values(overrides: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_settings(**overrides)


def test_password_is_secret_and_passed_to_clients(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    settings = load_settings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_plain_username="alice",
        sasl_plain_password="s3cret",
        ssl_cafile=str(ca),
    )
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in str(settings.model_dump())
    config = settings.kafka_config()
    assert config["sasl_plain_password"] == "s3cret"
    assert config["sasl_mechanism"] == "SCRAM-SHA-256"
    assert config["ssl_cafile"] == str(ca)
    assert config["security_protocol"] == "SASL_SSL"
    assert config["bootstrap_timeout_ms"] == 30_000
    assert load_settings(bootstrap_timeout=2.5).kafka_config()["bootstrap_timeout_ms"] == 2_500


def test_every_cli_flag_is_a_settings_field() -> None:
    assert set(FIELDS) <= set(ProcessorSettings.model_fields)


def test_cli_flags_build_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from stream_cf.cli import build_parser  # noqa: PLC0415

    monkeypatch.setenv("STREAM_CF_GROUP_ID", "from-env")
    args = build_parser().parse_args(
        ["run", "--k", "5", "--min-similarity", "none", "--refresh", "actors", "--until-end"]
    )
    given = {f: v for f, v in vars(args).items() if f in FIELDS}
    settings = load_settings(**given)
    assert (settings.k, settings.min_similarity, settings.refresh) == (5, None, "actors")
    assert settings.group_id == "from-env"
    assert args.until_end is True


def test_the_guarantee_and_the_transactional_id(monkeypatch: pytest.MonkeyPatch) -> None:
    default = load_settings(group_id="g", input_topic="in")
    assert default.guarantee == "at-least-once" and not default.exactly_once
    assert default.transaction_id == "stream-cf.g.in"  # stable: the same at every restart
    monkeypatch.setenv("STREAM_CF_GUARANTEE", "exactly-once")
    assert load_settings().exactly_once
    assert load_settings(transactional_id="mine").transaction_id == "mine"
    with pytest.raises(ConfigError, match="guarantee"):
        load_settings(guarantee="at-most-once")


def test_scale_out_state_dir_per_host_and_owned_rows() -> None:
    settings = load_settings(scale_out=True, state_dir="/var/lib/stream-cf/{host}")
    assert str(settings.state_dir) == f"/var/lib/stream-cf/{socket.gethostname()}"
    assert settings.engine_config()["pair_rows"] == "owned"  # explicit: pair sums kept
    implicit = load_settings(scale_out=True, feedback="implicit")
    assert implicit.engine_config()["pair_rows"] == "all"  # no pair sums to divide
    assert load_settings().engine_config()["pair_rows"] == "all"
