"""Cache keys: what decides an answer, hashed.

A response is reused only when everything that decides it matches (DESIGN.md
decision 7, case C35): the model's identity (provider, model name, and whatever
else the model reports, such as a local server's base URL or a custom model's
version), every request parameter, the rendered messages, and the sample index.

``None`` ("the provider's default") stays distinct from every explicit value, so
an omitted temperature never matches an explicit ``temperature=0``. Numbers of the
float parameters are normalized (``0`` and ``0.0`` are the same temperature).
Lone surrogates (which UTF-8 cannot encode) are hashed as their code points
(``surrogatepass``), so any text gives a key; templating has already replaced
them in rendered prompts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from maquina_nb.providers.base import ModelRequest

__all__ = ["CACHE_KEY_VERSION", "KeyBuilder", "cache_key", "canonical_request"]

#: Bumped whenever the key layout changes, so old entries stop matching.
CACHE_KEY_VERSION = 1

_FLOAT_PARAMETERS = ("temperature", "top_p")


def _normalize(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        # 1.0 and 1 are the same number; JSON would spell them differently.
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        return {str(k): _normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalize(v) for v in value]
    return value


def _dumps(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr
    )


def canonical_request(
    identity: Mapping[str, Any], request: ModelRequest, sample_index: int
) -> dict[str, Any]:
    """Return the JSON-ready dict a cache key is the hash of."""
    parameters = request.parameters()
    for name in _FLOAT_PARAMETERS:
        if parameters.get(name) is not None:
            parameters[name] = float(parameters[name])
    return {
        "v": CACHE_KEY_VERSION,
        "model": _normalize(dict(identity)),
        "parameters": _normalize(parameters),
        "messages": [message.to_dict() for message in request.messages],
        "sample": sample_index,
    }


def cache_key(
    identity: Mapping[str, Any], request: ModelRequest, sample_index: int
) -> str:
    """Return the sha256 hex digest of the canonical JSON of one request.

    Args:
        identity: the model's :attr:`~maquina_nb.providers.base.BaseAIModel.identity`.
        request: the request as it will be sent.
        sample_index: which sample of the same request this is (0-based); each
            sample is cached on its own.
    """
    canonical = canonical_request(identity, request, sample_index)
    return hashlib.sha256(
        _dumps(canonical).encode("utf-8", "surrogatepass")
    ).hexdigest()


class KeyBuilder:
    """Compute many keys fast: each identity and request is serialized once.

    Gives exactly :func:`cache_key` (the pieces are joined in the sorted key
    order ``json.dumps(..., sort_keys=True)`` would use).
    """

    def __init__(self) -> None:
        self._identities: dict[int, tuple[Mapping[str, Any], str]] = {}
        self._requests: dict[int, tuple[ModelRequest, str, str]] = {}

    def key(
        self, identity: Mapping[str, Any], request: ModelRequest, sample_index: int
    ) -> str:
        """Return ``cache_key(identity, request, sample_index)``."""
        known = self._identities.get(id(identity))
        if known is None or known[0] is not identity:
            known = (identity, _dumps(_normalize(dict(identity))))
            self._identities[id(identity)] = known
        pieces = self._requests.get(id(request))
        if pieces is None or pieces[0] is not request:
            canonical = canonical_request(identity, request, sample_index)
            pieces = (
                request,
                _dumps(canonical["messages"]),
                _dumps(canonical["parameters"]),
            )
            self._requests[id(request)] = pieces
        text = (
            f'{{"messages":{pieces[1]},"model":{known[1]},"parameters":{pieces[2]},'
            f'"sample":{int(sample_index)},"v":{CACHE_KEY_VERSION}}}'
        )
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
