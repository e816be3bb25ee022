"""Database errors as one sentence that says what to do, never with the password.

Drivers' own texts span lines (psycopg: a reason, a newline, a tab and a hint)
and differ by failure; these are the texts psycopg 3 gives, wrapped as
SQLAlchemy wraps them, so no test needs an unreachable host or a DNS lookup.
"""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError, ProgrammingError

from maquina_nb.db.connection_errors import explain_database_error


def _password() -> str:
    # Built at run time: no secret-shaped literal in the repository.
    return "pw-" + "".join(["S3", "cr", "et", "42"])


def _url(host: str = "db.lab.internal", port: int | None = 5433) -> str:
    at = f"{host}:{port}" if port else host
    return f"postgresql+psycopg://ada:{_password()}@{at}/maquina"


def _wrapped(text: str, kind: type[Exception] = OperationalError) -> Exception:
    return kind("SELECT 1", {}, Exception(text))


def _one_sentence(message: str) -> None:
    assert "\n" not in message
    assert "\t" not in message
    assert _password() not in message
    assert message.endswith(".")


def test_refused_connection_names_host_and_port() -> None:
    message = explain_database_error(
        _url(),
        _wrapped(
            'connection failed: connection to server at "10.0.0.5", port 5433 '
            "failed: Connection refused\n\tIs the server running on that host and "
            "accepting TCP/IP connections?"
        ),
    )

    _one_sentence(message)
    assert message == (
        "No database server answers at db.lab.internal:5433 (connection refused); "
        "start it, or fix the host and port of the URL (--db or MAQUINA_DB_URL)."
    )


def test_every_attempt_of_a_name_with_two_addresses_refused() -> None:
    text = (
        "Multiple connection attempts failed. All failures were:\n"
        "- host: 'localhost', port: '1', hostaddr: '::1': connection failed: "
        'connection to server at "::1", port 1 failed: Connection refused\n'
        "\tIs the server running on that host and accepting TCP/IP connections?\n"
        "- host: 'localhost', port: '1', hostaddr: '127.0.0.1': connection failed: "
        'connection to server at "127.0.0.1", port 1 failed: Connection refused\n'
        "\tIs the server running on that host and accepting TCP/IP connections?"
    )

    message = explain_database_error(_url("localhost", 1), _wrapped(text))

    _one_sentence(message)
    assert message.startswith("No database server answers at localhost:1 (")


def test_no_answer_in_time_and_the_default_port() -> None:
    message = explain_database_error(
        _url(port=None), _wrapped("connection timeout expired")
    )

    _one_sentence(message)
    assert message == (
        "No database server answers at db.lab.internal:5432 (no answer in time); "
        "start it, or fix the host and port of the URL (--db or MAQUINA_DB_URL)."
    )


@pytest.mark.parametrize(
    "text",
    [
        "[Errno -2] Name or service not known",
        "failed to resolve host 'db.lab.internal': [Errno -3] Temporary failure "
        "in name resolution",
        'could not translate host name "db.lab.internal" to address: Name or '
        "service not known\n",
    ],
)
def test_an_unknown_host(text: str) -> None:
    message = explain_database_error(_url(), _wrapped(text))

    _one_sentence(message)
    assert message == (
        "The database host 'db.lab.internal' is not known; fix the host of the "
        "URL (--db or MAQUINA_DB_URL)."
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            'connection failed: connection to server at "10.0.0.5", port 5433 '
            'failed: FATAL:  password authentication failed for user "ada"',
            'password authentication failed for user "ada"',
        ),
        (
            'connection failed: connection to server at "10.0.0.5", port 5433 '
            'failed: FATAL:  role "ada" does not exist',
            'role "ada" does not exist',
        ),
    ],
)
def test_a_refused_login_points_at_user_and_password(text: str, reason: str) -> None:
    message = explain_database_error(_url(), _wrapped(text))

    _one_sentence(message)
    assert message == (
        f"The database server at db.lab.internal:5433 refused the login of 'ada' "
        f"({reason}); fix the user and password of the URL (--db or "
        "MAQUINA_DB_URL)."
    )


def test_a_missing_database_says_how_to_create_it() -> None:
    message = explain_database_error(
        _url(),
        _wrapped(
            'connection failed: connection to server at "10.0.0.5", port 5433 '
            'failed: FATAL:  database "maquina" does not exist'
        ),
    )

    _one_sentence(message)
    assert message == (
        "The database server at db.lab.internal:5433 has no database 'maquina'; "
        "create it (createdb maquina), or fix the database name of the URL "
        "(--db or MAQUINA_DB_URL)."
    )


def test_any_other_error_is_one_line_with_the_password_masked() -> None:
    message = explain_database_error(
        _url(),
        _wrapped(
            f"something odd\n\twith the password {_password()} in it",
            ProgrammingError,
        ),
    )

    _one_sentence(message)
    assert message == (
        "The database at postgresql+psycopg://ada:***@db.lab.internal:5433/maquina "
        "could not be used (ProgrammingError: something odd with the password *** "
        "in it); check the URL (--db or MAQUINA_DB_URL) and that the server is "
        "running."
    )


def test_a_sqlite_failure_points_at_the_file_not_a_server() -> None:
    message = explain_database_error(
        "sqlite:////no/such/folder/x.db",
        _wrapped("unable to open database file", OperationalError),
    )

    _one_sentence(message)
    assert "folder exists and can be written" in message
    assert "server" not in message


def test_a_url_that_cannot_be_read_is_not_repeated() -> None:
    url = f"postgresql+psycopg://ada:{_password()}@db.lab.internal:port/maquina"

    message = explain_database_error(url, _wrapped("whatever"))

    _one_sentence(message)
    assert message.startswith("The database URL could not be read (")
    assert "db.lab.internal" not in message
