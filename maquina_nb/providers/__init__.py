"""The model layer: one interface over Claude, GPT, local and offline models.

Resolve a spec and call it::

    from maquina_nb.providers import ModelRequest, Message, resolve_model

    model = resolve_model("openai:gpt-4o")
    completion = await model.generate(ModelRequest((Message("user", "Hi"),)))

Importing this package is cheap: the SDKs and ``genai-prices`` load on first use.
"""

from __future__ import annotations

from maquina_nb.providers.anthropic import ClaudeModel
from maquina_nb.providers.base import (
    FINISH_REASONS,
    BaseAIModel,
    Completion,
    FinishReason,
    Message,
    ModelRequest,
    TextDelta,
)
from maquina_nb.providers.catalog import list_models
from maquina_nb.providers.credentials import acheck_credentials, check_credentials
from maquina_nb.providers.offline import EchoModel, ReplayModel, mt_bench_questions
from maquina_nb.providers.openai import OllamaModel, OpenAICompatibleModel, OpenAIModel
from maquina_nb.providers.pricing import estimate_cost
from maquina_nb.providers.registry import (
    ALIASES,
    ModelFactory,
    available_models,
    register_model,
    resolve_model,
    unregister_model,
)
from maquina_nb.providers.settings import ModelSettings, configure_model

__all__ = [
    "ALIASES",
    "FINISH_REASONS",
    "BaseAIModel",
    "ClaudeModel",
    "Completion",
    "EchoModel",
    "FinishReason",
    "Message",
    "ModelFactory",
    "ModelRequest",
    "ModelSettings",
    "OllamaModel",
    "OpenAICompatibleModel",
    "OpenAIModel",
    "ReplayModel",
    "TextDelta",
    "acheck_credentials",
    "available_models",
    "check_credentials",
    "configure_model",
    "estimate_cost",
    "list_models",
    "mt_bench_questions",
    "register_model",
    "resolve_model",
    "unregister_model",
]
