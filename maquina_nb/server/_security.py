"""Guards in front of every route: body size, Host header, bearer token.

The body limit and the Host check are plain ASGI middleware, so they run before
FastAPI reads a byte of the body. The token check is a dependency, so the
OpenAPI document shows the bearer scheme and Swagger UI offers "Authorize".
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from maquina_nb._redact import get_logger

__all__ = [
    "DEFAULT_MAX_ACTIVE_RUNS",
    "DEFAULT_MAX_BODY_BYTES",
    "LOOPBACK_HOSTS",
    "BodySizeLimitMiddleware",
    "HostCheckMiddleware",
    "SecurityHeadersMiddleware",
    "is_loopback_host",
    "token_matches",
]

logger = get_logger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Default request body limit. The largest legitimate body is a run started over
#: a few thousand DataFrame rows; a megabyte holds that with room to spare.
DEFAULT_MAX_BODY_BYTES = 1_048_576
#: Runs started over the API that may go on at once, by default.
DEFAULT_MAX_ACTIVE_RUNS = 4

#: Host header values accepted when the server listens on loopback. Checking the
#: Host header defeats DNS rebinding: a web page that resolves its own name to
#: 127.0.0.1 still sends its own name as Host.
LOOPBACK_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost", "::1", "testserver")


def is_loopback_host(host: str) -> bool:
    """Tell whether ``host`` (a bind address or name) stays on this machine."""
    host = host.strip().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_matches(expected: str, authorization: str | None) -> bool:
    """Compare an ``Authorization: Bearer …`` value with ``expected`` in constant time."""
    if not authorization:
        return False
    scheme, _, supplied = authorization.partition(" ")
    if scheme.lower() != "bearer" or not supplied:
        return False
    return hmac.compare_digest(supplied.strip().encode(), expected.encode())


async def _send_json(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-content-type-options", b"nosniff"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodySizeLimitMiddleware:
    """Answer 413 to any HTTP request whose body exceeds ``max_bytes``.

    A declared ``Content-Length`` over the limit is refused before reading; a
    chunked body is counted as it arrives and refused when it passes the limit.
    """

    def __init__(
        self, app: ASGIApp, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        # Step 1: a declared length over the limit is refused at once.
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_json(
                        send, 400, "The Content-Length header is not a number."
                    )
                    return
                if declared > self.max_bytes:
                    await self._refuse(scope, send, declared)
                    return

        # Step 2: count what really arrives (chunked bodies have no length). Past
        # the limit, answer 413 ourselves and tell the app the client has gone;
        # whatever the app then tries to send is dropped.
        received = 0
        state = {"started": False, "refused": False}

        async def counting_receive() -> Message:
            nonlocal received
            if state["refused"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes and not state["started"]:
                    state["refused"] = True
                    await self._refuse(scope, send, received)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if state["refused"]:
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        await self.app(scope, counting_receive, guarded_send)

    async def _refuse(self, scope: Scope, send: Send, size: int) -> None:
        logger.info(
            "refused a %d-byte body on %s (limit %d)",
            size,
            scope.get("path"),
            self.max_bytes,
        )
        await _send_json(
            send,
            413,
            f"The request body is larger than the server's limit of {self.max_bytes} "
            "bytes; send less data, or start the server with a larger --max-body-bytes.",
        )


def _host_of(header: str) -> str:
    host = header.lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


class HostCheckMiddleware:
    """Refuse requests whose ``Host`` header names none of ``allowed`` (400).

    WebSockets are not covered by the browser's same-origin rules, so a web page
    on any site could open one to 127.0.0.1; a WebSocket whose ``Origin`` names
    none of ``allowed`` is refused too (clients outside browsers send no Origin).

    ``"*"`` in ``allowed`` turns both checks off (a server behind a reverse
    proxy on a real network, where the token does the guarding).
    """

    def __init__(self, app: ASGIApp, *, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = {host.lower().strip("[]") for host in allowed}

    def _allowed(self, scope: Scope) -> bool:
        if "*" in self.allowed:
            return True
        headers = {
            name: value.decode("latin-1")
            for name, value in scope.get("headers", ())
            if name in (b"host", b"origin")
        }
        host = headers.get(b"host")
        if host is None or _host_of(host) not in self.allowed:
            return False
        origin = headers.get(b"origin")
        if scope["type"] == "websocket" and origin is not None:
            return (urlsplit(origin).hostname or "") in self.allowed
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self._allowed(scope):
            await self.app(scope, receive, send)
            return

        logger.info(
            "refused a request with an unexpected Host or Origin on %s",
            scope.get("path"),
        )
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "bad host"})
            return
        await _send_json(
            send,
            400,
            "The Host header names a host this server does not answer for; use the "
            "address the server was started on, or add it with --allowed-host.",
        )


_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    # JSON is never to be sniffed as HTML, and no page may frame the API.
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)

#: The docs page may load only from this server, so no future Swagger UI asset
#: can make a visitor's browser contact another host. Swagger UI's start-up
#: script and its style attributes are inline; its icons are data: URLs.
_DOCS_POLICY = (
    b"content-security-policy",
    b"default-src 'self'; script-src 'self' 'unsafe-inline'; "
    b"style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    b"form-action 'self'",
)


class SecurityHeadersMiddleware:
    """Add no-sniff, no-frame and no-referrer headers; ``no-store`` on the API.

    The docs page also gets a content security policy that allows this server
    alone.

    Plain ASGI rather than ``@app.middleware("http")``, whose per-request task
    and stream machinery costs more than most of these routes do.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = list(_HEADERS)
        path = str(scope.get("path", ""))
        if path.startswith("/api/"):
            extra.append((b"cache-control", b"no-store"))
        elif path.startswith("/docs"):
            extra.append(_DOCS_POLICY)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                message["headers"] = [
                    *message.get("headers", ()),
                    *(pair for pair in extra if pair[0] not in present),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)
