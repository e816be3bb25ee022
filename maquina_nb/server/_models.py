"""The models a run may name, for ``GET /api/models``.

Only names, specs, providers and whether credentials are present leave the
server: a config table's ``api_key``, ``base_url`` (it may embed a password),
headers and prices are never copied into the answer.
"""

from __future__ import annotations

from maquina_nb._redact import get_logger
from maquina_nb.server.schemas import ModelOut

__all__ = ["configured_models"]

logger = get_logger(__name__)


def _provider_of(spec: str) -> str | None:
    provider, sep, _ = spec.partition(":")
    return provider if sep else None


def _credentials(specs: list[str]) -> dict[str, str]:
    """Return ok / missing / malformed per spec, without any network call."""
    if not specs:
        return {}
    from maquina_nb.providers import check_credentials

    frame = check_credentials(specs, live=False)
    return {str(row.spec): str(row.status) for row in frame.itertuples(index=False)}


def configured_models() -> list[ModelOut]:
    """Return the configured aliases and models, then the built-in aliases."""
    from maquina_nb.providers import list_aliases
    from maquina_nb.providers.settings import configured_models as config_tables

    found: dict[str, ModelOut] = {}

    # Step 1: models named in config files (or configure_model in code).
    for name, table in sorted(config_tables().items()):
        spec = str(table.get("spec") or name)
        found[name] = ModelOut(
            name=name, spec=spec, provider=_provider_of(spec), source="config"
        )

    # Step 2: the built-in aliases not overridden by config.
    for name, spec in sorted(list_aliases().items()):
        found.setdefault(
            name,
            ModelOut(name=name, spec=spec, provider=_provider_of(spec), source="alias"),
        )

    # Step 3: whether each one's key is set (never the key itself).
    models = list(found.values())
    try:
        status = _credentials([model.name for model in models])
    except Exception as exc:  # a listing must not fail on one bad entry
        logger.warning("could not check model credentials: %s", exc)
        status = {}
    return [
        model.model_copy(update={"credentials": status.get(model.name)})
        for model in models
    ]
