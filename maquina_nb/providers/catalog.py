"""A table of the models a user can name: where they live, limits, key status, prices.

Backs ``%maquina models``. Nothing here touches the network.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from maquina_nb._redact import get_logger
from maquina_nb.errors import MaquinaError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CATALOG_COLUMNS", "list_models"]

logger = get_logger(__name__)

CATALOG_COLUMNS = [
    "name",
    "provider",
    "model",
    "base_url",
    "key_source",
    "key_status",
    "requests_per_minute",
    "tokens_per_minute",
    "max_in_flight",
    "input_usd_per_mtok",
    "output_usd_per_mtok",
]


def _default_names() -> list[str]:
    from maquina_nb.providers.registry import ALIASES, available_models
    from maquina_nb.providers.settings import configured_models

    tables = configured_models()
    return [
        name
        for name in available_models()
        if not name.endswith(":") and (name not in ALIASES.values() or name in tables)
    ]


def _unit_prices(model: Any) -> tuple[float | None, float | None]:
    """USD per million input and output tokens, without the unknown-price warning."""
    price = getattr(model, "price", None)
    if not callable(price):
        return None, None
    settings = getattr(model, "settings", None)
    if settings is not None and not settings.has_price_override:
        free = settings.free if settings.free is not None else model.free_by_default
        if not free and not _known_to_genai_prices(model):
            return None, None
    # Priced on 1,000 tokens and scaled: a million would cross the long-context
    # tier some models have (200k input tokens for claude-sonnet-4-5).
    unit_in, unit_out = price(1000, 0, 0), price(0, 1000, 0)
    return (
        None if unit_in is None else round(unit_in * 1000, 6),
        None if unit_out is None else round(unit_out * 1000, 6),
    )


def _known_to_genai_prices(model: Any) -> bool:
    if model.provider not in ("openai", "anthropic"):
        return False
    try:
        from genai_prices import Usage, calc_price

        calc_price(Usage(input_tokens=1), model.model, provider_id=model.provider)
    except (ImportError, LookupError):
        return False
    return True


def list_models(specs: list[str] | None = None) -> pd.DataFrame:
    """Describe models: provider, address, key status, limits and unit prices.

    Args:
        specs: Names to describe; default every alias, configured, offline and
            custom model.

    Returns:
        A DataFrame with the columns in :data:`CATALOG_COLUMNS`; prices are USD
        per million tokens (``None`` when unknown). Keys never appear.
    """
    import pandas as pd

    from maquina_nb.providers.registry import resolve_model

    rows = []
    for name in specs or _default_names():
        try:
            model = resolve_model(name)
        except MaquinaError as exc:
            logger.warning("cannot describe model %r: %s", name, exc)
            continue
        settings = getattr(model, "settings", None)
        key_info = getattr(model, "key_info", None)
        info = key_info() if callable(key_info) else None
        input_price, output_price = _unit_prices(model)
        rows.append(
            {
                "name": name,
                "provider": model.provider,
                "model": model.model,
                "base_url": getattr(model, "base_url", None),
                "key_source": info.source if info else None,
                "key_status": info.status if info else "ok",
                "requests_per_minute": settings.requests_per_minute
                if settings
                else None,
                "tokens_per_minute": settings.tokens_per_minute if settings else None,
                "max_in_flight": settings.max_in_flight if settings else None,
                "input_usd_per_mtok": input_price,
                "output_usd_per_mtok": output_price,
            }
        )
    return pd.DataFrame(rows, columns=CATALOG_COLUMNS)
