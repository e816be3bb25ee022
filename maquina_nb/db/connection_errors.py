"""Database errors told in one sentence that says what to do.

Drivers explain a failed connection in their own words, over several lines
(psycopg: the reason, a newline, a tab and a hint; a name with two addresses
gets one such block per address). :func:`explain_database_error` reads those
words for the usual failures (nothing listening, an unknown host, a refused
login, a missing database) and says, in one line, which part of the URL to look
at. The URL's password is never in the sentence; a URL that cannot be read is
not repeated at all (:func:`unreadable_url_message`).
"""

from __future__ import annotations

import re

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from maquina_nb._redact import redact

__all__ = ["explain_database_error", "unreadable_url_message"]

_OPTION = "--db or MAQUINA_DB_URL"
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}

# Lower-cased driver phrases, and how each is said in the sentence.
_UNREACHABLE = (
    ("connection refused", "connection refused"),
    ("timeout expired", "no answer in time"),
    ("timed out", "no answer in time"),
    ("no route to host", "no route to the host"),
    ("network is unreachable", "network unreachable"),
)
_UNKNOWN_HOST = (
    "name or service not known",
    "failed to resolve host",
    "could not translate host name",
    "nodename nor servname",
    "temporary failure in name resolution",
)
_LOGIN_REFUSED = re.compile(
    r"(password authentication failed for user \"[^\"]*\""
    r"|role \"[^\"]*\" does not exist"
    r"|no password supplied"
    r"|no pg_hba\.conf entry[^\n]*)",
    re.IGNORECASE,
)
_NO_DATABASE = re.compile(r"database \"([^\"]*)\" does not exist", re.IGNORECASE)


def _address(url: URL) -> str:
    if not url.host:
        return "the local socket"
    port = url.port or _DEFAULT_PORTS.get(url.get_backend_name())
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{host}:{port}" if port else host


def _one_line(text: str, password: str | None) -> str:
    if password:
        text = text.replace(password, "***")
    return redact(" ".join(text.split()))


def unreadable_url_message(exc: BaseException) -> str:
    """Say that a database URL could not be read (without repeating it)."""
    return (
        f"The database URL could not be read ({_one_line(str(exc), None)}); write "
        "it as sqlite:///path/to/file.db or postgresql+psycopg://user@host:port/name "
        f"({_OPTION})."
    )


def explain_database_error(url: str | URL, exc: BaseException) -> str:
    """Return one sentence telling what failed with the database and what to do.

    Args:
        url: the database URL that was used (its password is never shown).
        exc: the error, usually a SQLAlchemy ``DBAPIError`` wrapping the
            driver's own.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as unreadable:
        # The URL itself is at fault; it may hold a password, so it is not shown.
        return unreadable_url_message(unreadable)
    reason = getattr(exc, "orig", None) or exc
    text = str(reason)
    lowered = text.lower()

    # Step 1: the connection never reached a server.
    for phrase, said in _UNREACHABLE:
        if phrase in lowered:
            return (
                f"No database server answers at {_address(parsed)} ({said}); start "
                f"it, or fix the host and port of the URL ({_OPTION})."
            )
    if parsed.host and any(phrase in lowered for phrase in _UNKNOWN_HOST):
        return (
            f"The database host {parsed.host!r} is not known; fix the host of the "
            f"URL ({_OPTION})."
        )

    # Step 2: a server answered, but would not let this URL in.
    login = _LOGIN_REFUSED.search(text)
    if login:
        return (
            f"The database server at {_address(parsed)} refused the login of "
            f"{parsed.username or ''!r} ({_one_line(login.group(1), parsed.password)}"
            f"); fix the user and password of the URL ({_OPTION})."
        )
    missing = _NO_DATABASE.search(text)
    if missing:
        name = missing.group(1)
        return (
            f"The database server at {_address(parsed)} has no database {name!r}; "
            f"create it (createdb {name}), or fix the database name of the URL "
            f"({_OPTION})."
        )

    # Step 3: anything else, in the driver's words on one line.
    shown = parsed.render_as_string(hide_password=True)
    check = (
        "that the file's folder exists and can be written"
        if parsed.get_backend_name() == "sqlite"
        else "that the server is running"
    )
    return (
        f"The database at {shown} could not be used ({type(exc).__name__}: "
        f"{_one_line(text, parsed.password)}); check the URL ({_OPTION}) and {check}."
    )
