"""Check and coerce model setting values, from config files, code or spec strings.

Values from a spec string (``openai:gpt-4o?requests_per_minute=10``) arrive as
text, and so may values in a config file (``requests_per_minute = "60"``); each
is turned into its field's type here, once, when the model is resolved. A value
that cannot be, or is out of range, raises a one-sentence
:class:`~maquina_nb.errors.ConfigurationError` naming the setting, the value and
where it was given, so a run is refused before it starts instead of failing on
every response.

A spec string never carries a key: an option named like one (``api_key``,
``key_env``, ``token``, ``secret`` …) is refused wherever the spec is written,
and its value registered as a secret so no later message repeats it.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from maquina_nb._redact import register_secret
from maquina_nb.errors import ConfigurationError

__all__ = [
    "checked_offline_options",
    "coerce_setting",
    "is_secret_name",
    "refuse_secret_options",
]

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


# Option names that hold (or name) a credential: whole words of the name.
_SECRET_WORDS = frozenset(
    {
        "key",
        "keys",
        "apikey",
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "auth",
        "authorization",
        "bearer",
        "credential",
        "credentials",
    }
)
_WORD = re.compile(r"[a-z0-9]+")
#: Known settings whose names merely contain such a word.
_NOT_SECRET = frozenset({"tokens_per_minute", "first_token_timeout"})


def is_secret_name(name: str) -> bool:
    """Tell whether an option called ``name`` would carry a key or names one."""
    if name in _NOT_SECRET:
        return False
    lowered = name.lower()
    words = set(_WORD.findall(lowered))
    return bool(words & _SECRET_WORDS) or any(
        part in lowered for part in ("apikey", "secret", "password")
    )


def refuse_secret_options(spec: str, options: list[tuple[str, str]]) -> None:
    """Refuse a spec string whose options carry a key, without repeating it.

    Raises:
        ConfigurationError: an option such as ``api_key``, ``key_env`` or
            ``token`` is in the spec; its value is registered as a secret.
    """
    secret = [name for name, _ in options if is_secret_name(name)]
    if not secret:
        return
    for name, value in options:
        if name in secret:
            register_secret(value)
    base = spec.partition("?")[0]
    raise ConfigurationError(
        f"The spec {base + '?...'!r} carries {secret[0]!r}, and keys never go in a "
        "model spec (it is stored with the run); set key_env (or api_key) for the "
        "model in maquina.toml or configure_model instead."
    )


class _Bad(ValueError):
    """A value that does not fit; the text says what would."""


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Bad("a number")
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except ValueError:
        raise _Bad("a number") from None
    if not math.isfinite(number):
        raise _Bad("a finite number")
    return number


def _whole_above_zero(value: Any) -> int:
    what = "a whole number above 0"
    try:
        number = _number(value)
    except _Bad:
        raise _Bad(what) from None
    if not number.is_integer() or number < 1:
        raise _Bad(what)
    return int(number)


def _seconds_above_zero(value: Any) -> float:
    number = _number(value)
    if number <= 0:
        raise _Bad("a number of seconds above 0")
    return number


def _zero_or_more(value: Any) -> float:
    number = _number(value)
    if number < 0:
        raise _Bad("a number, 0 or more")
    return number


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _Bad("true or false")


def _text(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise _Bad("non-empty text")


def _key(value: Any) -> str:
    # Kept as given: credentials.clean_key strips it and explains bad characters.
    if isinstance(value, str):
        return value
    raise _Bad("text (better: name its variable with key_env)")


def _spec(value: Any) -> str:
    spec = _text(value)
    refuse_secret_options(spec, parse_qsl(spec.partition("?")[2]))
    return spec


def _version(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return _text(value)


def _url(value: Any) -> str:
    text = _text(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Bad("an http:// or https:// URL such as 'http://127.0.0.1:8000/v1'")
    return text


def _parameters(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise _Bad("a table of request parameters") from None
    if not isinstance(value, dict):
        raise _Bad("a table of request parameters, such as { temperature = 0.2 }")
    return dict(value)


def _temperature(value: Any) -> float:
    number = _number(value)
    if not 0 <= number <= 2:
        raise _Bad("a number from 0 to 2")
    return number


def _top_p(value: Any) -> float:
    number = _number(value)
    if not 0 <= number <= 1:
        raise _Bad("a number from 0 to 1")
    return number


def _seed(value: Any) -> int:
    number = _number(value)
    if not number.is_integer():
        raise _Bad("a whole number")
    return int(number)


def _stop(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    raise _Bad("a string or a list of strings")


#: Request parameters the models read themselves; others go to the provider as is.
_KNOWN_PARAMETERS: dict[str, Callable[[Any], Any]] = {
    "temperature": _temperature,
    "top_p": _top_p,
    "max_tokens": _whole_above_zero,
    "seed": _seed,
    "stop": _stop,
}


def _checked_parameters(value: Any, where: str) -> dict[str, Any]:
    try:
        parameters = _parameters(value)
    except _Bad as exc:
        raise _refuse("parameters", value, where, str(exc)) from None
    for name, item in parameters.items():
        check = _KNOWN_PARAMETERS.get(name)
        if check is None or item is None:
            continue
        try:
            parameters[name] = check(item)
        except _Bad as exc:
            raise _refuse(f"parameters.{name}", item, where, str(exc)) from None
    return parameters


_SETTINGS: dict[str, tuple[Callable[[Any], Any], bool]] = {
    # name: (coerce, None allowed)
    "spec": (_spec, True),
    "base_url": (_url, True),
    "api_key": (_key, True),
    "key_env": (_text, True),
    "requests_per_minute": (_whole_above_zero, True),
    "tokens_per_minute": (_whole_above_zero, True),
    "max_in_flight": (_whole_above_zero, True),
    "timeout": (_seconds_above_zero, True),
    "connect_timeout": (_seconds_above_zero, False),
    "read_timeout": (_seconds_above_zero, True),
    "first_token_timeout": (_seconds_above_zero, True),
    "max_attempts": (_whole_above_zero, False),
    "max_retry_after": (_zero_or_more, False),
    "initial_backoff": (_zero_or_more, False),
    "parameters": (_parameters, False),
    "input_price_per_mtok": (_zero_or_more, True),
    "output_price_per_mtok": (_zero_or_more, True),
    "cached_price_per_mtok": (_zero_or_more, True),
    "free": (_boolean, True),
    "version": (_version, True),
}

_OFFLINE: dict[str, Callable[[Any], Any]] = {
    "latency": _zero_or_more,
    "chunk_delay": _zero_or_more,
    "path": _text,
}
#: The options each offline provider takes instead of settings.
_OFFLINE_OPTIONS = {
    "echo": ("latency", "chunk_delay"),
    "replay": ("latency", "chunk_delay", "path"),
}


def _shown(name: str, value: Any) -> str:
    # A key is never repeated, not even in an error about its type.
    return "<redacted>" if name == "api_key" else repr(value)


def _refuse(name: str, value: Any, where: str, wanted: str) -> ConfigurationError:
    return ConfigurationError(
        f"The setting {name}={_shown(name, value)} in {where} must be {wanted}; "
        "correct it there."
    )


def coerce_setting(name: str, value: Any, *, where: str) -> Any:
    """Return ``value`` as the type of setting ``name`` (a known field name).

    Raises:
        ConfigurationError: the value has the wrong type or is out of range.
    """
    coerce, nullable = _SETTINGS[name]
    if name == "parameters" and value is not None:
        return _checked_parameters(value, where)
    if value is None:
        if nullable:
            return None
        raise _refuse(name, value, where, "set (it has no 'none')")
    try:
        return coerce(value)
    except _Bad as exc:
        raise _refuse(name, value, where, str(exc)) from None


def checked_offline_options(
    provider: str, options: dict[str, Any], *, where: str
) -> dict[str, Any]:
    """Return an offline model's options (``latency``, ``chunk_delay``, ``path``).

    Raises:
        ConfigurationError: an unknown option (the close match named), or a
            value of the wrong type or out of range.
    """
    known = _OFFLINE_OPTIONS.get(provider, ())
    checked: dict[str, Any] = {}
    for name, value in options.items():
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigurationError(
                f"Unknown option {name!r} in {where}.{hint} The {provider} model "
                f"takes {', '.join(known)}."
            )
        try:
            checked[name] = _OFFLINE[name](value)
        except _Bad as exc:
            raise _refuse(name, value, where, str(exc)) from None
    return checked
