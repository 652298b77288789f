"""Secrets stay out of logs and errors: kafka-python's DEBUG configuration lines, the settings'
validation errors; and a failed bootstrap with SASL says what it may mean."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from stream_cf.exceptions import ConfigError
from stream_cf.processor.settings import ProcessorSettings, load_settings
from stream_cf.redaction import RedactSecrets, redact
from tests.kafka_utils import wait_until
from tests.processor.conftest import start_cli

pytestmark = [pytest.mark.timeout(120)]

SECRET = "s3cr3t-do-not-log"


@pytest.mark.parametrize(
    "text",
    [
        f"Starting KafkaAdminClient with configuration: {{'sasl_plain_password': '{SECRET}'}}",
        f"KafkaProducer(ssl_password=\"{SECRET}\", acks='all')",
        f"sasl.jaas.config password={SECRET}",
        f"{{'sasl_oauth_token': '{SECRET}', 'ssl_password': None}}",
    ],
)
def test_redact_masks_password_like_values(text: str) -> None:
    cleaned = redact(text)
    assert SECRET not in cleaned and "***" in cleaned


def test_redact_leaves_other_text_alone() -> None:
    text = "input topic cf.events: starting at offsets {0: 12}, 'ssl_password': None"
    assert redact(text) == text


def test_the_filter_masks_message_arguments_and_tracebacks() -> None:
    record = logging.LogRecord(
        "kafka.admin.client",
        logging.DEBUG,
        __file__,
        1,
        "config: %s",
        ({"sasl_plain_password": SECRET},),
        None,
    )
    assert RedactSecrets().filter(record)
    assert SECRET not in record.getMessage()
    try:
        raise ValueError(f"ssl_password={SECRET}")
    except ValueError:
        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    RedactSecrets().filter(failed)
    assert failed.exc_text is not None and SECRET not in failed.exc_text


def test_settings_errors_do_not_quote_passwords() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(security_protocol="SSL", ssl_cafile="/nonexistent", ssl_password=SECRET)
    assert "ssl_cafile=/nonexistent is not a file" in str(info.value)
    assert SECRET not in str(info.value) and SECRET not in str(info.value.__cause__)


@pytest.mark.kafka
def test_debug_logs_never_show_the_sasl_password(
    make_settings: Callable[..., ProcessorSettings], tmp_path: Path
) -> None:
    # SASL against the test broker's PLAINTEXT listener: the handshake fails, kafka-python logs
    # its configuration at DEBUG first
    settings = make_settings()
    log = tmp_path / "run.log"
    proc = start_cli(
        settings,
        log,
        "--security-protocol",
        "SASL_PLAINTEXT",
        "--sasl-mechanism",
        "PLAIN",
        "--sasl-plain-username",
        "cf",
        "--sasl-plain-password",
        SECRET,
        "--bootstrap-timeout",
        "3",
        log_level="DEBUG",
    )
    try:
        wait_until(
            lambda: "retrying in" in log.read_text() or proc.poll() is not None,
            60,
            what="a failed topic creation",
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    text = log.read_text()
    assert "with configuration:" in text, text[-2000:]
    assert SECRET not in text
    assert "SaslHandshake failed" in text and "sasl_mechanism=PLAIN" in text, text[-3000:]
