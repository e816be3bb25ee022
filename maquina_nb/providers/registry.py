"""Turn model specs into model objects: providers, aliases, custom models.

A spec is ``provider:model`` (``openai:gpt-4o``, ``anthropic:claude-sonnet-4-5``,
``ollama:llama3.1``, ``openai-compatible:NAME``, ``echo``, ``echo:NAME``,
``replay:NAME``), a built-in alias (``claude``, ``gpt-4o``, ``gpt-4``,
``gpt-3.5``, ``llama`` …), an alias from a config file or
:func:`~maquina_nb.providers.settings.configure_model`, or the name of a custom
model. Custom models come three ways:

1. a :class:`BaseAIModel` subclass, registered with ``@register_model("name")``;
2. an async function ``(ModelRequest) -> str | Completion`` (or an async
   generator of text pieces, for streaming) decorated with ``@register_model``;
3. a plugin package exposing either of those under the entry-point group
   ``maquina_nb.models``.

:func:`resolve_model` returns one shared object per spec and settings, so SDK
clients and rate limits are shared by every run in the process.

Keys and spec strings: a spec is data (it is stored with every run, shared in
notebooks, sent to the REST API), so it may point a model at another server
with ``?base_url=`` but it cannot take a key along. A model whose ``base_url``
comes from its spec string is not given the provider's usual environment
variable (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``) unless that base URL is the
one it would use anyway (its configured base URL, ``OPENAI_BASE_URL`` /
``ANTHROPIC_BASE_URL``, or the provider's own); its key must come from
``key_env`` or ``api_key`` in ``maquina.toml``, :func:`configure_model` or
``resolve_model`` keywords. A ``base_url`` in a config table or in code is
configuration, and keeps the usual key.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import json
import threading
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from maquina_nb._redact import get_logger
from maquina_nb.errors import ConfigurationError, UnknownModelError
from maquina_nb.providers._checks import checked_offline_options
from maquina_nb.providers.base import BaseAIModel
from maquina_nb.providers.retry import Clock
from maquina_nb.providers.settings import (
    ModelSettings,
    checked_settings,
    configured_models,
    refuse_secret_options,
    settings_for,
)

__all__ = [
    "ALIASES",
    "ENTRY_POINT_GROUP",
    "ModelFactory",
    "available_models",
    "register_model",
    "resolve_model",
    "unregister_model",
]

logger = get_logger(__name__)

ENTRY_POINT_GROUP = "maquina_nb.models"

#: Built-in aliases. Config files and ``configure_model`` may add or override.
ALIASES: dict[str, str] = {
    "claude": "anthropic:claude-sonnet-4-5",
    "claude-sonnet": "anthropic:claude-sonnet-4-5",
    "claude-opus": "anthropic:claude-opus-4-1",
    "claude-haiku": "anthropic:claude-haiku-4-5",
    "gpt-4o": "openai:gpt-4o",
    "gpt-4o-mini": "openai:gpt-4o-mini",
    "gpt-4.1": "openai:gpt-4.1",
    "gpt-4.1-mini": "openai:gpt-4.1-mini",
    "gpt-4": "openai:gpt-4",
    "gpt-4-turbo": "openai:gpt-4-turbo",
    "gpt-3.5": "openai:gpt-3.5-turbo",
    "gpt-3.5-turbo": "openai:gpt-3.5-turbo",
    "gpt-5": "openai:gpt-5",
    "o3-mini": "openai:o3-mini",
    "o4-mini": "openai:o4-mini",
    "llama": "ollama:llama3.1",
    "llama3": "ollama:llama3.1",
    "mistral": "ollama:mistral",
    "qwen": "ollama:qwen2.5",
}

_PROVIDERS = {
    "openai": ("maquina_nb.providers.openai", "OpenAIModel"),
    "anthropic": ("maquina_nb.providers.anthropic", "ClaudeModel"),
    "ollama": ("maquina_nb.providers.openai", "OllamaModel"),
    "openai-compatible": ("maquina_nb.providers.openai", "OpenAICompatibleModel"),
    "echo": ("maquina_nb.providers.offline", "EchoModel"),
    "replay": ("maquina_nb.providers.offline", "ReplayModel"),
}
_REMOTE = {"openai", "anthropic", "ollama", "openai-compatible"}

_registered: dict[str, Callable[..., BaseAIModel]] = {}
_registry_lock = threading.Lock()
_entry_points_loaded = False

F = TypeVar("F")


# --- custom models ----------------------------------------------------------


class FunctionModel(BaseAIModel):
    """A model made from an async function (see :func:`register_model`)."""

    provider = "custom"

    def __init__(
        self, name: str, function: Callable[..., Any], *, version: str | None = None
    ) -> None:
        super().__init__(name, spec=name)
        self.function = function
        self.supports_streaming = inspect.isasyncgenfunction(function)
        self.version = version or _code_version(function)

    @property
    def identity(self) -> dict[str, Any]:
        """Name and version (explicit, or a hash of the function's code)."""
        return {"provider": "custom", "model": self.model, "version": self.version}

    async def generate(self, request: Any) -> Any:
        """Call the function; a string answer becomes a ``stop`` completion."""
        import time

        from maquina_nb.providers.base import Completion

        started = time.perf_counter()
        if self.supports_streaming:
            text = "".join([piece async for piece in self.function(request)])
            result: Any = text
        else:
            result = await self.function(request)
        if isinstance(result, Completion):
            completion = result
        elif isinstance(result, str):
            completion = Completion(
                text=result, finish_reason="stop" if result else "empty"
            )
        else:
            raise TypeError(
                f"The custom model {self.model!r} returned {type(result).__name__}; "
                "return a str or a Completion."
            )
        completion.model_id = completion.model_id or self.model
        if completion.latency_s is None:
            completion.latency_s = time.perf_counter() - started
        return completion

    async def stream(self, request: Any) -> Any:
        """Stream the function's pieces (async generators) or its one answer."""
        if not self.supports_streaming:
            async for item in super().stream(request):
                yield item
            return
        import time

        from maquina_nb.providers.base import Completion, TextDelta

        started = time.perf_counter()
        pieces: list[str] = []
        ttft = None
        async for piece in self.function(request):
            if ttft is None:
                ttft = time.perf_counter() - started
            pieces.append(piece)
            yield TextDelta(piece)
        text = "".join(pieces)
        latency = time.perf_counter() - started
        yield Completion(
            text=text,
            finish_reason="stop" if text else "empty",
            model_id=self.model,
            latency_s=latency,
            ttft_s=ttft if ttft is not None else latency,
        )


def _code_version(function: Callable[..., Any]) -> str:
    code = getattr(function, "__code__", None)
    if code is None:
        return "unversioned"
    digest = hashlib.sha256(code.co_code + repr(code.co_consts).encode()).hexdigest()
    return f"code-{digest[:12]}"


def _as_factory(
    name: str, target: Any, version: str | None
) -> Callable[..., BaseAIModel]:
    if inspect.isclass(target) and issubclass(target, BaseAIModel):

        def _make_instance(**kwargs: Any) -> BaseAIModel:
            return target(name, spec=name, **kwargs)

        return _make_instance
    if inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target):
        return lambda **kwargs: FunctionModel(name, target, version=version)
    if callable(target):
        # A plain factory returning a model (entry points may expose one).
        def _call_factory(**kwargs: Any) -> BaseAIModel:
            model = target(**kwargs)
            if not isinstance(model, BaseAIModel):
                raise ConfigurationError(
                    f"The model factory for {name!r} returned {type(model).__name__}, "
                    "not a BaseAIModel; return a model object."
                )
            return model

        return _call_factory
    raise ConfigurationError(
        f"Cannot register {target!r} as model {name!r}; register a BaseAIModel subclass "
        "or an async function taking a ModelRequest."
    )


def register_model(name: str, target: Any = None, *, version: str | None = None) -> Any:
    """Register a custom model under ``name``; usable as a decorator.

    Args:
        name: The spec users write (``"my-model"``); may not contain ``:``
            unless it is meant to shadow a provider spec.
        target: A :class:`BaseAIModel` subclass, or an async function taking a
            :class:`~maquina_nb.providers.base.ModelRequest` and returning a
            ``str`` or a ``Completion`` (an async generator of ``str`` streams).
        version: Changes the model's identity, and so its cache keys; default
            a hash of the function's code.

    Example::

        @register_model("shout")
        async def shout(request):
            return request.messages[-1].content.upper()
    """

    def _register(obj: F) -> F:
        factory = _as_factory(name, obj, version)
        with _registry_lock:
            _registered[name] = factory
        _factory.clear_cache()
        logger.debug("registered custom model %r", name)
        return obj

    if target is not None:
        return _register(target)
    return _register


def unregister_model(name: str) -> None:
    """Remove a custom model registered under ``name`` (no error if absent)."""
    with _registry_lock:
        _registered.pop(name, None)
    _factory.clear_cache()


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    from importlib.metadata import entry_points

    _entry_points_loaded = True
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in _registered:
            continue
        try:
            target = entry.load()
            factory = _as_factory(entry.name, target, None)
        except Exception:
            # A broken plugin must not break every other model.
            logger.warning(
                "could not load model plugin %r (%s)",
                entry.name,
                entry.value,
                exc_info=True,
            )
            continue
        with _registry_lock:
            _registered.setdefault(entry.name, factory)


def reload_entry_points() -> None:
    """Read the ``maquina_nb.models`` entry points again (after installing a plugin)."""
    global _entry_points_loaded
    _entry_points_loaded = False
    _load_entry_points()
    _factory.clear_cache()


# --- resolution -------------------------------------------------------------


class ModelFactory:
    """Resolve specs against aliases, config, custom models and providers.

    Args:
        config: A config mapping (as :func:`maquina_nb.config.load_config`
            returns); default: read the config files on each resolution.
    """

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self._config = config
        self._cache: dict[str, BaseAIModel] = {}
        self._lock = threading.Lock()

    def clear_cache(self) -> None:
        """Forget the shared model objects (new settings take effect)."""
        with self._lock:
            self._cache.clear()

    def known_names(self) -> list[str]:
        """Every alias, configured name, custom model and provider prefix."""
        _load_entry_points()
        names = set(ALIASES) | set(configured_models(self._config)) | set(_registered)
        names |= {"echo", *(f"replay:{n}" for n in _bundled_replays())}
        names |= {f"{provider}:" for provider in _PROVIDERS}
        names |= set(ALIASES.values())
        return sorted(names)

    def _chain(
        self, spec: str, tables: dict[str, dict[str, Any]]
    ) -> tuple[str, list[str]]:
        """Follow aliases to a final spec; return it and the setting tables to apply."""
        chain = [spec]
        current = spec
        for _ in range(10):
            if current in tables and tables[current].get("spec"):
                current = str(tables[current]["spec"]).strip()
            elif current in ALIASES and current not in _registered:
                current = ALIASES[current]
            else:
                break
            chain.append(current)
        else:
            raise ConfigurationError(
                f"The model alias {spec!r} loops; check the spec = entries under [models]."
            )
        # Lowest priority first: the final spec's table, then each alias outwards.
        return current, [name for name in reversed(chain) if name in tables]

    def resolve(
        self, spec: str, *, clock: Clock | None = None, **overrides: Any
    ) -> BaseAIModel:
        """Return the shared model object for ``spec`` with ``overrides`` applied."""
        if not isinstance(spec, str) or not spec.strip():
            raise UnknownModelError(repr(spec), [])
        spec = spec.strip()
        if isinstance(overrides.get("api_key"), str):
            from maquina_nb._redact import register_secret

            register_secret(overrides["api_key"])
        # Keys never ride in a spec string: refused before it is echoed anywhere.
        refuse_secret_options(spec, parse_qsl(spec.partition("?")[2]))
        tables = configured_models(self._config)
        target, table_names = self._chain(spec, tables)
        if target != spec:
            refuse_secret_options(target, parse_qsl(target.partition("?")[2]))
        merged = settings_for(
            table_names,
            {n: {k: v for k, v in t.items() if k != "spec"} for n, t in tables.items()},
        )

        cache_key = json.dumps(
            [
                spec,
                target,
                repr(sorted(merged.__dict__.items())),
                repr(sorted(overrides.items())),
                id(clock),
            ],
            default=repr,
        )
        with self._lock:
            cached = self._cache.get(cache_key)
        if cached is not None:
            return cached

        model = self._build(spec, target, merged, clock, overrides)
        with self._lock:
            return self._cache.setdefault(cache_key, model)

    def _build(
        self,
        spec: str,
        target: str,
        settings: ModelSettings,
        clock: Clock | None,
        overrides: dict[str, Any],
    ) -> BaseAIModel:
        # Custom models first: a registered name wins over a provider spec.
        _load_entry_points()
        with _registry_lock:
            factory = _registered.get(target)
        if factory is not None:
            return factory(**overrides)

        # ``provider:model?option=value``
        base, _, query = target.partition("?")
        options: dict[str, Any] = dict(parse_qsl(query))
        provider, _, name = base.partition(":")
        if provider not in _PROVIDERS:
            raise UnknownModelError(spec, self._suggest(spec))
        if provider in ("echo",) and not name:
            name = "echo"
        if not name:
            raise UnknownModelError(spec, self._suggest(spec))

        import importlib

        module_name, class_name = _PROVIDERS[provider]
        cls = getattr(importlib.import_module(module_name), class_name)
        if provider in _REMOTE:
            options = checked_settings(options, where=f"the spec {base!r}")
            # A base_url from the spec string is kept apart: it may not receive
            # the environment's key (see the module docstring).
            spec_base_url = options.pop("base_url", None)
            settings = (
                settings.merged(**{**options, **overrides})
                if (options or overrides)
                else settings
            )
            model: BaseAIModel = cls(
                name,
                spec=spec,
                settings=settings,
                clock=clock,
                spec_base_url=None if "base_url" in overrides else spec_base_url,
            )
            return model
        given = {
            **checked_offline_options(provider, options, where=f"the spec {base!r}"),
            **checked_offline_options(
                provider, overrides, where=f"the options of {spec!r}"
            ),
        }
        offline: BaseAIModel = cls(name, spec=spec, **given)
        return offline

    def _suggest(self, spec: str) -> list[str]:
        names = self.known_names()
        close = difflib.get_close_matches(spec, names, n=3, cutoff=0.6)
        provider = spec.partition(":")[0]
        if not close and ":" in spec:
            providers = difflib.get_close_matches(provider, list(_PROVIDERS), n=1)
            if providers:
                close = [f"{providers[0]}:{spec.partition(':')[2]}"]
        return close


def _bundled_replays() -> tuple[str, ...]:
    from maquina_nb.providers.offline import BUNDLED_REPLAYS

    return BUNDLED_REPLAYS


_factory = ModelFactory()


def resolve_model(
    spec: str | BaseAIModel, *, clock: Clock | None = None, **overrides: Any
) -> BaseAIModel:
    """Return the model for ``spec``, ready to call.

    The model applies its own rate limits, timeouts and retries and fills in
    ``Completion.cost_usd``. Objects are shared: the same spec and settings give
    the same object, so its SDK client and rate limits are shared by every run.

    Args:
        spec: A spec, an alias, a custom model name, or a model object (returned
            as is).
        clock: Time source for rate limits and retries (tests).
        **overrides: Settings (see :class:`ModelSettings`) or, for offline
            models, their options (``latency``, ``chunk_delay``, ``path``).

    Raises:
        UnknownModelError: nothing is known by that name; close matches named.
        ConfigurationError: a setting or option is not valid.
    """
    if isinstance(spec, BaseAIModel):
        return spec
    return _factory.resolve(spec, clock=clock, **overrides)


def available_models() -> list[str]:
    """Return the names users can resolve: aliases, configured and custom models."""
    return _factory.known_names()
