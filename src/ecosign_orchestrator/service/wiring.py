"""The composition root: builds repository, registry, queue and worker from settings.

The CLI and the HTTP API both call these; nothing else wires concrete pieces together.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator, Sequence

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.queue import JobQueue
from ecosign_orchestrator.core.registry import Registry
from ecosign_orchestrator.core.repository import JobRepository, repository_from_url
from ecosign_orchestrator.core.worker import Worker, WorkerSettings
from ecosign_orchestrator.service import demo_kinds
from ecosign_orchestrator.service.logs import register_secrets
from ecosign_orchestrator.service.settings import Settings


def load_app(spec: str) -> Registry:
    """Import ``module:attribute`` and return the :class:`Registry` it names."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise errors.ConfigurationError(f"--app {spec!r}: expected module:attribute")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise errors.ConfigurationError(
            f"--app {spec!r}: cannot import {module_name}: {exc}"
        ) from exc
    registry = getattr(module, attribute, None)
    if not isinstance(registry, Registry):
        raise errors.ConfigurationError(f"--app {spec!r}: {attribute} is not a Registry")
    return registry


def build_registry(settings: Settings, apps: Sequence[str] = ()) -> Registry:
    """The built-in kinds plus those of every ``--app``."""
    del settings  # the EcoSign and FFmpeg kinds read it once they are wired in
    registry = Registry()
    registry.include(demo_kinds.registry)
    for spec in apps:
        registry.include(load_app(spec))
    return registry


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value the settings hold (registered for log redaction)."""
    values = [
        settings.api_token,
        settings.service_key,
        *settings.api_tokens,
        *settings.api_read_tokens,
    ]
    found = [v.get_secret_value() for v in values if v is not None]
    url = settings.database_url_value
    if "@" in url and ":" in url.split("://", 1)[-1].split("@", 1)[0]:
        found.append(url.split("://", 1)[-1].split("@", 1)[0].split(":", 1)[1])
    return found


@contextlib.asynccontextmanager
async def open_repository(
    settings: Settings, *, migrate: bool | None = None
) -> AsyncIterator[JobRepository]:
    """An open repository; SQLite is migrated on the way in unless ``auto_migrate`` is off."""
    register_secrets(secrets_of(settings))
    repository = repository_from_url(settings.database_url_value)
    if hasattr(repository, "schema"):
        repository.schema = settings.database_schema
    async with repository:
        should_migrate = (
            migrate
            if migrate is not None
            else (settings.auto_migrate and repository.backend in ("sqlite", "memory"))
        )
        if should_migrate:
            await repository.migrate()
        elif not await repository.schema_ready():
            raise errors.MigrationError(
                "the database schema is not up to date: run `ecosign-orchestrator db migrate`"
            )
        yield repository


def worker_settings(settings: Settings, *, concurrency: int | None = None) -> WorkerSettings:
    """Worker tuning from settings."""
    return WorkerSettings(
        concurrency=concurrency or settings.worker_concurrency,
        lease_seconds=settings.lease_seconds,
        heartbeat_seconds=settings.heartbeat_seconds,
        poll_seconds=settings.poll_seconds,
        max_poll_seconds=max(settings.max_poll_seconds, settings.poll_seconds),
        recovery_seconds=settings.recovery_seconds,
        shutdown_grace_seconds=settings.shutdown_grace_seconds,
    )


def build_worker(
    settings: Settings,
    repository: JobRepository,
    registry: Registry,
    *,
    concurrency: int | None = None,
    kinds: Sequence[str] | None = None,
) -> Worker:
    """A worker for ``registry`` on ``repository``."""
    return Worker(
        repository,
        registry,
        settings=worker_settings(settings, concurrency=concurrency),
        kinds=kinds or None,
    )


def build_queue(repository: JobRepository, registry: Registry) -> JobQueue:
    """The producer API."""
    return JobQueue(repository, registry)
