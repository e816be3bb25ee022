"""Which model specs a REST client may name when it starts a run.

A spec in a request body is data from the network, not configuration: its
``?options`` could point the server's provider keys at another host
(``?base_url=``), make the server open a file (``?path=``, ``replay:/a/file``)
or stall a run (``?latency=``). Over the API a client may therefore name only a
plain spec or an alias; anything more is configured in ``maquina.toml`` on the
server, whose aliases may carry options.
"""

from __future__ import annotations

__all__ = ["api_spec_problem"]

OPTIONS_REFUSED = (
    "model options are not accepted over the API; configure the model in "
    "maquina.toml on the server"
)


def api_spec_problem(spec: str) -> str | None:
    """Return why ``spec`` may not be named over the API, or ``None`` if it may.

    Refused: any ``?options``, and ``replay:`` specs that name a file rather
    than a bundled recording or a name the server knows. The message never
    depends on whether a file exists.
    """
    from maquina_nb.providers.offline import BUNDLED_REPLAYS
    from maquina_nb.providers.registry import available_models

    spec = spec.strip()
    if "?" in spec:
        # The options themselves are not repeated: they may hold a key.
        shown = spec.partition("?")[0] + "?..."
        return (
            f"The spec {shown!r} was refused: {OPTIONS_REFUSED} and name it by "
            "an alias defined there."
        )

    provider, _, name = spec.partition(":")
    if provider == "replay" and name not in BUNDLED_REPLAYS:
        if spec in available_models():
            return None
        return (
            f"The replay model {spec!r} names a file, and replay files are not read "
            "over the API; use one of "
            f"{', '.join(repr(f'replay:{n}') for n in BUNDLED_REPLAYS)}, or define "
            "an alias for the file in maquina.toml on the server."
        )
    return None
