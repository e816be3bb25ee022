"""What every network-backed model shares: keys, clients, limits, retries, timeouts.

:class:`RemoteModel` implements :meth:`generate` and :meth:`stream` once, around
the provider hooks (:meth:`RemoteModel._make_client`,
:meth:`RemoteModel._generate_once`, :meth:`RemoteModel._open_stream`,
:meth:`RemoteModel._stream_reader`). Around each attempt it takes a slot from
the model's shared rate limiter, bounds the time, translates SDK errors, decides
on a retry, and prices the result. A stream is read by one loop here that hands
each SDK event to the provider's :class:`StreamReader`: no generator stands
between the SDK's stream and the caller but this one.

SDK clients are made lazily inside the running event loop and reused for every
later call on that loop (a client is bound to the loop that created it).

A base URL written in the spec string (``openai:gpt-4o?base_url=...``, passed
here as ``spec_base_url``) never receives the key from the provider's usual
environment variable unless it is the base URL the model would use anyway: the
key must then come from ``api_key`` or ``key_env`` in the settings.
"""

from __future__ import annotations

import abc
import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from maquina_nb._redact import get_logger
from maquina_nb.errors import (
    MissingKeyError,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimitError,
    ProviderTimeoutError,
)
from maquina_nb.providers._errors import is_retryable
from maquina_nb.providers._streaming import StreamReader, _skipped_chunks
from maquina_nb.providers.base import BaseAIModel, Completion, ModelRequest, TextDelta
from maquina_nb.providers.credentials import KeyInfo, clean_key, find_key
from maquina_nb.providers.pricing import estimate_tokens, price_usage
from maquina_nb.providers.ratelimit import RateLimiter, limiter_for
from maquina_nb.providers.retry import SYSTEM_CLOCK, Clock, RetryPolicy
from maquina_nb.providers.settings import ModelSettings

__all__ = ["RemoteModel"]

logger = get_logger(__name__)

_ORPHANED_CLIENTS: list[Any] = []
T = TypeVar("T")


class RemoteModel(BaseAIModel):
    """A model behind an SDK: subclasses fill in the three provider hooks."""

    supports_streaming = True
    needs_key = True
    #: Environment variable the SDK reads the key from.
    key_env: str | None = None
    #: Environment variable the SDK reads the base URL from.
    base_url_env: str | None = None
    default_base_url: str | None = None
    #: Local servers cost nothing unless a price is configured.
    free_by_default = False

    def __init__(
        self,
        model: str,
        *,
        spec: str | None = None,
        settings: ModelSettings | None = None,
        clock: Clock | None = None,
        spec_base_url: str | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(model, spec=spec)
        settings = settings or ModelSettings()
        self.settings = settings.merged(**overrides) if overrides else settings
        #: The base URL from configuration and code, before the spec's own.
        self._configured_base_url = self.settings.base_url
        self._spec_base_url = spec_base_url
        if spec_base_url:
            self.settings = self.settings.merged(base_url=spec_base_url)
        self.clock = clock or SYSTEM_CLOCK
        self.policy = RetryPolicy(
            max_attempts=max(1, self.settings.max_attempts),
            initial_backoff=self.settings.initial_backoff,
            max_retry_after=self.settings.max_retry_after,
        )
        self._clients: dict[asyncio.AbstractEventLoop, Any] = {}
        self._client_for: dict[
            asyncio.AbstractEventLoop, tuple[str | None, str | None]
        ] = {}
        self._limiter: RateLimiter | None = None
        self._key_memo: tuple[str | None, str | None] | None = None
        self._limiter_base_url: str | None = None
        if self.settings.api_key:
            from maquina_nb._redact import register_secret

            register_secret(self.settings.api_key)

    # --- where and who ------------------------------------------------------

    @property
    def base_url(self) -> str | None:
        """The server address requests go to."""
        if self.settings.base_url:
            return self.settings.base_url.rstrip("/")
        if self.base_url_env and os.environ.get(self.base_url_env, "").strip():
            return os.environ[self.base_url_env].strip().rstrip("/")
        return self.default_base_url

    def _env_key_allowed(self) -> bool:
        """Tell whether the provider's usual key variable may be sent.

        Not when the spec string itself moved the model to another server: a
        spec is data (a shared notebook, a stored run, a request body), and
        must not be able to carry the environment's key to a host of its choosing.
        """
        if not self._spec_base_url:
            return True
        if self._configured_base_url:
            trusted: str | None = self._configured_base_url
        elif self.base_url_env and os.environ.get(self.base_url_env, "").strip():
            trusted = os.environ[self.base_url_env].strip()
        else:
            trusted = self.default_base_url
        return (trusted or "").rstrip("/") == self._spec_base_url.strip().rstrip("/")

    def _env_identity_allowed(self) -> bool:
        """Tell whether the SDK may send what it reads from the environment.

        Besides the key, the SDKs read organization and project ids and extra
        headers from the environment; they go only where the environment's
        key would go.
        """
        return self.key_env is not None and self._env_key_allowed()

    def _find_key(self) -> tuple[str | None, str | None]:
        return find_key(
            api_key=self.settings.api_key,
            key_env=self.settings.key_env,
            default_env=self.key_env if self._env_key_allowed() else None,
        )

    def missing_key_error(self, label: str | None = None) -> MissingKeyError:
        """Return the error for a model with no key, saying where to put one.

        Args:
            label: The name to show for the model (default: its spec).
        """
        _, source = self._find_key()
        if source is None and self.key_env and not self._env_key_allowed():
            error = MissingKeyError(label or self.spec, "key_env")
            error.args = (self._withheld_key_message(label),)
            return error
        return MissingKeyError(label or self.spec, source or "api_key")

    def _withheld_key_message(self, label: str | None = None) -> str:
        return (
            f"The model {label or self.spec!r} names its own base_url in the spec, so it does "
            f"not get the key in {self.key_env}; set key_env (or api_key) for it in "
            "maquina.toml or configure_model, or put base_url there instead."
        )

    @property
    def identity(self) -> dict[str, Any]:
        """Provider, model and base URL (two servers answer differently, C35)."""
        identity = {
            "provider": self.provider,
            "model": self.model,
            "base_url": self.base_url,
        }
        if self.settings.version:
            identity["version"] = self.settings.version
        return identity

    @property
    def limiter(self) -> RateLimiter:
        """The process-wide limiter this model shares with same-identity models."""
        # Looked up once per base URL: the registry lookup costs a JSON dump.
        base_url = self.base_url
        if self._limiter is None or self._limiter_base_url != base_url:
            self._limiter = limiter_for(
                json.dumps(self.identity, sort_keys=True),
                requests_per_minute=self.settings.requests_per_minute,
                tokens_per_minute=self.settings.tokens_per_minute,
                max_in_flight=self.settings.max_in_flight,
                clock=self.clock,
            )
            self._limiter_base_url = base_url
        return self._limiter

    def key_info(self) -> KeyInfo:
        """Report where the key comes from and whether it is usable (no network)."""
        raw, source = self._find_key()
        if raw is None or not raw.strip():
            if not self.needs_key:
                return KeyInfo(
                    source, "ok", "no key needed; --live (live=True) checks the server"
                )
            if source is None and self.key_env and not self._env_key_allowed():
                return KeyInfo(source, "missing", self._withheld_key_message())
            return KeyInfo(source, "missing", f"set {source or 'api_key'}")
        try:
            key = clean_key(
                raw,
                source=source or "settings",
                provider=self.provider,
                model=self.model,
            )
        except ProviderError as exc:
            return KeyInfo(source, "malformed", str(exc))
        problem = self._key_shape_problem(key or "", source or "api_key")
        if problem is not None:
            return KeyInfo(source, "malformed", problem)
        return KeyInfo(source, "ok")

    def _key_shape_problem(self, key: str, source: str) -> str | None:
        """Say why ``key`` cannot be this provider's, or ``None`` if it may be.

        Only the provider's own service is held to its key format: a proxy or a
        gateway at another base URL may use keys of any shape.
        """
        return None

    def _api_key(self) -> str | None:
        raw, source = self._find_key()
        memo = self._key_memo
        if memo is not None and memo[0] == raw:
            return memo[1]
        key = clean_key(
            raw, source=source or "settings", provider=self.provider, model=self.model
        )
        if key is None and self.needs_key:
            raise self.missing_key_error()
        self._key_memo = (raw, key)
        return key

    def _client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        # A client is made for one base URL and key; when the environment names
        # another (a new fake server, a rotated key) the next call gets a new one.
        wanted = (self.base_url, self._api_key())
        if client is not None and self._client_for.get(loop) != wanted:
            _ORPHANED_CLIENTS.append(client)
            client = None
        if client is None:
            client = self._make_client(wanted[1])
            self._clients[loop] = client
            self._client_for[loop] = wanted
            # A client whose loop has closed cannot be closed any more; if it were
            # collected now, the SDK would try to close it on *this* loop and fail
            # noisily. Keep it until the process ends (only tests use many loops).
            for old_loop in [old for old in self._clients if old.is_closed()]:
                _ORPHANED_CLIENTS.append(self._clients.pop(old_loop))
                self._client_for.pop(old_loop, None)
        return client

    def _timeout(self) -> Any:
        import httpx2

        settings = self.settings
        return httpx2.Timeout(
            settings.timeout,
            connect=settings.connect_timeout,
            read=settings.read_timeout,
            write=settings.read_timeout,
            pool=settings.timeout,
        )

    def price(
        self,
        input_tokens: int | None,
        output_tokens: int | None,
        cached_tokens: int | None,
        model_id: str | None = None,
        cache_write_tokens: int | None = None,
    ) -> float | None:
        """Return the cost of a call with this usage, ``None`` when unknown."""
        return price_usage(
            self.provider,
            model_id or self.model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_tokens=cached_tokens,
            settings=self.settings,
            free=self.free_by_default,
            cache_write_tokens=cache_write_tokens,
        )

    def _cache_write_tokens(self, completion: Completion) -> int | None:
        """Prompt tokens the call wrote to the provider cache (priced apart)."""
        return None

    # --- provider hooks -----------------------------------------------------

    @abc.abstractmethod
    def _make_client(self, api_key: str | None) -> Any:
        """Build the SDK client (called inside the running loop)."""

    @abc.abstractmethod
    async def _generate_once(self, client: Any, request: ModelRequest) -> Completion:
        """Make one plain call and return its completion (no cost, no latency)."""

    @abc.abstractmethod
    async def _open_stream(self, client: Any, request: ModelRequest) -> Any:
        """Start one streamed call; return the SDK's stream (async-iterable, closable)."""

    @abc.abstractmethod
    def _stream_reader(self) -> StreamReader:
        """Return a fresh reader for one streamed call's events."""

    @abc.abstractmethod
    def _map_errors(self) -> Any:
        """Return the context manager translating this SDK's exceptions."""

    async def check_live(self) -> None:
        """Make one cheap authenticated call; raise a ProviderError on failure."""

    async def aclose(self) -> None:
        """Close the SDK client of the running loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        client = self._clients.pop(loop, None)
        if client is not None:
            await client.close()

    # --- the call -----------------------------------------------------------

    def _with_defaults(self, request: ModelRequest) -> ModelRequest:
        defaults = self.settings.parameters
        if not defaults:
            return request
        import dataclasses

        changes: dict[str, Any] = {}
        for name in ("temperature", "max_tokens", "top_p", "seed"):
            if getattr(request, name) is None and defaults.get(name) is not None:
                changes[name] = defaults[name]
        if request.stop is None and defaults.get("stop") is not None:
            changes["stop"] = tuple(defaults["stop"])
        known = {"temperature", "max_tokens", "top_p", "seed", "stop"}
        extra = {k: v for k, v in defaults.items() if k not in known}
        if extra:
            changes["extra"] = {**extra, **request.extra}
        return dataclasses.replace(request, **changes)

    def _estimated_tokens(self, request: ModelRequest) -> int:
        prompt = estimate_tokens("".join(m.content for m in request.messages))
        return prompt + (request.max_tokens or 256)

    def _after_failure(self, exc: ProviderError, attempt: int) -> float:
        """Return how long to wait before the next attempt, or raise."""
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(exc, ProviderRateLimitError):
            self.limiter.record_rate_limited(retry_after)
        if not is_retryable(exc):
            logger.debug(
                "%s: attempt %d failed (%s), not retried", self.spec, attempt, exc.kind
            )
            raise exc

        if retry_after is not None and retry_after > self.policy.max_retry_after:
            raise ProviderRateLimitError(
                f"The {self.provider} model {self.model!r} asked to wait {retry_after:.0f}s "
                f"before retrying, more than max_retry_after={self.policy.max_retry_after:g}s; "
                "try again later or raise max_retry_after in its settings.",
                provider=self.provider,
                model=self.model,
                retry_after=retry_after,
            ) from exc
        delay = self.policy.delay(attempt, retry_after)
        if delay is None:
            logger.debug(
                "%s: attempt %d failed (%s), giving up", self.spec, attempt, exc.kind
            )
            if isinstance(exc, ProviderRateLimitError):
                raise ProviderRateLimitError(
                    f"The {self.provider} model {self.model!r} was still rate limited after "
                    f"{attempt} attempts; lower requests_per_minute in its settings or try again later.",
                    provider=self.provider,
                    model=self.model,
                    retry_after=retry_after,
                ) from exc
            if attempt > 1:
                # Say that the error held through every retry, not only once.
                exc.args = (f"{str(exc).rstrip('.')} (failed {attempt} times).",)
            raise exc
        logger.debug(
            "%s: attempt %d failed (%s), retrying in %.2fs",
            self.spec,
            attempt,
            exc.kind,
            delay,
        )
        return delay

    def _after_success(
        self, grant: Any, completion: Completion, prompt_tokens: int
    ) -> None:
        self.limiter.settle(grant, _total(completion))
        self.limiter.record_success()
        self._fill_cost(completion, prompt_tokens)
        logger.debug(
            "%s: answered in %.3fs, finish %s, tokens %s/%s",
            self.spec,
            completion.latency_s or 0.0,
            completion.finish_reason,
            completion.input_tokens,
            completion.output_tokens,
        )

    def _fill_cost(self, completion: Completion, prompt_tokens: int) -> None:
        if completion.input_tokens is None and completion.output_tokens is None:
            # No usage reported (C10): price a local estimate and say so.
            completion.cost_usd = self.price(
                prompt_tokens,
                estimate_tokens(completion.text),
                None,
                completion.model_id,
            )
            completion.cost_is_estimate = completion.cost_usd is not None
            return
        completion.cost_usd = self.price(
            completion.input_tokens,
            completion.output_tokens,
            completion.cached_tokens,
            completion.model_id,
            self._cache_write_tokens(completion),
        )

    async def generate(self, request: ModelRequest) -> Completion:
        """Answer ``request`` in one call, with limits, retries and cost."""
        request = self._with_defaults(request)
        self._api_key()  # a missing or malformed key fails here, before any request
        prompt_tokens = estimate_tokens("".join(m.content for m in request.messages))
        attempt = 0
        while True:
            attempt += 1
            self._refuse_long_pause()
            client = self._client()
            async with self.limiter.slot(self._estimated_tokens(request)) as grant:
                started = time.perf_counter()
                try:
                    with self._map_errors():
                        completion = await _within(
                            self._generate_once(client, request), self.settings.timeout
                        )
                except (asyncio.TimeoutError, TimeoutError) as exc:
                    raise self._timeout_error(
                        "the whole call", self.settings.timeout
                    ) from exc
                except ProviderError as exc:
                    delay = self._after_failure(exc, attempt)
                else:
                    completion.latency_s = time.perf_counter() - started
                    self._after_success(grant, completion, prompt_tokens)
                    return completion
            await self.clock.sleep(delay)

    def _refuse_long_pause(self) -> None:
        """Fail at once while the server's last Retry-After outlasts max_retry_after.

        Waiting would hold the call (and every later one) silently for as long
        as the server asked, an hour or a year; the first call already said so.
        """
        paused = self.limiter.paused_for()
        if paused <= self.policy.max_retry_after:
            return
        raise ProviderRateLimitError(
            f"The {self.provider} model {self.model!r} asked to be left alone for "
            f"{paused:.0f}s more, longer than max_retry_after="
            f"{self.policy.max_retry_after:g}s; try again later or raise "
            "max_retry_after in its settings.",
            provider=self.provider,
            model=self.model,
            retry_after=paused,
        )

    def _timeout_error(self, what: str, limit: float | None) -> ProviderTimeoutError:
        error = ProviderTimeoutError(
            f"The {self.provider} model {self.model!r} took longer than {limit}s for {what}; "
            "raise the timeout in its settings if the model is slow.",
            provider=self.provider,
            model=self.model,
        )
        error.retryable = False  # type: ignore[attr-defined]
        return error

    async def stream(
        self, request: ModelRequest
    ) -> AsyncIterator[TextDelta | Completion]:
        """Yield text deltas, then the completion; retried streams send a reset."""
        request = self._with_defaults(request)
        self._api_key()
        prompt_tokens = estimate_tokens("".join(m.content for m in request.messages))
        attempt = 0
        streamed = False
        while True:
            # Set here, before any task copies the context, so the decoder's
            # appends land in the list the reader reads (C09).
            _skipped_chunks.set([])
            attempt += 1
            if streamed:
                # The last attempt streamed text before failing; consumers drop it.
                yield TextDelta("", reset=True)
                streamed = False
            delay = 0.0
            self._refuse_long_pause()
            client = self._client()
            async with self.limiter.slot(self._estimated_tokens(request)) as grant:
                started = time.perf_counter()
                timeout = self.settings.timeout
                deadline = started + timeout if timeout is not None else None
                reader = self._stream_reader()
                opened: tuple[Any, Any] | None = None
                completion: Completion | None = None
                try:
                    with self._map_errors():
                        # Up to the first text gets its own bound: a server that
                        # accepts the request and then says nothing is caught here.
                        opened, text = await self._first_text(
                            client, request, reader, deadline
                        )
                        first_token = time.perf_counter() - started
                        if text is not None:
                            streamed = True
                            yield TextDelta(text)
                            next_event = opened[1].__anext__
                            # Until the deadline is within one read timeout, the
                            # SDK's read timeout ends any silence first: no timer.
                            unbounded_until = _unbounded_until(
                                deadline, self.settings.read_timeout
                            )
                            while True:
                                try:
                                    if time.perf_counter() < unbounded_until:
                                        event = await next_event()
                                    else:
                                        event = await self._next_event(
                                            next_event, deadline
                                        )
                                except StopAsyncIteration:
                                    break
                                text = reader.feed(event)
                                if text:
                                    yield TextDelta(text)
                        completion = reader.completion()
                except ProviderError as exc:
                    completion = None
                    if reader.received and isinstance(exc, ProviderConnectionError):
                        # The server was reached: the stream was cut, not refused.
                        cut = reader.incomplete()
                        cut.__cause__ = exc
                        exc = cut
                    delay = self._after_failure(exc, attempt)
                finally:
                    # Close the HTTP response now, also on cancel or early exit.
                    if opened is not None:
                        await _close(*opened)
                if completion is not None:
                    completion.latency_s = time.perf_counter() - started
                    completion.ttft_s = (
                        first_token if completion.text else completion.latency_s
                    )
                    self._after_success(grant, completion, prompt_tokens)
                    yield completion
                    return
            await self.clock.sleep(delay)

    async def _first_text(
        self,
        client: Any,
        request: ModelRequest,
        reader: StreamReader,
        deadline: float | None,
    ) -> tuple[tuple[Any, Any], str | None]:
        """Open the stream and read up to its first text, time-bounded.

        Returns the SDK stream with its event iterator, and the first text
        (``None`` when the stream ended without any).
        """
        first = self.settings.first_token_timeout
        remaining = _remaining(deadline)
        limit: float | None = remaining
        what, shown = "the whole call", self.settings.timeout
        if first is not None and (remaining is None or first <= remaining):
            limit, what, shown = first, "the first token", first
        try:
            return await _within(
                self._open_and_read_first(client, request, reader), limit
            )
        except (asyncio.TimeoutError, TimeoutError) as exc:
            raise self._timeout_error(what, shown) from exc

    async def _next_event(
        self, next_event: Callable[[], Awaitable[Any]], deadline: float | None
    ) -> Any:
        """Await the stream's next event, bounded by what is left of the deadline.

        Used once the deadline is within one read timeout (before that, the
        SDK's read timeout ends any silence first).
        """
        if deadline is None:
            return await next_event()
        remaining = deadline - time.perf_counter()
        try:
            if remaining <= 0:
                raise TimeoutError
            return await _within(next_event(), remaining)
        except (asyncio.TimeoutError, TimeoutError) as exc:
            raise self._timeout_error("the whole call", self.settings.timeout) from exc

    async def _open_and_read_first(
        self, client: Any, request: ModelRequest, reader: StreamReader
    ) -> tuple[tuple[Any, Any], str | None]:
        stream = await self._open_stream(client, request)
        events = stream.__aiter__()
        try:
            async for event in events:
                text = reader.feed(event)
                if text:
                    return (stream, events), text
        except BaseException:
            await _close(stream, events)
            raise
        return (stream, events), None


async def _close(stream: Any, events: Any) -> None:
    """Close a stream's event iterator and its HTTP response."""
    try:
        await events.aclose()
    finally:
        await stream.close()


async def _within(call: Awaitable[T], timeout: float | None) -> T:
    """Await ``call`` within ``timeout`` seconds (no extra task on Python 3.11+)."""
    if timeout is None:
        return await call
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(timeout):
            return await call
    return await asyncio.wait_for(call, timeout)  # pragma: no cover - Python 3.10


def _unbounded_until(deadline: float | None, read_limit: float | None) -> float:
    """Return the time before which a read needs no bound but the SDK's own."""
    if deadline is None:
        return float("inf")
    if read_limit is None:
        return float("-inf")
    return deadline - read_limit


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.001, deadline - time.perf_counter())


def _total(completion: Completion) -> int | None:
    if completion.input_tokens is None and completion.output_tokens is None:
        return None
    return (completion.input_tokens or 0) + (completion.output_tokens or 0)
