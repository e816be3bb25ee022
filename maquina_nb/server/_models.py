"""The models a run may name, for ``GET /api/models``.

Only names, specs, providers and whether credentials are present leave the
server: a config table's ``api_key``, ``base_url`` (it may embed a password),
headers and prices are never copied into the answer.
"""

from __future__ import annotations

from maquina_nb._redact import get_logger
from maquina_nb.server.schemas import ModelOut, ModelSource

__all__ = ["configured_models"]

logger = get_logger(__name__)


def _provider_of(spec: str) -> str | None:
    provider, sep, _ = spec.partition(":")
    return provider if sep else None


def _credentials(name: str) -> str | None:
    """Return ok / missing / malformed for one model, without any network call."""
    from maquina_nb.providers import check_credentials

    try:
        frame = check_credentials([name], live=False)
    except Exception as exc:  # one bad entry must not break the listing
        logger.warning("could not check the credentials of %r: %s", name, exc)
        return None
    return str(frame["status"].iloc[0]) if len(frame) else None


def configured_models() -> list[ModelOut]:
    """Return configured models, built-in aliases, offline and registered models."""
    from fastapi import HTTPException

    from maquina_nb.errors import ConfigurationError
    from maquina_nb.providers.registry import ALIASES, available_models
    from maquina_nb.providers.settings import configured_models as config_tables

    try:
        tables = config_tables()
    except ConfigurationError as exc:
        # The server's own maquina.toml is wrong. Its values (a base URL may
        # name an internal host) stay in the server's log, not the answer.
        logger.warning("cannot list the models: %s", exc)
        raise HTTPException(
            500,
            "The server's model configuration (maquina.toml) is not valid; "
            "the server's log says which setting to correct.",
        ) from exc
    models: list[ModelOut] = []
    source: ModelSource
    for name in available_models():
        # Provider prefixes ("openai:") and the aliases' own specs are not names.
        if name.endswith(":") or (name in ALIASES.values() and name not in tables):
            continue
        if name in tables:
            spec, source = str(tables[name].get("spec") or name), "config"
        elif name in ALIASES:
            spec, source = ALIASES[name], "alias"
        elif name == "echo" or name.startswith("replay:"):
            spec, source = name, "builtin"
        else:
            spec, source = name, "registered"
        models.append(
            ModelOut(
                name=name,
                spec=spec,
                provider=_provider_of(spec) or name,
                source=source,
                credentials=_credentials(name),
            )
        )
    return models
