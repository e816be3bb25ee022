"""A loopback HTTP server that speaks the OpenAI and Anthropic wire formats.

:class:`FakeLLMServer` runs on 127.0.0.1 in its own thread and event loop, so the
real ``openai`` and ``anthropic`` SDKs can talk to it from tests and notebooks
without any network. Replies are scripted per request (see
:class:`~maquina_nb.testing.Reply`): latency, chunk timing, error statuses with
headers, errors inside a stream, malformed or truncated streams, chunk
boundaries inside multi-byte characters, missing usage, and so on. Every request
is logged for assertions.

Example::

    with FakeLLMServer() as fake:
        fake.enqueue(Reply.rate_limited(retry_after=2), Reply(text="hello"))
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test")
        ...
        assert len(fake.requests) == 2
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from maquina_nb._redact import get_logger
from maquina_nb.testing import _wire
from maquina_nb.testing._wire import Reply

__all__ = ["FakeLLMServer", "LoggedRequest"]

logger = get_logger(__name__)

_MAX_HEADER_BYTES = 64 * 1024
_WINDOW_S = 60.0


@dataclass
class LoggedRequest:
    """One request the fake server received."""

    method: str
    path: str
    api: str | None
    """``openai``, ``anthropic``, or ``None`` for other paths."""
    headers: dict[str, str] = field(repr=False)
    """Lower-case header names. Holds the API key; not shown in the repr."""
    body: Any = field(repr=False)
    """The decoded JSON body (``None`` for GET)."""
    time: float = 0.0
    """When it arrived, by the server's clock."""
    status: int | None = None
    """The status the server answered with."""

    @property
    def model(self) -> str | None:
        """The requested model, if any."""
        return self.body.get("model") if isinstance(self.body, dict) else None

    @property
    def stream(self) -> bool:
        """Whether the client asked for a stream."""
        return bool(isinstance(self.body, dict) and self.body.get("stream"))

    @property
    def api_key(self) -> str | None:
        """The key the client sent (``Authorization: Bearer`` or ``x-api-key``)."""
        if "x-api-key" in self.headers:
            return self.headers["x-api-key"]
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None

    @property
    def prompt(self) -> str:
        """The text of the last user message."""
        messages = self.body.get("messages", []) if isinstance(self.body, dict) else []
        for message in reversed(messages):
            if message.get("role") == "user":
                return _content_text(message.get("content"))
        return ""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") for part in content if isinstance(part, dict)
        )
    return ""


@dataclass
class _Scripted:
    reply: Reply
    model: str | None
    api: str | None


class FakeLLMServer:
    """A scripted OpenAI- and Anthropic-compatible server on 127.0.0.1.

    Args:
        port: Port to bind; 0 picks a free one.
        strict_stream_options: Answer 400 to any request carrying
            ``stream_options``, as some OpenAI-compatible servers do.
        accepted_keys: When given, any other key gets a 401.
        echo_key_on_401: Let 401 bodies repeat the submitted key.
        rpm_limit: Answer 429 when a model gets more requests than this in any
            60-second window (by ``clock``).
        clock: Time source for the request log and ``rpm_limit``.
        models: Model ids listed by ``GET /v1/models``.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        strict_stream_options: bool = False,
        accepted_keys: set[str] | None = None,
        echo_key_on_401: bool = False,
        rpm_limit: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        models: tuple[str, ...] = (
            "gpt-4o",
            "gpt-4o-mini",
            "claude-sonnet-4-5",
            "llama3.1",
        ),
    ) -> None:
        self.port = port
        self.strict_stream_options = strict_stream_options
        self.accepted_keys = accepted_keys
        self.echo_key_on_401 = echo_key_on_401
        self.rpm_limit = rpm_limit
        self.clock = clock
        self.models = models
        self.default_reply = Reply()
        """Sent when no scripted reply matches."""
        self.responder: Callable[[LoggedRequest], Reply | None] | None = None
        """Called for every request before the queue; a ``Reply`` wins."""

        self._lock = threading.Lock()
        self._queue: list[_Scripted] = []
        self._log: list[LoggedRequest] = []
        self._recent: dict[str | None, deque[float]] = {}
        self._serial = 0
        self._in_flight = 0
        self.peak_in_flight = 0
        """Most requests seen in flight at once."""

        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    # --- lifecycle ----------------------------------------------------------

    def start(self) -> FakeLLMServer:
        """Start serving in a daemon thread; return when the port is bound."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def _run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(
                        self._handle_connection, "127.0.0.1", self.port, backlog=4096
                    )
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(
            target=_run, name="maquina-fake-llm", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout=10) or failure:
            raise RuntimeError(f"FakeLLMServer could not start: {failure!r}")
        logger.debug("fake LLM server listening on 127.0.0.1:%d", self.port)
        return self

    def stop(self) -> None:
        """Close every connection and stop the server thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def _shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(_shutdown(), loop).result(timeout=5)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            self._thread = None
            self._loop = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> FakeLLMServer:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        return f"<FakeLLMServer 127.0.0.1:{self.port} requests={len(self._log)}>"

    # --- addresses ----------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """Base URL for the openai SDK (ends in ``/v1``)."""
        return f"{self.base_url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """Base URL for the anthropic SDK (which adds ``/v1`` itself)."""
        return self.base_url

    # --- scripting ----------------------------------------------------------

    def enqueue(
        self, *replies: Reply, model: str | None = None, api: str | None = None
    ) -> None:
        """Queue replies, used in order by the next matching requests.

        Args:
            *replies: The replies, first one for the next matching request.
            model: Only requests for this model take them.
            api: Only ``openai`` or ``anthropic`` requests take them.
        """
        with self._lock:
            self._queue.extend(_Scripted(reply, model, api) for reply in replies)

    def reset(self) -> None:
        """Forget queued replies, the request log and the rate-limit window."""
        with self._lock:
            self._queue.clear()
            self._log.clear()
            self._recent.clear()
            self.peak_in_flight = 0

    @property
    def open_connections(self) -> int:
        """Client connections open right now (0 once every client has hung up)."""
        return len(self._connections)

    @property
    def in_flight(self) -> int:
        """Requests being answered right now."""
        return self._in_flight

    @property
    def requests(self) -> list[LoggedRequest]:
        """A copy of the request log, oldest first."""
        with self._lock:
            return list(self._log)

    def requests_for(
        self, model: str | None = None, api: str | None = None
    ) -> list[LoggedRequest]:
        """Logged chat requests, filtered by model and API."""
        return [
            request
            for request in self.requests
            if request.api is not None
            and request.path.endswith(("/chat/completions", "/messages"))
            and (model is None or request.model == model)
            and (api is None or request.api == api)
        ]

    def _take_reply(self, request: LoggedRequest) -> Reply:
        if self.responder is not None:
            chosen = self.responder(request)
            if chosen is not None:
                return chosen
        with self._lock:
            for index, scripted in enumerate(self._queue):
                if scripted.model not in (None, request.model):
                    continue
                if scripted.api not in (None, request.api):
                    continue
                del self._queue[index]
                return scripted.reply
        return self.default_reply

    def _over_rpm(self, request: LoggedRequest) -> bool:
        if self.rpm_limit is None:
            return False
        with self._lock:
            window = self._recent.setdefault(request.model, deque())
            while window and window[0] <= request.time - _WINDOW_S:
                window.popleft()
            window.append(request.time)
            return len(window) > self.rpm_limit

    # --- HTTP ---------------------------------------------------------------

    async def _handle_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            keep_alive = True
            while keep_alive:
                request = await self._read_request(reader)
                if request is None:
                    break
                keep_alive = request.headers.get("connection", "").lower() != "close"
                self._in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
                try:
                    keep_alive = await self._respond(request, writer) and keep_alive
                finally:
                    self._in_flight -= 1
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        except Exception:
            # A request the fake cannot parse ends its connection, never the server.
            logger.debug("fake LLM server dropped a connection", exc_info=True)
        finally:
            self._connections.discard(task)
            writer.transport.abort()

    async def _read_request(self, reader: asyncio.StreamReader) -> LoggedRequest | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return None
        if len(head) > _MAX_HEADER_BYTES:
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()

        length = int(headers.get("content-length", "0") or 0)
        raw = await reader.readexactly(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")

        path = target.split("?", 1)[0]
        api = None
        if path.endswith("/chat/completions"):
            api = "openai"
        elif path.endswith("/messages") or "anthropic-version" in headers:
            api = "anthropic"
        elif path.endswith("/models"):
            api = "openai"
        request = LoggedRequest(method, path, api, headers, body, self.clock())
        with self._lock:
            self._log.append(request)
        return request

    async def _respond(
        self, request: LoggedRequest, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; return whether the connection may be reused."""
        # Server-wide checks first; they do not use the queue.
        key_rejected = (
            self.accepted_keys is not None and request.api_key not in self.accepted_keys
        )
        if key_rejected:
            reply = Reply(
                status=401,
                error_type="authentication_error",
                echo_key=self.echo_key_on_401,
            )
            return await self._send_error(request, writer, reply)
        if request.path.endswith("/models") and request.method == "GET":
            return await self._send_json(
                request, writer, 200, self._models_body(request)
            )
        if (
            request.api is None
            or request.method != "POST"
            or not isinstance(request.body, dict)
        ):
            body: dict[str, Any] = {
                "error": {"message": f"No route for {request.method} {request.path}."}
            }
            return await self._send_json(request, writer, 404, body)
        if self.strict_stream_options and "stream_options" in request.body:
            message = "Unrecognized request argument supplied: stream_options"
            body = {
                "error": {
                    "message": message,
                    "type": "invalid_request_error",
                    "param": "stream_options",
                    "code": None,
                }
            }
            return await self._send_json(request, writer, 400, body)
        if self._over_rpm(request):
            return await self._send_error(
                request, writer, Reply.rate_limited(retry_after=_WINDOW_S)
            )

        # The scripted reply.
        reply = self._take_reply(request)
        if reply.latency:
            await asyncio.sleep(reply.latency)
        if reply.status >= 400:
            return await self._send_error(request, writer, reply)

        self._serial += 1
        plan = _wire.plan_reply(reply, request.model or "fake-model", request.prompt)
        if not request.stream:
            body = (
                _wire.openai_completion(plan, self._serial)
                if request.api == "openai"
                else _wire.anthropic_message(plan, self._serial)
            )
            if reply.body is not None:
                body = reply.body
            return await self._send_json(
                request, writer, reply.status, body, reply.headers
            )
        return await self._send_stream(request, writer, plan)

    def _models_body(self, request: LoggedRequest) -> dict[str, Any]:
        if request.api == "anthropic":
            data: list[dict[str, Any]] = [
                {
                    "type": "model",
                    "id": m,
                    "display_name": m,
                    "created_at": "2025-01-01T00:00:00Z",
                }
                for m in self.models
            ]
            return {
                "data": data,
                "has_more": False,
                "first_id": self.models[0],
                "last_id": self.models[-1],
            }
        data = [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"}
            for m in self.models
        ]
        return {"object": "list", "data": data}

    async def _send_error(
        self, request: LoggedRequest, writer: asyncio.StreamWriter, reply: Reply
    ) -> bool:
        body = _wire.error_body(reply, request.api or "openai", request.api_key)
        return await self._send_json(request, writer, reply.status, body, reply.headers)

    async def _send_json(
        self,
        request: LoggedRequest,
        writer: asyncio.StreamWriter,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
    ) -> bool:
        payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        head = _wire.status_line(status) + "content-type: application/json\r\n"
        head += f"content-length: {len(payload)}\r\nx-request-id: req_fake\r\n"
        for name, value in (headers or {}).items():
            head += f"{name}: {value}\r\n"
        # Logged before sending: the client may read the log as soon as it has the answer.
        request.status = status
        writer.write(head.encode("latin-1") + b"\r\n" + payload)
        await writer.drain()
        return True

    async def _send_stream(
        self,
        request: LoggedRequest,
        writer: asyncio.StreamWriter,
        plan: _wire.ReplyPlan,
    ) -> bool:
        reply = plan.reply
        if reply.events is not None:
            events = _wire.scripted_events(request.api or "openai", reply.events)
        elif request.api == "openai":
            options = request.body.get("stream_options") or {}
            events = _wire.openai_events(
                plan, self._serial, bool(options.get("include_usage"))
            )
        else:
            events = _wire.anthropic_events(plan, self._serial)

        head = _wire.status_line(200) + "content-type: text/event-stream\r\n"
        head += "cache-control: no-cache\r\ntransfer-encoding: chunked\r\n"
        for name, value in reply.headers.items():
            head += f"{name}: {value}\r\n"
        request.status = 200
        writer.write(head.encode("latin-1") + b"\r\n")

        first = True
        for kind, payload in events:
            if not first and reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
            first = False
            if kind == "stall":
                await writer.drain()
                await asyncio.sleep(payload)
                continue
            if kind == "truncate":
                if payload:  # clean: end the chunked body without the final events
                    writer.write(b"0\r\n\r\n")
                    await writer.drain()
                    return True
                await writer.drain()
                writer.transport.abort()
                return False
            data = _wire.encode_event(request.api or "openai", kind, payload)
            await _wire.write_chunk(writer, data, reply.split_utf8)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True
