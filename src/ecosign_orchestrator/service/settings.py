"""All configuration in one place: environment (prefix ``ECOSIGN_ORCH_``) and an optional TOML file.

Precedence: explicit arguments > environment > TOML file (``ECOSIGN_ORCH_CONFIG``) > defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.retention import RetentionPolicy, parse_keep
from ecosign_orchestrator.core.schedules import Schedule
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.core.worker_settings import MAX_LEASE_SECONDS
from ecosign_orchestrator.service.settings_ecosign import EcosignSettings, check_caps
from ecosign_orchestrator.service.settings_http import HttpSettings
from ecosign_orchestrator.service.settings_sources import (
    mask_url,
    to_schedule,
    toml_source,
    url_secrets,
)
from ecosign_orchestrator.service.tokens import parse_tokens

DEFAULT_DATABASE_URL = "sqlite:///./.ecosign-orchestrator/jobs.db"


class Settings(EcosignSettings, HttpSettings, BaseSettings):
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
    # -- logging -------------------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

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

    @field_validator("kind_concurrency")
    @classmethod
    def _caps(cls, value: dict[str, int]) -> dict[str, int]:
        return check_caps(value)

    @field_validator("schedules")
    @classmethod
    def _schedules(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, spec in value.items():
            to_schedule(name, spec)
        return value

    def schedule_list(self) -> list[Schedule]:
        """The configured schedules."""
        return [to_schedule(name, spec) for name, spec in self.schedules.items()]

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
            sources.append(toml_source(settings_cls, Path(config_file)))
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
