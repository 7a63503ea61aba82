"""All configuration in one place: environment (prefix ``ECOSIGN_ORCH_``) and an optional TOML file.

Precedence: explicit arguments > environment > TOML file (``ECOSIGN_ORCH_CONFIG``) > defaults.
"""

from __future__ import annotations

import os
import tomllib
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, quote

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.retention import RetentionPolicy, parse_keep
from ecosign_orchestrator.core.schedules import Schedule
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.core.worker_settings import MAX_LEASE_SECONDS
from ecosign_orchestrator.service.http_limits import HttpLimits
from ecosign_orchestrator.service.tokens import ApiToken, parse_tokens

DEFAULT_DATABASE_URL = "sqlite:///./.ecosign-orchestrator/jobs.db"
#: The largest time scale (scales exist to run delays small; 1000x is already absurd).
MAX_SCALE = 1000.0


class Settings(BaseSettings):
    """The orchestrator's effective configuration."""

    # Every number is finite: ``inf`` and ``nan`` pass ``gt=0`` and then break a worker at its
    # first claim.
    model_config = SettingsConfigDict(
        env_prefix="ECOSIGN_ORCH_", extra="forbid", validate_default=True, allow_inf_nan=False
    )

    # -- storage -------------------------------------------------------------------------------
    database_url: SecretStr = Field(
        default=SecretStr(DEFAULT_DATABASE_URL),
        description="sqlite:///path/jobs.db or postgresql://user:pass@host:5432/db",
    )
    database_schema: str = Field(
        default="orchestrator", description="PostgreSQL schema holding the orchestrator's tables"
    )
    database_pool_size: int = Field(default=10, ge=1, le=200)
    auto_migrate: bool = Field(
        default=True,
        description="apply migrations on start-up (SQLite only; run `db migrate` on PG)",
    )

    # -- worker --------------------------------------------------------------------------------
    worker_concurrency: int = Field(default=10, ge=1, le=1000)
    lease_seconds: float = Field(
        default=30.0,
        ge=0.5,
        le=MAX_LEASE_SECONDS,
        description="how long a claimed job is this worker's without a renewal; a dead worker's "
        "jobs return after it (at most a day)",
    )
    heartbeat_seconds: float | None = Field(
        default=None,
        gt=0,
        description="how often leases are renewed (default: a third of the lease; at most half)",
    )
    lease_margin_seconds: float | None = Field(
        default=None,
        gt=0,
        description="a job whose lease could not be renewed is stopped this long before it "
        "expires (default: a quarter of the lease, at most 10 s)",
    )
    worker_queues: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="workers take jobs of these queues only (comma-separated; empty: every queue)",
    )
    kind_concurrency: dict[str, int] = Field(
        default_factory=dict,
        description="at most this many jobs of a kind at once per worker, e.g. "
        '{"ffmpeg.transcode": 2}',
    )
    demo_kinds: bool | None = Field(
        default=None,
        description="register the demo.* job kinds (default: on SQLite only, so production "
        "workers on PostgreSQL never run them)",
    )
    schedules: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="jobs enqueued on a schedule, by name: "
        '{"nightly": {"kind": "demo.noop", "cron": "0 3 * * *", "payload": {}}} or '
        '{"every_minute": {"kind": "...", "every_seconds": 60}} (UTC; one job per tick '
        "fleet-wide; after downtime only the latest missed tick runs)",
    )
    poll_seconds: float = Field(default=0.5, gt=0)
    max_poll_seconds: float = Field(default=5.0, gt=0)
    recovery_seconds: float = Field(default=5.0, gt=0)
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)

    # -- EcoSign -------------------------------------------------------------------------------
    edge_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "ECOSIGN_ORCH_EDGE_BASE_URL", "EDGE_BASE_URL", "edge_base_url"
        ),
        description="Base URL of the Edge Functions (POST {edge_base_url}/functions/v1/{name})",
    )
    supabase_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("ECOSIGN_ORCH_SUPABASE_URL", "SUPABASE_URL", "supabase_url"),
        description="Base URL of the REST API (GET {supabase_url}/rest/v1/document_entities)",
    )
    service_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "ECOSIGN_ORCH_SERVICE_KEY", "SUPABASE_SERVICE_ROLE_KEY", "service_key"
        ),
        description="Service-role key sent as bearer token and apikey",
    )
    edge_timeout_scale: float = Field(
        default=1.0, gt=0, le=MAX_SCALE, description="multiplies every step's call timeout"
    )
    confirmation_scale: float = Field(
        default=1.0,
        gt=0,
        le=MAX_SCALE,
        description="multiplies anchor confirmation schedules and deadlines (small in the sandbox)",
    )
    backoff_scale: float = Field(
        default=1.0,
        gt=0,
        le=MAX_SCALE,
        description="multiplies every step's backoff base and cap",
    )
    confirmations: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="per network: schedule_seconds (delays between polls; the last repeats) and "
        "deadline_seconds, e.g. {bitcoin = {schedule_seconds = [900, 1800], "
        "deadline_seconds = 259200}}; confirmation_scale multiplies them",
    )
    step_headers: dict[str, dict[str, SecretStr]] = Field(
        default_factory=dict,
        description="extra request headers per step, values secret (masked, never logged), e.g. "
        "{notify_artifact_ready = {x-cron-secret = '...'}}",
    )
    step_body: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="extra request body fields per step"
    )
    state_gates: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="steps done outside the orchestrator: call nothing, wait for the document's "
        "state, e.g. {create_witness = {schedule_seconds = [10, 30, 60], "
        "deadline_seconds = 3600}}",
    )
    step_functions: dict[str, str] = Field(
        default_factory=dict, description="Edge Function per step, e.g. {create_witness = 'x'}"
    )
    step_policies: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="per-step overrides: {append_tsa = {max_attempts = 10, base_seconds = 5}}",
    )
    call_log_body_bytes: int = Field(
        default=8192,
        ge=0,
        le=1024 * 1024,
        description="how much of each Edge Function answer the call log keeps",
    )
    call_log_request_bodies: bool = Field(
        default=False,
        description="debug: keep whole request bodies in the call log (secrets redacted); "
        "by default only their field names and sizes",
    )
    function_limits: dict[str, int] = Field(
        default_factory=dict,
        description="at most N calls in flight per Edge Function, across every worker, e.g. "
        '{"submit-anchor-polygon": 1}; a flow finding none free waits without spending attempts',
    )
    function_rates: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="at most `per` calls in any `seconds` per Edge Function, across every "
        'worker, e.g. {"run-tsa": {"per": 10, "seconds": 1}}; a flow over the rate waits',
    )
    circuit_failures: int = Field(
        default=10,
        ge=0,
        le=10_000,
        description="consecutive transient failures of an Edge Function (fleet-wide) that open "
        "its circuit: calls are held, flows wait without spending attempts (0: no breaker)",
    )
    circuit_cooldown_seconds: float = Field(
        default=30.0,
        gt=0,
        le=86_400,
        description="how long an open circuit holds calls before one probe tries again "
        "(scaled by BACKOFF_SCALE); a Retry-After answer opens it for that long instead",
    )
    circuit_cache_seconds: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="how long a worker trusts a closed circuit it read (one read per function "
        "and worker this often instead of one per call); failures elsewhere in the fleet are "
        "seen this late at most (0: read before every call)",
    )
    reconcile_every_seconds: float | None = Field(
        default=None,
        gt=0,
        description="opt-in: scan EcoSign this often for documents whose protection was "
        "requested and that have no flow, and give each one (the ecosign.reconcile schedule)",
    )
    lifecycle_write_back: bool = Field(
        default=False, description="PATCH document_entities.lifecycle_status when a flow ends"
    )

    # -- retention -----------------------------------------------------------------------------
    retention_completed: str = Field(
        default="30d",
        description="how long completed jobs and their events are kept (90s, 45m, 12h, 30d, 2w; "
        "never = forever); workers delete older ones",
    )
    retention_failed: str = Field(
        default="90d", description="how long failed jobs and their events are kept"
    )
    retention_cancelled: str = Field(
        default="30d", description="how long cancelled jobs and their events are kept"
    )
    retention_interval_seconds: float = Field(
        default=600.0, gt=0, description="how often each worker runs a bounded pruning pass"
    )

    # -- service -------------------------------------------------------------------------------
    ffmpeg_input_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="folders FFmpeg jobs may read from (comma-separated); with no roots the API "
        "refuses FFmpeg jobs",
    )
    ffmpeg_output_root: Path | None = Field(
        default=None, description="the folder FFmpeg jobs write under"
    )
    ffmpeg_timeout_seconds: float = Field(
        default=3600.0,
        gt=0,
        le=86_400,
        description="an FFmpeg job running longer is stopped (ffmpeg killed, partial output "
        "removed) and retried: no job holds a worker slot and the disk without end",
    )
    api_url: str | None = Field(default=None, description="CLI: talk to this API instead of the DB")
    api_token: SecretStr | None = Field(default=None, description="CLI: bearer token for api_url")
    api_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="read-write API tokens (comma-separated in env)"
    )
    api_read_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="read-only API tokens (comma-separated in env)"
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    http_header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="a request's headers must arrive within this long, else 408 and close",
    )
    http_body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="a request's body must arrive within this long after its headers",
    )
    http_send_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="a response the client reads nothing of for this long is dropped (a "
        "client that pipelines requests and never reads cannot hold a connection)",
    )
    http_max_connections: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="open connections at most (kept below half the file-descriptor limit); at "
        "the cap the server stops accepting and the kernel's backlog holds the rest",
    )
    http_max_connections_per_client: int = Field(
        default=256,
        ge=0,
        le=100_000,
        description="open connections at most from one client address (0: no limit; behind "
        "a reverse proxy every client shares its address: set 0 and let the proxy limit "
        "clients)",
    )

    # -- logging -------------------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

    @field_validator("edge_timeout_scale", "confirmation_scale", "backoff_scale", mode="before")
    @classmethod
    def _fraction(cls, value: Any) -> Any:
        """Scales may be written as fractions: ``1/300`` reads better than ``0.00333``."""
        if isinstance(value, str) and "/" in value:
            try:
                return float(Fraction(value.replace(" ", "")))
            except (ValueError, ZeroDivisionError):
                raise ValueError("must be a number or a fraction such as 1/300") from None
        return value

    @field_validator("heartbeat_seconds")
    @classmethod
    def _heartbeat_below_lease(cls, value: float | None, info: ValidationInfo) -> float | None:
        """A lease must be renewed well before it expires, or it can expire under a live
        worker (and another worker start the job again)."""
        lease = info.data.get("lease_seconds")
        if value is not None and lease is not None and value > lease / 2:
            raise ValueError(
                f"{value:g} must be at most half of lease_seconds ({lease:g}): a lease renewed "
                "that rarely can expire under a live worker"
            )
        return value

    @field_validator("lease_margin_seconds")
    @classmethod
    def _margin_after_a_renewal(cls, value: float | None, info: ValidationInfo) -> float | None:
        """A worker gives up an unrenewed lease this long before it expires: it must still get
        a renewal in first, or it gives up every lease."""
        lease = info.data.get("lease_seconds")
        if value is None or lease is None:
            return value
        heartbeat = info.data.get("heartbeat_seconds") or lease / 3
        if value >= lease - heartbeat:
            raise ValueError(
                f"{value:g} must be less than lease_seconds minus heartbeat_seconds "
                f"({lease - heartbeat:g}): a worker would give up every lease before renewing it"
            )
        return value

    @field_validator("worker_queues", mode="before")
    @classmethod
    def _split_queues(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [q.strip() for q in value.split(",") if q.strip()]
        return value

    @field_validator("kind_concurrency", "function_limits")
    @classmethod
    def _caps(cls, value: dict[str, int]) -> dict[str, int]:
        for kind, cap in value.items():
            if cap < 1:
                raise ValueError(f"{kind}: at most N at once needs N >= 1, not {cap}")
        return value

    @field_validator("schedules")
    @classmethod
    def _schedules(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, spec in value.items():
            to_schedule(name, spec)
        return value

    def schedule_list(self) -> list[Schedule]:
        """The configured schedules."""
        return [to_schedule(name, spec) for name, spec in self.schedules.items()]

    @field_validator("function_rates")
    @classmethod
    def _rates(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for function, rate in value.items():
            if set(rate) != {"per", "seconds"}:
                raise ValueError(f"{function}: give exactly per and seconds")
            if rate["per"] < 1 or rate["per"] != int(rate["per"]) or not rate["seconds"] > 0:
                raise ValueError(f"{function}: per must be a whole number >= 1, seconds > 0")
        return value

    @property
    def with_demo_kinds(self) -> bool:
        """Whether the demo.* kinds are registered (default: on SQLite only)."""
        if self.demo_kinds is not None:
            return self.demo_kinds
        return self.database_url_value.startswith("sqlite:")

    @field_validator("retention_completed", "retention_failed", "retention_cancelled")
    @classmethod
    def _keep(cls, value: str, info: ValidationInfo) -> str:
        try:
            parse_keep(value, field=str(info.field_name))
        except errors.InvalidJob as exc:
            raise ValueError(exc.reason) from None
        return value

    def http_limits(self) -> HttpLimits:
        """Read deadlines and the connection cap of the HTTP server."""
        return HttpLimits(
            header_timeout=self.http_header_timeout_seconds,
            body_timeout=self.http_body_timeout_seconds,
            send_timeout=self.http_send_timeout_seconds,
            max_connections=self.http_max_connections,
            max_per_client=self.http_max_connections_per_client,
        )

    def retention(self) -> RetentionPolicy:
        """How long finished jobs are kept, as the core's policy."""
        keep = {
            JobStatus.COMPLETED: self.retention_completed,
            JobStatus.FAILED: self.retention_failed,
            JobStatus.CANCELLED: self.retention_cancelled,
        }
        return RetentionPolicy(
            keep={s: parse_keep(v, field=f"retention_{s.value}") for s, v in keep.items()},
            every_seconds=self.retention_interval_seconds,
        )

    @field_validator("ffmpeg_input_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [Path(p.strip()) for p in value.split(",") if p.strip()]
        return value

    @property
    def ffmpeg_roots_configured(self) -> bool:
        """Whether FFmpeg jobs have server-side media roots (the API refuses them otherwise)."""
        return bool(self.ffmpeg_input_roots) and self.ffmpeg_output_root is not None

    @field_validator("api_tokens", "api_read_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value

    @field_validator("api_tokens", "api_read_tokens", mode="after")
    @classmethod
    def _named_tokens(cls, value: list[SecretStr], info: ValidationInfo) -> list[SecretStr]:
        entries = [v.get_secret_value() for v in value]
        parse_tokens(entries, read_only=info.field_name == "api_read_tokens")
        return value

    def tokens(self) -> list[ApiToken]:
        """The API's tokens with their names and scopes (``ECOSIGN_ORCH_API_TOKENS`` entries
        ``name:token[:scope]``, ``ECOSIGN_ORCH_API_READ_TOKENS`` read-only)."""
        write = parse_tokens([t.get_secret_value() for t in self.api_tokens])
        read = parse_tokens([t.get_secret_value() for t in self.api_read_tokens], read_only=True)
        return [*write, *read]

    @field_validator(
        "step_functions",
        "step_policies",
        "confirmations",
        "step_headers",
        "step_body",
        "state_gates",
        mode="after",
    )
    @classmethod
    def _known_steps(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if not value:
            return value  # nothing to check: the EcoSign module is not even imported
        from ecosign_orchestrator import ecosign

        keyword = {
            "step_functions": "functions",
            "step_policies": "policies",
            "confirmations": "confirmations",
            "step_headers": "headers",
            "step_body": "body_fields",
            "state_gates": "gates",
        }[str(info.field_name)]
        if keyword == "headers":
            value_check: Any = {
                step: {h: v.get_secret_value() for h, v in headers.items()}
                for step, headers in value.items()
            }
        else:
            value_check = value
        try:
            ecosign.EcosignConfig().with_overrides(**{keyword: value_check})
        except errors.ConfigurationError as exc:
            raise ValueError(str(exc)) from None
        return value

    @property
    def ecosign_missing(self) -> list[str]:
        """Settings the EcoSign processor needs that are not set."""
        missing = []
        if not self.edge_base_url:
            missing.append("EDGE_BASE_URL")
        if not self.supabase_url:
            missing.append("SUPABASE_URL")
        if self.service_key is None or not self.service_key.get_secret_value():
            missing.append("ECOSIGN_ORCH_SERVICE_KEY")
        return missing

    @field_validator("database_url", mode="after")
    @classmethod
    def _check_url(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if not url.startswith(("sqlite:///", "postgresql://", "postgres://", "memory://")):
            raise ValueError("must start with sqlite:///, postgresql:// or memory://")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("ECOSIGN_ORCH_CONFIG")
        if config_file:
            sources.append(_toml_source(settings_cls, Path(config_file)))
        return tuple(sources)

    @property
    def database_location(self) -> str:
        """Where the jobs are, for people: a SQLite file's absolute path, or the URL with its
        password masked."""
        url = self.database_url_value
        if url.startswith("sqlite:///"):
            return str(Path(url.removeprefix("sqlite:///")).resolve())
        return mask_url(url)

    @property
    def database_url_value(self) -> str:
        """The database URL in clear (for the driver only, never for logs)."""
        return self.database_url.get_secret_value()

    def secret_values(self) -> list[str]:
        """Every secret value held here (registered for log redaction)."""
        values = [self.api_token, self.service_key, *self.api_tokens, *self.api_read_tokens]
        values += [v for headers in self.step_headers.values() for v in headers.values()]
        found = [v.get_secret_value() for v in values if v is not None]
        found += [token.secret for token in self.tokens()]
        for url in (self.database_url_value, self.api_url, self.edge_base_url, self.supabase_url):
            found += url_secrets(url or "")
        return found

    def masked(self) -> dict[str, Any]:
        """The effective configuration with every secret masked (for ``config show``)."""
        data = self.model_dump(mode="json")
        data["database_url"] = mask_url(self.database_url_value)
        for name in ("api_url", "edge_base_url", "supabase_url"):
            if data.get(name):
                data[name] = mask_url(data[name])
        data["database_location"] = self.database_location
        for name, read_only in (("api_tokens", False), ("api_read_tokens", True)):
            entries = [t.get_secret_value() for t in getattr(self, name)]
            data[name] = [
                f"{t.name} ({t.scope.value}): **********"
                for t in parse_tokens(entries, read_only=read_only)
            ]
        data["effective_confirmations"] = self._effective_confirmations()
        return data

    def _effective_confirmations(self) -> dict[str, Any]:
        """Each network's schedule as the worker will use it (overrides and scale applied)."""
        from ecosign_orchestrator import ecosign

        config = ecosign.EcosignConfig().with_overrides(confirmations=self.confirmations)
        scaled = config.scaled(backoff=1, timeout=1, confirmation=self.confirmation_scale)
        return scaled.confirmation_schedules()


def _toml_source(settings_cls: type[BaseSettings], path: Path) -> PydanticBaseSettingsSource:
    """The TOML file ``ECOSIGN_ORCH_CONFIG`` names: missing or malformed is an error, not a file
    silently ignored."""
    if not path.is_file():
        raise errors.ConfigurationError(
            f"ECOSIGN_ORCH_CONFIG names {path}, which is not a file: fix the path or unset it"
        )
    try:
        return TomlConfigSettingsSource(settings_cls, toml_file=path)
    except tomllib.TOMLDecodeError as exc:
        raise errors.ConfigurationError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise errors.ConfigurationError(f"{path}: cannot read it: {exc.strerror}") from None


#: Query parameters whose values are credentials (libpq's ``?password=``, tokens, keys).
SECRET_QUERY_KEYS = frozenset(
    {"password", "pass", "pwd", "sslpassword", "token", "apikey", "api_key", "key", "secret"}
)


def _url_parts(url: str) -> tuple[str, str, str | None, str] | None:
    """``(scheme, user, password, rest)`` of ``scheme://user[:password]@host...``, else None.

    The credentials end at the last ``@`` before the path: libpq reads a raw ``?`` or ``@``
    inside a password as part of it, so everything it would read as the password is masked."""
    scheme, sep, rest = url.partition("://")
    end = rest.find("/") if "/" in rest else len(rest)
    authority, tail = rest[:end], rest[end:]
    if not sep or "@" not in authority:
        return None
    credentials, _, host = authority.rpartition("@")
    user, colon, password = credentials.partition(":")
    return scheme, user, password if colon else None, host + tail


def _query_secrets(url: str) -> list[tuple[str, str]]:
    query = url.partition("?")[2].partition("#")[0]
    return [
        (key, value)
        for key, value in parse_qsl(query, keep_blank_values=True)
        if key.lower() in SECRET_QUERY_KEYS
    ]


def url_secrets(url: str) -> list[str]:
    """The credentials a URL carries: the password of ``user:password@``, and the values of
    secret query parameters (registered for log redaction)."""
    parts = _url_parts(url)
    found = [parts[2]] if parts is not None and parts[2] else []
    return found + [value for _, value in _query_secrets(url) if value]


def mask_url(url: str) -> str:
    """``postgresql://user:secret@host/db?password=x`` -> ``postgresql://user:***@host/db?password=***``."""
    masked = url
    parts = _url_parts(url)
    if parts is not None and parts[2] is not None:
        scheme, user, _, rest = parts
        masked = f"{scheme}://{user}:***@{rest}"
    base, question, query = masked.partition("?")
    if not question or not _query_secrets(masked):
        return masked
    pairs = [
        f"{key}={'***' if key.lower() in SECRET_QUERY_KEYS else quote(value, safe='')}"
        for key, value in parse_qsl(query, keep_blank_values=True)
    ]
    return f"{base}?{'&'.join(pairs)}"


_SCHEDULE_FIELDS = {"kind", "cron", "every_seconds", "payload", "queue"}


def to_schedule(name: str, spec: Any) -> Schedule:
    """One configured schedule (ValueError naming what is wrong)."""
    if not isinstance(spec, dict):
        raise ValueError(f"schedule {name}: must be an object")
    unknown = set(spec) - _SCHEDULE_FIELDS
    if unknown:
        raise ValueError(f"schedule {name}: unknown fields {', '.join(sorted(unknown))}")
    if not isinstance(spec.get("kind"), str):
        raise ValueError(f"schedule {name}: kind is required")
    try:
        return Schedule(
            name=name,
            kind=spec["kind"],
            payload=spec.get("payload") or {},
            cron=spec.get("cron"),
            every_seconds=spec.get("every_seconds"),
            queue=spec.get("queue", "default"),
        )
    except (errors.InvalidJob, TypeError) as exc:
        raise ValueError(str(exc)) from None
