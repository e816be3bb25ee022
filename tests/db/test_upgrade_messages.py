"""What upgrading says: one sentence built in one place, for the CLI and the magic."""

from __future__ import annotations

from pathlib import Path

import pytest

from maquina_nb.db import create_db_engine
from maquina_nb.db.migrate import describe_migration, head_revision


def test_describe_migration_names_both_revisions_and_hides_the_password() -> None:
    head = head_revision()
    url = "postgresql+psycopg://ada:SECRETSECRET@127.0.0.1/db"

    text = describe_migration(url, None, head)
    assert text == (
        f"Upgraded postgresql+psycopg://ada:***@127.0.0.1/db from base to {head} "
        "(the latest schema)."
    )
    assert describe_migration(url, head, head).endswith(
        f"is already at {head} (the latest schema)."
    )
    assert describe_migration(url, None, "0001").endswith("from base to 0001.")
    assert describe_migration(url, head, None, direction="downgrade").startswith(
        "Downgraded "
    )
    assert describe_migration(url, head, None, direction="downgrade").endswith(
        f"from {head} to base."
    )
    assert describe_migration(url, None, None).endswith(
        "is already at base (no schema)."
    )


@pytest.fixture
def maquina_db() -> object:
    pytest.importorskip("IPython")
    from maquina_nb.notebook._commands import _cmd_db

    return _cmd_db


def test_magic_upgrade_of_a_new_file_says_it_upgraded_from_base(
    maquina_db: object, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'other.db'}"
    note = maquina_db(None, ["upgrade", "--db", url])  # type: ignore[operator]
    assert repr(note) == (
        f"Upgraded {url} from base to {head_revision()} (the latest schema)."
    )

    again = maquina_db(None, ["upgrade", "--db", url])  # type: ignore[operator]
    assert repr(again) == f"{url} is already at {head_revision()} (the latest schema)."


def test_magic_upgrade_names_the_default_database(
    maquina_db: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'default.db'}"
    monkeypatch.setenv("MAQUINA_DB_URL", url)
    create_db_engine(url)  # opened (and so upgraded) earlier in the session

    note = maquina_db(None, ["upgrade"])  # type: ignore[operator]
    assert repr(note) == f"{url} is already at {head_revision()} (the latest schema)."
    assert "the default database" not in repr(note)
