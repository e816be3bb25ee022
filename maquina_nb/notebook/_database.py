"""The database as the magics open it: a failure is one sentence saying what to do.

``%%orchestrate --db`` and every ``%maquina`` subcommand open the database the
same way. What went wrong is told by
:func:`maquina_nb.db.connection_errors.explain_database_error`, as the
``maquina-nb`` command tells it: nothing listening at host:port, an unknown
host, a refused login, a missing database. The URL's password is never shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from IPython.core.error import UsageError

if TYPE_CHECKING:
    from maquina_nb.db import Repository

__all__ = ["database_problem", "open_repository"]


def database_problem(url: str | None, exc: BaseException) -> str:
    """Return the one sentence that explains why the database at ``url`` failed.

    Args:
        url: the URL given with ``--db``, or ``None`` for the configured one.
        exc: what opening or using it raised.
    """
    from maquina_nb.config import default_db_url
    from maquina_nb.db.connection_errors import explain_database_error
    from maquina_nb.errors import MaquinaError

    # Our own errors (a schema newer than the package …) already say what to do.
    if isinstance(exc, MaquinaError):
        return str(exc)
    return explain_database_error(url or default_db_url(), exc)


def open_repository(url: str | None) -> Repository:
    """Open (and upgrade) the database at ``url``, default the configured one.

    Raises:
        UsageError: the database cannot be opened; the message says why and
            what to change, without the password.
    """
    from maquina_nb.db import Repository

    try:
        return Repository.from_url(url)
    except Exception as exc:  # any failure to open is the user's to fix
        raise UsageError(database_problem(url, exc)) from None
