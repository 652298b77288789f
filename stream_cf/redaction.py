"""Secrets never reach the log: a logging filter that masks the values of password-like keys.

kafka-python logs its whole configuration at DEBUG (``Starting KafkaAdminClient with
configuration: {..., 'sasl_plain_password': '...'}``), and a record may quote keyword arguments
(``ssl_password='...'``). :class:`RedactSecrets` rewrites such a record's message with the value
replaced by ``'***'`` before any handler formats it; the CLI puts it on the handlers it creates
(:func:`install`), so it covers every logger, kafka-python's included. The settings keep the
passwords as ``SecretStr`` and hide input values in their errors; this is the net under that.
"""

from __future__ import annotations

import logging
import re

MASK = "***"

# key names whose values are secret: passwords, tokens, secrets, private keys, credentials
_KEY = r"[\w.-]*(?:password|passwd|secret|token|credential|private_key)[\w.-]*"
# a key (quoted or not) followed by ':' or '=' and a value: quoted, or up to a separator
_PAIR = re.compile(
    rf"""(?P<key>['"]?{_KEY}['"]?\s*[:=]\s*)"""
    r"""(?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s,;}\)\]]+)""",
    re.IGNORECASE,
)
_HINTS = ("password", "passwd", "secret", "token", "credential", "private_key")


def redact(text: str) -> str:
    """``text`` with the value of every password-like ``key: value`` or ``key=value`` masked
    (``None`` values are left as they are: they reveal nothing)."""
    lowered = text.lower()
    if not any(hint in lowered for hint in _HINTS):
        return text

    def mask(match: re.Match[str]) -> str:
        value = match.group("value")
        if value == "None":
            return match.group(0)
        quote = value[0] if value[:1] in ("'", '"') else ""
        return f"{match.group('key')}{quote}{MASK}{quote}"

    return _PAIR.sub(mask, text)


class RedactSecrets(logging.Filter):
    """Masks secrets in a record's message (and its formatted exception) before it is emitted."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_text is None:
            formatter = logging.Formatter()
            record.exc_text = redact(formatter.formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install(logger: logging.Logger | None = None) -> None:
    """Put a :class:`RedactSecrets` on every handler of ``logger`` (default: the root logger)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactSecrets) for f in handler.filters):
            handler.addFilter(RedactSecrets())
