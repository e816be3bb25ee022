"""The exception tree of maquina_nb.

Every error the package raises on purpose derives from :class:`MaquinaError`::

    MaquinaError
    ├── ConfigurationError          bad or missing settings
    │   ├── MissingKeyError         names the env var and the argument to set
    │   └── TemplateError           a prompt template that cannot be rendered
    ├── UnknownModelError           also a LookupError; names close matches
    ├── ProviderError               .provider, .model
    │   ├── ProviderAuthError       401/403, or a malformed key
    │   ├── ProviderRateLimitError  .retry_after
    │   ├── ProviderTimeoutError
    │   ├── ProviderConnectionError local server not running
    │   └── ProviderResponseError   .status_code, .body
    ├── ReplayMissError             replay-only run or replay model without an answer
    ├── BudgetExceededError         .estimate, .limit
    ├── RunCancelledError           the run was interrupted; .run_id
    └── StoreError
        ├── InvalidFieldError       also a ValueError; .model, .field, .value
        ├── DowngradeRefusedError   a downgrade would delete rows; .losses
        ├── SchemaOutOfDateError    says to run "maquina-nb db upgrade"
        └── SchemaTooNewError       database newer than the installed package

Messages are one or two plain sentences: what failed, the offending value with
``!r``, and what to do next. No message ever contains an API key; every message
passes through :func:`maquina_nb._redact.redact` when built.
"""

from __future__ import annotations

from maquina_nb._redact import redact

__all__ = [
    "BudgetExceededError",
    "ConfigurationError",
    "DowngradeRefusedError",
    "InvalidFieldError",
    "MaquinaError",
    "MissingKeyError",
    "ProviderAuthError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderRateLimitError",
    "ProviderResponseError",
    "ProviderTimeoutError",
    "ReplayMissError",
    "RunCancelledError",
    "SchemaOutOfDateError",
    "SchemaTooNewError",
    "StoreError",
    "TemplateError",
    "UnknownModelError",
]


class MaquinaError(Exception):
    """Root of every error maquina_nb raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class ConfigurationError(MaquinaError):
    """Settings are wrong or missing."""


class MissingKeyError(ConfigurationError):
    """A model needs an API key that is not set."""

    def __init__(self, model: str, env_var: str) -> None:
        self.model = model
        self.env_var = env_var
        super().__init__(
            f"The {model!r} model needs {env_var}; set it in the environment, "
            "or pass api_key= (or key_env=) in the model settings."
        )


class TemplateError(ConfigurationError):
    """A prompt template cannot be rendered (syntax error or undefined variable)."""

    def __init__(self, message: str, *, variable: str | None = None) -> None:
        self.variable = variable
        super().__init__(message)


class UnknownModelError(MaquinaError, LookupError):
    """A model spec names no known provider, alias or registered model."""

    def __init__(
        self,
        spec: str,
        suggestions: list[str] | tuple[str, ...] = (),
        *,
        listing: str = "run %maquina models to list the configured ones",
    ) -> None:
        self.spec = spec
        self.suggestions = list(suggestions)
        hint = (
            f" Did you mean {', '.join(repr(s) for s in self.suggestions)}?"
            if self.suggestions
            else ""
        )
        super().__init__(
            f"Unknown model {spec!r}.{hint} Use a 'provider:model' spec such as "
            f"'openai:gpt-4o', or {listing}."
        )


class ProviderError(MaquinaError):
    """A provider call failed; carries which provider and model."""

    #: Short machine-readable kind stored in ``model_responses.error_kind``.
    kind = "provider_error"

    def __init__(self, message: str, *, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        super().__init__(message)


class ProviderAuthError(ProviderError):
    """The provider rejected the credentials (401/403) or the key is malformed."""

    kind = "auth"


class ProviderRateLimitError(ProviderError):
    """The provider kept answering 429 (or overloaded) after the allowed retries."""

    kind = "rate_limit"

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model: str,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, provider=provider, model=model)


class ProviderTimeoutError(ProviderError):
    """A call took longer than its timeout."""

    kind = "timeout"


class ProviderConnectionError(ProviderError):
    """The provider could not be reached (a local server not running, say)."""

    kind = "connection"


class ProviderResponseError(ProviderError):
    """The provider answered with an error status or a malformed body."""

    kind = "response"

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model: str,
        status_code: int | None = None,
        body: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.body = redact(body) if body is not None else None
        super().__init__(message, provider=provider, model=model)


class ReplayMissError(MaquinaError, LookupError):
    """A replay-only run, or a replay model, has no recorded answer for a request."""


class BudgetExceededError(MaquinaError):
    """A run's estimated or actual cost is above its ``max_cost``."""

    def __init__(self, message: str, *, estimate: float, limit: float) -> None:
        self.estimate = estimate
        self.limit = limit
        super().__init__(message)


class RunCancelledError(MaquinaError):
    """A run was interrupted; what finished before the interrupt is stored."""

    def __init__(self, run_id: str, finished: int, total: int) -> None:
        self.run_id = run_id
        self.finished = finished
        self.total = total
        super().__init__(
            f"Run {run_id!r} was cancelled after {finished} of {total} responses; "
            "the finished ones are stored. Rerun the cell to fill in the rest from cache."
        )


class StoreError(MaquinaError):
    """The database could not be read or written."""


class InvalidFieldError(StoreError, ValueError):
    """A value given for a stored field is out of range or of the wrong kind."""

    def __init__(
        self,
        model: str,
        field: str,
        value: object,
        expected: str,
        *,
        advice: str = "fix the value before storing it",
    ) -> None:
        self.model = model
        self.field = field
        self.value = value
        super().__init__(
            f"{model}.{field} must be {expected}, got {value!r}; {advice}."
        )


class SchemaOutOfDateError(StoreError):
    """The database schema is older than the package expects."""

    def __init__(self, current: str | None, head: str) -> None:
        self.current = current
        self.head = head
        super().__init__(
            f"The database schema is at revision {current!r} but this version of "
            f"maquina_nb needs {head!r}; run 'maquina-nb db upgrade' (or "
            "'alembic upgrade head')."
        )


class SchemaTooNewError(StoreError):
    """The database was migrated by a newer maquina_nb than the one installed."""

    def __init__(self, current: str, head: str) -> None:
        self.current = current
        self.head = head
        super().__init__(
            f"The database is at revision {current!r}, newer than this maquina_nb's "
            f"latest revision {head!r}; upgrade the package (pip install -U maquina-nb) "
            "or point MAQUINA_DB_URL at another database."
        )


class DowngradeRefusedError(StoreError):
    """A downgrade would drop tables or columns that hold data; nothing was changed.

    Attributes:
        losses: What would be deleted, oldest table first: ``"table"`` maps to
            its row count, ``"table.column"`` to its count of non-null values.
        before: The database's revision.
        target: The revision the downgrade would end at (``None`` for base).
    """

    def __init__(
        self,
        database: str,
        before: str,
        target: str | None,
        losses: dict[str, int],
        *,
        sqlite_file: str | None = None,
    ) -> None:
        self.losses = dict(losses)
        self.before = before
        self.target = target
        parts = []
        for name, count in losses.items():
            if "." in name:
                parts.append(f"{count} value{'s' * (count != 1)} in {name}")
            else:
                parts.append(f"{count} row{'s' * (count != 1)} of {name}")
        lost = (
            parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        )
        if sqlite_file is not None:
            advice = (
                "rerun with --force (force=True), which first copies the file to "
                f"{sqlite_file + '.backup-' + before + '-<UTC time>'!r}"
            )
        else:
            advice = "back it up first (pg_dump), then rerun with --force (force=True)"
        super().__init__(
            f"Downgrading {database} from {before} to {target or 'base'} would delete "
            f"{lost}; nothing was changed; {advice}."
        )
