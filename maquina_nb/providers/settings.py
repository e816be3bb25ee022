"""Per-model settings: where a model lives, its limits, timeouts and prices.

Settings come, lowest priority first, from the user config file, the project's
``maquina.toml``, :func:`configure_model` in code, and the keyword overrides given
to :func:`~maquina_nb.providers.resolve_model`. In a config file each model has
a table under ``[models]``, named by an alias or by its spec::

    [models.llama]                    # a new alias
    spec = "ollama:llama3.1"
    base_url = "http://127.0.0.1:11434/v1"
    requests_per_minute = 60
    free = true

    [models."openai:gpt-4o"]          # settings for a spec
    requests_per_minute = 500
    tokens_per_minute = 30000
    max_in_flight = 8
    timeout = 60
    parameters = { temperature = 0.2 }
    input_price_per_mtok = 2.5        # price override, USD per million tokens
    output_price_per_mtok = 10

Keys never go in a spec string (``openai:gpt-4o?api_key=...`` is refused: specs
are stored with every run and shown in tables); name the variable holding the key
with ``key_env``. A key given as ``api_key`` in a table or in code is registered
with :func:`~maquina_nb._redact.register_secret` as soon as it is read.
"""

from __future__ import annotations

import difflib
import threading
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from maquina_nb._redact import register_secret
from maquina_nb.errors import ConfigurationError
from maquina_nb.providers._checks import (
    coerce_setting,
    is_secret_name,
    refuse_secret_options,
)

__all__ = [
    "ModelSettings",
    "configure_model",
    "configured_models",
    "is_secret_name",
    "refuse_secret_options",
    "settings_for",
]


@dataclass(frozen=True)
class ModelSettings:
    """Everything configurable about one model. ``None`` means the default."""

    spec: str | None = None
    """For an alias defined in config: the spec it stands for."""
    base_url: str | None = None
    """Server address (OpenAI-compatible servers include ``/v1``)."""
    api_key: str | None = field(default=None, repr=False)
    """The key itself; prefer ``key_env`` so it stays out of files."""
    key_env: str | None = None
    """Environment variable holding the key (default: the SDK's usual one)."""
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_in_flight: int | None = None
    timeout: float | None = 300.0
    """Total seconds for one attempt, from request to last byte."""
    connect_timeout: float = 10.0
    read_timeout: float | None = 120.0
    """Longest silence between two bytes of an answer."""
    first_token_timeout: float | None = 120.0
    """Longest wait for the first streamed token."""
    max_attempts: int = 4
    """Attempts per call, the first included (429, 5xx, dropped streams)."""
    max_retry_after: float = 120.0
    """Longest ``Retry-After`` honoured; a longer one fails the call at once."""
    initial_backoff: float = 0.5
    parameters: dict[str, Any] = field(default_factory=dict)
    """Default request parameters (temperature, max_tokens, top_p, seed, or
    provider extras)."""
    input_price_per_mtok: float | None = None
    """Price override in USD per million input tokens."""
    output_price_per_mtok: float | None = None
    cached_price_per_mtok: float | None = None
    free: bool | None = None
    """Price this model at 0 (local models default to free)."""
    version: str | None = None
    """For custom models: a version that changes cache keys when bumped."""

    def __post_init__(self) -> None:
        # Values arrive from config files, code and spec strings: each is
        # coerced to its type (and range-checked) once, here.
        for name in _NAMES:
            value = getattr(self, name)
            checked = coerce_setting(name, value, where="the model settings")
            if checked is not value:
                object.__setattr__(self, name, checked)

    def __repr__(self) -> str:
        shown = {
            name: value
            for name, value in asdict(self).items()
            if value not in (None, {}) and value != _DEFAULTS.get(name)
        }
        if self.api_key:
            shown["api_key"] = "<redacted>"
        inner = ", ".join(f"{name}={value!r}" for name, value in shown.items())
        return f"ModelSettings({inner})"

    def merged(self, **overrides: Any) -> ModelSettings:
        """Return a copy with ``overrides`` applied (``parameters`` merged)."""
        overrides = checked_settings(overrides, where="the model settings")
        if "parameters" in overrides:
            overrides["parameters"] = {
                **self.parameters,
                **(overrides["parameters"] or {}),
            }
        return replace(self, **overrides)

    @property
    def has_price_override(self) -> bool:
        """Tell whether a price was configured for this model."""
        return (
            self.input_price_per_mtok is not None
            or self.output_price_per_mtok is not None
        )


_NAMES = tuple(f.name for f in fields(ModelSettings))
_DEFAULTS = {f.name: f.default for f in fields(ModelSettings)}


def check_names(values: dict[str, Any], *, where: str) -> None:
    """Reject unknown setting names, naming the close matches."""
    for name in values:
        if name not in _NAMES:
            close = difflib.get_close_matches(name, _NAMES, n=3)
            hint = (
                f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            )
            raise ConfigurationError(
                f"Unknown setting {name!r} in {where}.{hint} "
                f"Known settings: {', '.join(_NAMES)}."
            )


def _register_key(table: dict[str, Any]) -> None:
    key = table.get("api_key")
    if isinstance(key, str):
        register_secret(key)


def checked_settings(values: dict[str, Any], *, where: str) -> dict[str, Any]:
    """Return ``values`` with each setting coerced to its type.

    Raises:
        ConfigurationError: an unknown name (close matches named), a value of
            the wrong type or out of range; ``where`` says where it was given.
    """
    check_names(values, where=where)
    return {
        name: coerce_setting(name, value, where=where) for name, value in values.items()
    }


_code_settings: dict[str, dict[str, Any]] = {}
_lock = threading.Lock()


def configure_model(name: str, **settings: Any) -> None:
    """Set model settings from code (above config files, below call overrides).

    Args:
        name: An alias (new or existing) or a spec such as ``"openai:gpt-4o"``.
        **settings: Any :class:`ModelSettings` field; ``spec=`` makes ``name`` an
            alias for that spec.

    Example::

        configure_model("fast", spec="openai:gpt-4o-mini", requests_per_minute=100)
    """
    _register_key(settings)
    settings = checked_settings(settings, where=f"configure_model({name!r})")
    with _lock:
        _code_settings.setdefault(name, {}).update(settings)


def clear_configured() -> None:
    """Forget settings made with :func:`configure_model` (for tests)."""
    with _lock:
        _code_settings.clear()


def configured_models(
    config: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Return every configured model table by name: config files, then code."""
    if config is None:
        from maquina_nb.config import load_config

        config = load_config()
    tables: dict[str, dict[str, Any]] = {}
    for name, table in (config.get("models") or {}).items():
        if not isinstance(table, dict):
            raise ConfigurationError(
                f"The [models.{name}] entry in the config file is not a table; "
                "write it as [models.NAME] with settings under it."
            )
        _register_key(table)
        tables[name] = checked_settings(table, where=f"[models.{name}]")
    with _lock:
        for name, table in _code_settings.items():
            tables[name] = {**tables.get(name, {}), **table}
    return tables


def settings_for(names: list[str], tables: dict[str, dict[str, Any]]) -> ModelSettings:
    """Merge the tables of ``names`` (later names win) into one settings object."""
    merged: dict[str, Any] = {}
    for name in names:
        table = tables.get(name, {})
        parameters = {**merged.get("parameters", {}), **table.get("parameters", {})}
        merged.update(table)
        if parameters:
            merged["parameters"] = parameters
    return ModelSettings(**merged)
