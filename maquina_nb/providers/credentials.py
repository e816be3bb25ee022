r"""API keys: where they come from, how they are cleaned, and whether they work.

A key is looked up in the model's settings (``api_key``, then the variable named
by ``key_env``), then in the SDK's usual variable. Leading and trailing
whitespace (a CRLF ``.env`` leaves a ``\\r``) is stripped; a key with whitespace
or control characters *inside* it is refused before any request, with a message
that names where it came from and never the key (C33). Every key is registered
with :func:`~maquina_nb._redact.register_secret` the moment it is read.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from maquina_nb._redact import get_logger, redact, register_secret
from maquina_nb.errors import MaquinaError, ProviderAuthError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["KeyInfo", "check_credentials", "clean_key", "find_key"]

logger = get_logger(__name__)

CHECK_COLUMNS = ["spec", "provider", "model", "key_source", "status", "detail"]


@dataclass(frozen=True)
class KeyInfo:
    """Where a key came from and whether it looks usable."""

    source: str | None
    """``settings``, an environment variable name, or ``None`` when absent."""
    status: str
    """``ok``, ``missing`` or ``malformed``."""
    detail: str = ""

    def __repr__(self) -> str:
        return f"KeyInfo(source={self.source!r}, status={self.status!r})"


def _bad_character(key: str) -> str | None:
    for char in key:
        if char.isspace():
            return "whitespace"
        if ord(char) < 32 or ord(char) == 127:
            return "control characters"
        if not char.isascii():
            return "non-ASCII characters"
    return None


def clean_key(raw: str | None, *, source: str, provider: str, model: str) -> str | None:
    """Return the key with outer whitespace stripped, ``None`` if empty.

    Raises:
        ProviderAuthError: the key has whitespace, control or non-ASCII
            characters inside it (it could never be sent as a header).
    """
    if raw is None:
        return None
    register_secret(raw)
    key = raw.strip()
    if not key:
        return None
    if key != raw:
        logger.debug("stripped whitespace around the key from %s", source)
    problem = _bad_character(key)
    if problem is not None:
        raise ProviderAuthError(
            f"The API key from {source} for the {provider} model {model!r} contains "
            f"{problem} inside it; copy the key again without line breaks or spaces.",
            provider=provider,
            model=model,
        )
    return key


def find_key(
    *,
    api_key: str | None,
    key_env: str | None,
    default_env: str | None,
) -> tuple[str | None, str | None]:
    """Return ``(raw key, source)`` from settings or the environment."""
    if api_key:
        return api_key, "settings"
    for name in (key_env, default_env):
        if name and os.environ.get(name):
            return os.environ[name], name
    return None, key_env or default_env


def check_credentials(
    specs: list[str] | tuple[str, ...] | str, *, live: bool = False
) -> pd.DataFrame:
    """Report, per model, whether its key is usable.

    Offline checks run first: the key is present and well formed. With
    ``live=True`` each model with a usable key makes one cheap authenticated
    call (listing models), which tells a rejected key from an unreachable server.

    Args:
        specs: Model specs or aliases.
        live: Also call each provider once.

    Returns:
        A DataFrame with columns ``spec, provider, model, key_source, status,
        detail``; ``status`` is one of ``ok``, ``missing``, ``malformed``,
        ``rejected``, ``unreachable``. The key itself never appears.
    """
    import pandas as pd

    from maquina_nb._loop import in_background_loop, run_sync
    from maquina_nb.providers.registry import resolve_model

    if isinstance(specs, str):
        specs = [specs]
    models = [resolve_model(spec) for spec in specs]
    if not live:
        rows = [_offline_row(model) for model in models]
        return pd.DataFrame(rows, columns=CHECK_COLUMNS)

    async def _check_all() -> list[dict[str, Any]]:
        return list(
            await asyncio.gather(*(_check_one(model, live) for model in models))
        )

    if in_background_loop():
        raise RuntimeError(
            "check_credentials is synchronous; call acheck_credentials on the loop."
        )
    rows = run_sync(_check_all(), timeout=120)
    return pd.DataFrame(rows, columns=CHECK_COLUMNS)


async def acheck_credentials(
    specs: list[str] | tuple[str, ...], *, live: bool = False
) -> list[dict[str, Any]]:
    """Async twin of :func:`check_credentials`, returning plain row dicts."""
    from maquina_nb.providers.registry import resolve_model

    models = [resolve_model(spec) for spec in specs]
    return list(await asyncio.gather(*(_check_one(model, live) for model in models)))


def _offline_row(model: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "spec": model.spec,
        "provider": model.provider,
        "model": model.model,
        "key_source": None,
        "status": "ok",
        "detail": "",
    }
    key_info = getattr(model, "key_info", None)
    if callable(key_info):
        info = key_info()
        row.update(key_source=info.source, status=info.status, detail=info.detail)
    return row


async def _check_one(model: Any, live: bool) -> dict[str, Any]:
    row = _offline_row(model)
    if row["status"] != "ok" or not live:
        return row
    return await _check_live(model, row)


async def _check_live(model: Any, row: dict[str, Any]) -> dict[str, Any]:
    check_live = getattr(model, "check_live", None)
    if not callable(check_live):
        return row
    try:
        await check_live()
    except ProviderAuthError as exc:
        row.update(status="rejected", detail=str(exc))
    except MaquinaError as exc:
        row.update(status="unreachable", detail=str(exc))
    except Exception as exc:
        row.update(status="unreachable", detail=redact(f"{type(exc).__name__}: {exc}"))
    return row
