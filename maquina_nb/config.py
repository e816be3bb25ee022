"""Settings: environment, config files, database URL and defaults.

Settings are read, lowest priority first, from:

1. built-in defaults;
2. the user config file ``~/.config/maquina_nb/config.toml``
   (``$XDG_CONFIG_HOME`` honoured, or ``MAQUINA_NB_CONFIG`` to name the file);
3. ``maquina.toml`` in the working directory or its nearest parent;
4. environment variables (``MAQUINA_DB_URL``, ``MAQUINA_NB_RATER`` …);
5. values passed in code.

A config file looks like::

    [defaults]
    concurrency = 16
    rater = "ada"

    [models.llama]  # an alias with its own settings
    spec = "ollama:llama3.1"
    requests_per_minute = 60
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import Any

from maquina_nb._redact import get_logger

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

__all__ = [
    "DEFAULT_CONCURRENCY",
    "default_concurrency",
    "default_db_url",
    "find_project_config",
    "load_config",
    "rater_name",
    "user_config_path",
]

logger = get_logger(__name__)

#: Default cap on requests in flight across all models of one run. Low enough
#: for a new provider account's concurrency limits, high enough that a 200-item
#: run against a 200 ms model finishes in a few seconds.
DEFAULT_CONCURRENCY = 32

_PROJECT_FILE = "maquina.toml"


def default_db_url() -> str:
    """Return ``MAQUINA_DB_URL``, else ``sqlite:///maquina.db`` in the working dir."""
    url = os.environ.get("MAQUINA_DB_URL", "").strip()
    if url:
        return url
    return f"sqlite:///{Path.cwd() / 'maquina.db'}"


def user_config_path() -> Path:
    """Return where the user config file lives (it need not exist)."""
    explicit = os.environ.get("MAQUINA_NB_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "maquina_nb" / "config.toml"


def find_project_config(start: Path | None = None) -> Path | None:
    """Return the nearest ``maquina.toml`` at or above ``start`` (default cwd)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / _PROJECT_FILE
        if candidate.is_file():
            return candidate
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        from maquina_nb.errors import ConfigurationError

        raise ConfigurationError(
            f"The config file {str(path)!r} is not valid TOML ({exc}); fix or remove it."
        ) from exc


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(start: Path | None = None) -> dict[str, Any]:
    """Return the merged user and project config (files only, no environment)."""
    config: dict[str, Any] = {}

    user_file = user_config_path()
    if user_file.is_file():
        config = _merge(config, _read_toml(user_file))
        logger.debug("read user config %s", user_file)

    project_file = find_project_config(start)
    if project_file is not None:
        config = _merge(config, _read_toml(project_file))
        logger.debug("read project config %s", project_file)

    return config


def default_concurrency() -> int:
    """Return ``[defaults] concurrency`` from the config files, else 32.

    Raises:
        ConfigurationError: when the configured value is not a positive integer.
    """
    configured = load_config().get("defaults", {}).get("concurrency")
    if configured is None:
        return DEFAULT_CONCURRENCY
    if (
        isinstance(configured, bool)
        or not isinstance(configured, int)
        or configured < 1
    ):
        from maquina_nb.errors import ConfigurationError

        raise ConfigurationError(
            f"[defaults] concurrency must be a positive whole number, not {configured!r}; "
            "fix it in maquina.toml or the user config file."
        )
    return configured


def rater_name() -> str:
    """Return who is giving feedback: ``MAQUINA_NB_RATER``, config, or the login."""
    explicit = os.environ.get("MAQUINA_NB_RATER", "").strip()
    if explicit:
        return explicit

    configured = load_config().get("defaults", {}).get("rater")
    if isinstance(configured, str) and configured.strip():
        return configured.strip()

    try:
        return getpass.getuser()
    except Exception:
        return "anonymous"
