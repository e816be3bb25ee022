"""Keep secrets out of logs, messages and reprs.

Every module logger comes from :func:`get_logger`, which attaches
:class:`RedactingFilter`. A filter on the parent ``maquina_nb`` logger would not
see records propagated from child loggers, so each logger carries its own.
"""

from __future__ import annotations

import logging
import os
import re
import threading

__all__ = ["RedactingFilter", "get_logger", "mask", "redact", "register_secret"]

# Key-shaped strings: OpenAI (sk-, sk-proj-), Anthropic (sk-ant-), bearer tokens.
_KEY_PATTERN = re.compile(
    r"(sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{4})[A-Za-z0-9_\-]{4,}"
    r"|(Bearer\s+)[A-Za-z0-9_\-\.]{8,}"
    r"|((?:x-api-key|api[_-]?key|authorization)[\"']?\s*[:=]\s*[\"']?(?:Bearer\s+)?)"
    r"[^\s\"',}]{6,}",
    re.IGNORECASE,
)
# Passwords in URLs: scheme://user:password@host (database URLs, proxies).
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*:)[^@\s/]+(@)")
_KNOWN_ENV_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "MAQUINA_NB_API_KEY")
_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a secret value so that :func:`redact` removes it verbatim."""
    if not value:
        return
    with _lock:
        for candidate in {value, value.strip()}:
            if len(candidate) >= 6:
                _secrets.add(candidate)


def _env_secrets() -> set[str]:
    found = set()
    for name in _KNOWN_ENV_VARS:
        value = os.environ.get(name)
        if value and len(value.strip()) >= 6:
            found.add(value)
            found.add(value.strip())
    return found


def mask(value: str | None) -> str:
    """Return a fixed placeholder for a secret (never a prefix or suffix of it)."""
    return "<unset>" if not value else "<redacted>"


def redact(text: str) -> str:
    """Remove every key-shaped string and every known secret from ``text``."""
    if not text:
        return text

    # Key shapes first: replacing a registered secret that happens to be the
    # start of a longer key would otherwise leave the rest of that key unmatched.
    def _sub(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return "sk-<redacted>"
        return f"{match.group(2) or match.group(3)}<redacted>"

    text = _URL_PASSWORD.sub(r"\1<redacted>\2", text)
    text = _KEY_PATTERN.sub(_sub, text)

    with _lock:
        secrets = set(_secrets)
    secrets |= _env_secrets()
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "<redacted>")
    return text


class RedactingFilter(logging.Filter):
    """Rewrite a record's message and arguments with secrets removed."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(
                logging.Formatter().formatException(record.exc_info)
            )
            record.exc_info = None
        return True


_FILTER = RedactingFilter()


def get_logger(name: str) -> logging.Logger:
    """Return the logger for module ``name`` with the redaction filter attached."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger


def _apply_env_level() -> None:
    # NOTE: the only place the library sets a level, and only when asked to, as
    # openai's setup_logging does with OPENAI_LOG.
    level = os.environ.get("MAQUINA_NB_LOG", "").strip().lower()
    if level in {"debug", "info", "warning"}:
        logging.getLogger("maquina_nb").setLevel(level.upper())


_apply_env_level()
