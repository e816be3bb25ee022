"""Cost of a completion in USD, from its token usage.

Prices come from ``genai-prices`` (bundled data, no network), imported on first
use because its import takes about half a second. A per-model price override in
the settings wins; local and offline models cost 0 unless a price is
configured; a model ``genai-prices`` does not know costs ``None`` ("unknown")
and logs one warning per model, never an exception.

Token counts follow one convention across providers: ``input_tokens`` is the
whole prompt, cached part included, and ``cached_tokens`` is the part read from
the provider's prompt cache (OpenAI reports it that way; the Anthropic model
adds its cache reads and writes to ``input_tokens`` to match). ``genai-prices``
uses the same convention.
"""

from __future__ import annotations

import math
import threading
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from maquina_nb._redact import get_logger

if TYPE_CHECKING:
    from maquina_nb.providers.base import BaseAIModel, Completion, ModelRequest
    from maquina_nb.providers.settings import ModelSettings

__all__ = ["estimate_cost", "estimate_tokens", "price_usage"]

logger = get_logger(__name__)

_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()

# Providers whose names genai-prices uses as provider ids.
_PROVIDER_IDS = {"openai": "openai", "anthropic": "anthropic"}


def estimate_tokens(text: str) -> int:
    """Roughly count tokens in ``text`` (about four characters per token)."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def _warn_once(provider: str, model_id: str) -> None:
    with _warned_lock:
        if (provider, model_id) in _warned:
            return
        _warned.add((provider, model_id))
    logger.warning(
        "no price known for %s model %r; its cost is recorded as unknown. Set "
        "input_price_per_mtok and output_price_per_mtok in its settings to price it.",
        provider,
        model_id,
    )


def price_usage(
    provider: str,
    model_id: str,
    *,
    input_tokens: int | None,
    output_tokens: int | None,
    cached_tokens: int | None = None,
    settings: ModelSettings | None = None,
    free: bool = False,
    cache_write_tokens: int | None = None,
) -> float | None:
    """Return the cost in USD, or ``None`` when usage or the price is unknown.

    Args:
        provider: ``openai``, ``anthropic`` …; other providers are priced only
            through an override.
        model_id: The model id, preferably the exact one the provider reported.
        input_tokens: Whole prompt, cached part included.
        output_tokens: Generated tokens.
        cached_tokens: Prompt tokens read from the provider cache.
        settings: Per-model settings, for a price override or ``free``.
        free: The default for local models (overridden by ``settings.free``).
        cache_write_tokens: Prompt tokens written to the provider cache (part of
            ``input_tokens``; Anthropic charges more for them).
    """
    # An override wins; a free model costs 0 whatever its usage.
    if settings is not None and settings.has_price_override:
        if input_tokens is None and output_tokens is None:
            return None
        cached = cached_tokens or 0
        input_price = settings.input_price_per_mtok or 0.0
        cached_price = (
            settings.cached_price_per_mtok
            if settings.cached_price_per_mtok is not None
            else input_price
        )
        cost = (
            max(0, (input_tokens or 0) - cached) * input_price + cached * cached_price
        ) / 1e6
        return (
            cost + (output_tokens or 0) * (settings.output_price_per_mtok or 0.0) / 1e6
        )
    if settings is not None and settings.free is not None:
        free = settings.free
    if free:
        return 0.0
    if input_tokens is None and output_tokens is None:
        return None

    # genai-prices, loaded on first use.
    provider_id = _PROVIDER_IDS.get(provider)
    if provider_id is None:
        _warn_once(provider, model_id)
        return None
    prices = _model_prices(provider_id, model_id)
    if prices is None:
        _warn_once(provider, model_id)
        return None
    fast = _fast_price(
        prices,
        input_tokens or 0,
        output_tokens or 0,
        cached_tokens or 0,
        cache_write_tokens or 0,
    )
    if fast is not None:
        return fast

    from genai_prices import Usage, calc_price

    usage = Usage(
        input_tokens=input_tokens or 0,
        output_tokens=output_tokens or 0,
        cache_read_tokens=cached_tokens or None,
        cache_write_tokens=cache_write_tokens or None,
    )
    return float(calc_price(usage, model_id, provider_id=provider_id).total_price)


# (provider, model id) -> (looked up at, the model's prices or None if unknown).
_price_cache: dict[tuple[str, str], tuple[float, Any]] = {}
_PRICE_CACHE_S = 3600.0


def _model_prices(provider_id: str, model_id: str) -> Any:
    """Return genai-prices' price set for a model (cached for an hour), or None."""
    now = time.monotonic()
    cached = _price_cache.get((provider_id, model_id))
    if cached is not None and now - cached[0] < _PRICE_CACHE_S:
        return cached[1]
    try:
        from genai_prices import Usage, calc_price
    except ImportError:  # pragma: no cover - a declared dependency; guards odd installs
        return None
    try:
        prices = calc_price(
            Usage(input_tokens=1), model_id, provider_id=provider_id
        ).model_price
    except LookupError:
        prices = None
    _price_cache[(provider_id, model_id)] = (now, prices)
    return prices


def _rate(price: Any, total_input: int) -> float | None:
    """USD per million tokens at this request size (tiers apply to the whole request)."""
    if price is None:
        return None
    if isinstance(price, Decimal):
        return float(price)
    rate = price.base
    for tier in price.tiers:
        if total_input > tier.start:
            rate = tier.price
    return float(rate)


def _fast_price(
    prices: Any, input_tokens: int, output_tokens: int, cached: int, written: int
) -> float | None:
    """Price plain per-token rates without genai-prices' slower general path.

    ``genai-prices.calc_price`` costs 100-250 microseconds a call, a few percent
    of a whole local call; the arithmetic is the same for the usual price sets.
    Returns ``None`` (use the general path) for anything unusual.
    """
    try:
        input_rate = _rate(prices.input_mtok, input_tokens)
        output_rate = _rate(prices.output_mtok, input_tokens)
        read_rate = _rate(prices.cache_read_mtok, input_tokens) if cached else 0.0
        write_rate = _rate(prices.cache_write_mtok, input_tokens) if written else 0.0
    except (AttributeError, TypeError):
        return None
    if None in (input_rate, output_rate, read_rate, write_rate):
        return None
    uncached = input_tokens - cached - written
    if uncached < 0:
        return None
    total = (
        uncached * input_rate  # type: ignore[operator]
        + cached * read_rate  # type: ignore[operator]
        + written * write_rate  # type: ignore[operator]
        + output_tokens * output_rate  # type: ignore[operator]
    )
    return total / 1e6


def estimate_cost(model: BaseAIModel, request: ModelRequest) -> float | None:
    """Estimate the most a request can cost, for the budget check before a run.

    The prompt is counted roughly (four characters a token) and the output at
    ``max_tokens`` (or the model's configured default; 1,024 when neither is set).
    Returns ``None`` when the model's price is unknown.
    """
    prompt = "".join(message.content for message in request.messages)
    settings = getattr(model, "settings", None)
    max_tokens = request.max_tokens
    if max_tokens is None and settings is not None:
        max_tokens = settings.parameters.get("max_tokens")
    output = max_tokens if max_tokens is not None else 1024

    price = getattr(model, "price", None)
    if callable(price):
        result = price(estimate_tokens(prompt), output, 0)
        return None if result is None else float(result)
    return price_usage(
        model.provider,
        model.model,
        input_tokens=estimate_tokens(prompt),
        output_tokens=output,
        settings=settings,
    )


def is_priced(completion: Completion) -> bool:
    """Tell whether a completion carries a known cost."""
    return completion.cost_usd is not None
