"""Planning: items x models x samples -> the requests a run will make.

Planning does no network work: it resolves the model specs, renders the items,
builds one :class:`PlannedRequest` per (item, model, sample) with its cache key,
and leaves cache lookups and the cost estimate to the steps that follow. Any
mistake the user can fix (an unknown model, an undefined template variable) is
raised here, before a run exists.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from maquina_nb._redact import get_logger
from maquina_nb.errors import ConfigurationError
from maquina_nb.orchestrator.cache import KeyBuilder
from maquina_nb.templating import TemplateItem, build_items, to_json_value

if TYPE_CHECKING:
    from maquina_nb.providers.base import BaseAIModel, ModelRequest

__all__ = [
    "Plan",
    "PlannedRequest",
    "check_models_usable",
    "make_plan",
    "resolve_models",
]

logger = get_logger(__name__)


@dataclass(slots=True, eq=False)
class PlannedRequest:
    """One response the run will produce."""

    index: int
    """Position in the plan (item-major, then sample, then model)."""
    item_index: int
    sample_index: int
    model_spec: str
    """The model's column label: the spec as the user wrote it."""
    model: BaseAIModel
    request: ModelRequest
    """The request; for sequential turns, the first turn only is in it after
    the system prompt (the later ones are in ``later_turns``)."""
    later_turns: tuple[str, ...]
    """User turns asked after the model answers the previous one (MT-Bench)."""
    variables: dict[str, Any] | None
    cache_key: str

    @property
    def address(self) -> tuple[int, str, int]:
        """``(item_index, model_spec, sample_index)``: the response's place."""
        return (self.item_index, self.model_spec, self.sample_index)


@dataclass(slots=True)
class Plan:
    """Everything a run will ask, before anything is sent."""

    items: list[TemplateItem]
    models: list[str]
    """Model specs in column order."""
    model_objects: dict[str, BaseAIModel]
    samples: int
    requests: list[PlannedRequest]
    template: str
    system: str | None
    parameters: dict[str, Any]
    cached: dict[str, Any] = field(default_factory=dict)
    """Cache key → reusable stored response, filled by the cache lookup."""
    estimated_cost_usd: float | None = None
    """Pre-flight estimate of what the uncached requests may cost (``None``
    when no model could be priced)."""
    unpriced_models: list[str] = field(default_factory=list)
    """Models whose cost could not be estimated."""

    @property
    def total(self) -> int:
        """How many responses the run will produce."""
        return len(self.requests)

    @property
    def misses(self) -> list[PlannedRequest]:
        """Planned requests with no reusable cached answer."""
        return [r for r in self.requests if r.cache_key not in self.cached]


def _label_of(model: BaseAIModel | str) -> str:
    return model if isinstance(model, str) else model.spec


def resolve_models(
    models: str | BaseAIModel | Sequence[str | BaseAIModel] | Mapping[str, BaseAIModel],
) -> dict[str, BaseAIModel]:
    """Resolve specs (or take model objects) into ``label → model``, in order.

    A single string may list several specs separated by commas.

    Raises:
        ConfigurationError: no models, or the same spec twice.
        UnknownModelError: a spec names no known model.
    """
    from maquina_nb.providers.base import BaseAIModel

    if isinstance(models, Mapping):
        return dict(models)
    if isinstance(models, str):
        entries: list[str | BaseAIModel] = [
            s.strip() for s in models.split(",") if s.strip()
        ]
    elif isinstance(models, BaseAIModel):
        entries = [models]
    else:
        entries = list(models)
    if not entries:
        raise ConfigurationError(
            "No models were given; pass at least one spec such as 'echo' or 'openai:gpt-4o'."
        )

    resolved: dict[str, BaseAIModel] = {}
    for entry in entries:
        label = _label_of(entry).strip()
        if label in resolved:
            raise ConfigurationError(
                f"The model {label!r} is listed twice; list each model once and use "
                "samples= to ask it more than once."
            )
        if isinstance(entry, str):
            from maquina_nb.providers import resolve_model

            resolved[label] = resolve_model(label)
        else:
            resolved[label] = entry
    return resolved


def check_models_usable(resolved: Mapping[str, BaseAIModel]) -> None:
    """Refuse models that cannot answer at all, before a run exists.

    Looks only at local settings (no network): an API key that is not set, or
    an ``openai-compatible`` model with no base URL.

    Raises:
        MissingKeyError: some models need a key that is not set; the message
            has one sentence per model naming its environment variable, and
            ``missing`` lists the ``(model, env_var)`` pairs.
        ConfigurationError: a model that needs a base URL has none.
    """
    from maquina_nb.errors import MissingKeyError

    missing: list[MissingKeyError] = []
    for label, model in resolved.items():
        if (
            hasattr(model, "default_base_url")
            and getattr(model, "base_url", "") is None
        ):
            raise ConfigurationError(
                f"The model {label!r} needs a base URL; pass base_url= (for "
                "example 'http://127.0.0.1:8000/v1') or set base_url in its "
                "[models] settings."
            )
        key_info = getattr(model, "key_info", None)
        if not callable(key_info):
            continue
        info = key_info()
        if getattr(info, "status", None) == "missing":
            # A model may say better why (a base_url in its spec gets no env key).
            make_error = getattr(model, "missing_key_error", None)
            missing.append(
                make_error(label)
                if callable(make_error)
                else MissingKeyError(label, info.source or "api_key")
            )
    if not missing:
        return
    first = missing[0]
    if len(missing) > 1:
        first.args = (" ".join(str(error) for error in missing),)
    first.missing = [(e.model, e.env_var) for e in missing]  # type: ignore[attr-defined]
    raise first


def _template_text(prompt: Any) -> str:
    """Return the prompt as stored on the run: the template, or JSON of the items."""
    if isinstance(prompt, str):
        return prompt
    return json.dumps(to_json_value(prompt), ensure_ascii=False)


def _build_request(
    item: TemplateItem, system: str | None, parameters: Mapping[str, Any]
) -> tuple[ModelRequest, tuple[str, ...]]:
    from maquina_nb.providers.base import Message, ModelRequest

    messages = [Message(m["role"], m["content"]) for m in item.messages]  # type: ignore[arg-type]
    later: tuple[str, ...] = ()
    if item.sequential:
        later = tuple(m.content for m in messages[1:])
        messages = messages[:1]
    if system is not None and not (messages and messages[0].role == "system"):
        messages.insert(0, Message("system", system))
    request = ModelRequest(
        messages=tuple(messages),
        temperature=parameters.get("temperature"),
        max_tokens=parameters.get("max_tokens"),
        top_p=parameters.get("top_p"),
        stop=tuple(parameters["stop"]) if parameters.get("stop") is not None else None,
        seed=parameters.get("seed"),
        extra=dict(parameters.get("extra") or {}),
    )
    return request, later


def make_plan(
    prompt: Any,
    models: str | BaseAIModel | Sequence[str | BaseAIModel] | Mapping[str, BaseAIModel],
    *,
    over: Any = None,
    namespace: Mapping[str, Any] | None = None,
    system: str | None = None,
    samples: int = 1,
    parameters: Mapping[str, Any] | None = None,
    warn_missing: bool = True,
) -> Plan:
    """Resolve models, render items and lay out every request of a run.

    Args:
        prompt: a template, a list of prompts, a conversation, or MT-Bench turns
            (see :func:`maquina_nb.templating.build_items`).
        models: model specs or model objects.
        over: a DataFrame (or list of mappings) to render the template over.
        namespace: the names a template may use when there is no ``over``
            (with ``over`` only the row's columns are variables).
        system: the system prompt, itself a template rendered per item.
        samples: how many answers to ask of each model per item.
        parameters: ``temperature``, ``max_tokens``, ``top_p``, ``stop``,
            ``seed`` and ``extra`` (provider-specific).
        warn_missing: warn about missing values in ``over`` (off when the
            plan only checks the input of a run that plans again).

    Raises:
        ConfigurationError: bad samples, models or template (TemplateError).
        UnknownModelError: a spec names no known model.
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ConfigurationError(
            f"samples must be a whole number of at least 1, not {samples!r}."
        )
    parameters = dict(parameters or {})

    # Render first: template errors are the commonest and need no model.
    items = build_items(
        prompt,
        over=over,
        namespace=namespace,
        extra_sources=[system] if system else [],
        warn_missing=warn_missing,
    )
    resolved = resolve_models(models)
    check_models_usable(resolved)

    # One request per (item, sample, model); the system prompt is rendered per item.
    planned: list[PlannedRequest] = []
    identities = {label: model.identity for label, model in resolved.items()}
    keys = KeyBuilder()
    for item in items:
        # The system prompt was rendered with the item (the row's columns only).
        item_system = item.extra[0] if system else system
        request, later = _build_request(item, item_system, parameters)
        for sample_index in range(samples):
            for label, model in resolved.items():
                identity = identities[label]
                if later:
                    # The later turns decide the answer too.
                    identity = {**identity, "later_turns": list(later)}
                key = keys.key(identity, request, sample_index)
                planned.append(
                    PlannedRequest(
                        index=len(planned),
                        item_index=item.item_index,
                        sample_index=sample_index,
                        model_spec=label,
                        model=model,
                        request=request,
                        later_turns=later,
                        variables=item.variables,
                        cache_key=key,
                    )
                )

    logger.debug(
        "planned %d requests: %d items x %d models x %d samples",
        len(planned),
        len(items),
        len(resolved),
        samples,
    )
    return Plan(
        items=items,
        models=list(resolved),
        model_objects=resolved,
        samples=samples,
        requests=planned,
        template=_template_text(prompt),
        system=system,
        parameters=parameters,
    )
