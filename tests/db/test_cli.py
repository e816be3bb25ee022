"""The ``maquina-nb db`` command, in process."""

from __future__ import annotations

from pathlib import Path

import pytest

from maquina_nb.cli import build_parser, main
from maquina_nb.db.migrate import head_revision


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_db_upgrade_current_downgrade_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    head = head_revision()

    assert _run(capsys, "db", "upgrade", "base", "--url", url) == (
        0, f"{url} is already at base (no schema).\n", "",
    )  # fmt: skip
    assert _run(capsys, "db", "current", "--url", url) == (
        0,
        f"{url}: empty (no schema yet)\n",
        "",
    )
    assert _run(capsys, "db", "upgrade", "0001", "--url", url) == (
        0, f"Upgraded {url} from base to 0001.\n", "",
    )  # fmt: skip
    assert _run(capsys, "db", "current", "--url", url) == (
        0,
        f"{url}: 0001 (head is {head})\n",
        "",
    )
    assert _run(capsys, "db", "upgrade", "--url", url) == (
        0, f"Upgraded {url} from 0001 to {head} (the latest schema).\n", "",
    )  # fmt: skip
    assert _run(capsys, "db", "upgrade", "--url", url) == (
        0,
        f"{url} is already at {head} (the latest schema).\n",
        "",
    )
    assert _run(capsys, "db", "current", "--url", url) == (
        0,
        f"{url}: {head} (head)\n",
        "",
    )
    assert _run(capsys, "db", "downgrade", "base", "--url", url) == (
        0, f"Downgraded {url} from {head} to base.\n", "",
    )  # fmt: skip

    status, out, _ = _run(capsys, "db", "history")
    assert status == 0
    assert "<base> -> 0001, create runs, responses, feedback and decisions" in out


def test_db_default_url_comes_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("MAQUINA_DB_URL", url)
    assert _run(capsys, "db", "upgrade")[0] == 0
    assert (tmp_path / "env.db").exists()
    monkeypatch.delenv("MAQUINA_DB_URL")
    monkeypatch.chdir(tmp_path)
    status, out, _ = _run(capsys, "db", "upgrade")
    assert (status, out) == (
        0,
        f"Upgraded sqlite:///{tmp_path / 'maquina.db'} from base to {head_revision()} "
        "(the latest schema).\n",
    )


def test_db_upgrade_sql_prints_without_touching_the_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'never.db'}"
    status, out, _ = _run(capsys, "db", "upgrade", "--sql", "--url", url)
    assert status == 0
    assert "CREATE TABLE model_responses" in out
    assert not (tmp_path / "never.db").exists()
    status, out, _ = _run(
        capsys, "db", "downgrade", "--sql", "--url", url, f"{head_revision()}:0001"
    )
    assert status == 0
    assert "DROP TABLE pairwise_votes" in out


def test_db_errors_are_one_line_without_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    status, _, err = _run(capsys, "db", "upgrade", "0999", "--url", url)
    assert status == 2
    assert "0999" in err
    assert err.startswith("maquina-nb: ")


def test_db_commands_take_db_as_serve_does_and_still_take_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'named.db'}"
    head = head_revision()

    assert _run(capsys, "db", "upgrade", "--db", url)[0] == 0
    assert _run(capsys, "db", "current", "--db", url) == (
        0,
        f"{url}: {head} (head)\n",
        "",
    )
    assert _run(capsys, "db", "current", "--url", url)[1] == f"{url}: {head} (head)\n"
    assert _run(capsys, "db", "downgrade", "base", "--db", url)[0] == 0
    assert _run(capsys, "db", "history", "--db", url)[0] == 0

    # Help names --db first (the name serve and the notebook use).
    parser = build_parser()
    db = parser._subparsers._group_actions[0].choices["db"]  # type: ignore[union-attr]
    for action in ("upgrade", "downgrade", "current"):
        text = db._subparsers._group_actions[0].choices[action].format_help()
        assert "--db URL, --url URL" in text, text


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _password() -> str:
    # Built at run time: no secret-shaped literal in the repository.
    return "pw-" + "".join(["S3", "cr", "et", "99"])


@pytest.mark.parametrize("action", [["current"], ["upgrade"], ["downgrade", "-1"]])
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_database_server_not_running_is_one_sentence_without_the_password(
    capsys: pytest.CaptureFixture[str], action: list[str], host: str
) -> None:
    pytest.importorskip("psycopg")
    port = _closed_port()
    url = f"postgresql+psycopg://me:{_password()}@{host}:{port}/maquina"

    status, out, err = _run(capsys, "db", *action, "--db", url)

    assert status == 1
    assert out == ""
    assert err.count("\n") == 1, err
    assert "\t" not in err
    assert _password() not in err
    assert err == (
        f"maquina-nb: No database server answers at {host}:{port} (connection "
        "refused); start it, or fix the host and port of the URL (--db or "
        "MAQUINA_DB_URL).\n"
    )


@pytest.mark.postgres
def test_a_real_server_refusing_a_user_or_lacking_the_database(
    capsys: pytest.CaptureFixture[str], pg_url: str
) -> None:
    from sqlalchemy.engine import make_url

    real = make_url(pg_url)
    address = f"{real.host}:{real.port or 5432}"
    nobody = real.set(username="nobody_here", password=_password())
    no_database = real.set(database="no_such_database")

    status, _, err = _run(
        capsys, "db", "current", "--db", nobody.render_as_string(hide_password=False)
    )
    assert status == 1
    assert err == (
        f"maquina-nb: The database server at {address} refused the login of "
        "'nobody_here' (role \"nobody_here\" does not exist); fix the user and "
        "password of the URL (--db or MAQUINA_DB_URL).\n"
    )

    status, _, err = _run(
        capsys,
        "db",
        "upgrade",
        "--db",
        no_database.render_as_string(hide_password=False),
    )
    assert status == 1
    assert err == (
        f"maquina-nb: The database server at {address} has no database "
        "'no_such_database'; create it (createdb no_such_database), or fix the "
        "database name of the URL (--db or MAQUINA_DB_URL).\n"
    )


@pytest.mark.parametrize("command", [["db", "current"], ["db", "upgrade"], ["serve"]])
@pytest.mark.parametrize(
    "bad", ["not a url", "postgresql+psycopg://me:{pw}@127.0.0.1:notaport/x"]
)
def test_a_url_that_cannot_be_read_is_one_sentence_without_it(
    capsys: pytest.CaptureFixture[str], command: list[str], bad: str
) -> None:
    url = bad.format(pw=_password())

    status, out, err = _run(capsys, *command, "--db", url)

    assert status == 1
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("maquina-nb: The database URL could not be read (")
    assert "(--db or MAQUINA_DB_URL).\n" in err
    assert _password() not in err


def test_parser_has_room_for_serve() -> None:
    parser = build_parser()
    args = parser.parse_args(["serve", "--port", "9999"])
    assert args.command == "serve"
    assert args.port == 9999


def test_db_current_creates_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    status, out, err = _run(capsys, "db", "current")
    assert status == 1
    assert out == ""
    assert err == (
        f"maquina-nb: No database file at {str(tmp_path / 'maquina.db')!r}; check the "
        "URL (--db or MAQUINA_DB_URL), or create it with 'maquina-nb db upgrade'.\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_db_current_of_a_missing_folder_says_the_file_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nonexistent" / "dir" / "x.db"
    status, out, err = _run(capsys, "db", "current", "--url", f"sqlite:///{missing}")
    assert status == 1
    assert f"No database file at {str(missing)!r}" in err
    assert "empty" not in out + err
    assert not (tmp_path / "nonexistent").exists()

    # Downgrading a file that is not there creates nothing either.
    status, _, err = _run(
        capsys, "db", "downgrade", "-1", "--url", f"sqlite:///{missing}"
    )
    assert status == 1
    assert f"No database file at {str(missing)!r}" in err
    assert not (tmp_path / "nonexistent").exists()


def test_db_downgrade_past_base_is_one_plain_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'steps.db'}"
    assert _run(capsys, "db", "upgrade", "0001", "--url", url)[0] == 0
    # An empty database: nothing to undo.
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    assert _run(capsys, "db", "upgrade", "base", "--url", empty)[0] == 0

    status, out, err = _run(capsys, "db", "downgrade", "-1", "--url", empty)
    assert (status, out) == (1, "")
    assert err == (
        "maquina-nb: Cannot downgrade by -1: the database has no schema yet, so there "
        "is nothing to undo.\n"
    )

    status, _, err = _run(capsys, "db", "downgrade", "-3", "--url", url)
    assert status == 1
    assert err == (
        "maquina-nb: Cannot downgrade by -3: the database is at 0001, fewer than 3 "
        "revisions above base; give a revision from 'maquina-nb db history', or base.\n"
    )
    assert "Relative revision" not in err

    status, _, err = _run(capsys, "db", "upgrade", "+5", "--url", url)
    assert status == 1
    assert err.startswith("maquina-nb: Cannot upgrade by +5: the database is at 0001")
    assert "Relative revision" not in err


def test_migrating_leaves_no_lock_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'tidy.db'}"
    assert _run(capsys, "db", "upgrade", "0001", "--url", url)[0] == 0
    assert _run(capsys, "db", "upgrade", "--url", url)[0] == 0
    assert _run(capsys, "db", "downgrade", "-1", "--url", url)[0] == 0
    assert not list(tmp_path.glob("*lock*"))
