"""The composition root: builds repository, registry, processors, queue and worker from settings.

The CLI and the HTTP API both call these; nothing else wires concrete pieces together.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.context import JobContext
from ecosign_orchestrator.core.gates import CircuitPolicy
from ecosign_orchestrator.core.observe import NullTracer, Tracer
from ecosign_orchestrator.core.queue import JobQueue
from ecosign_orchestrator.core.registry import Registry
from ecosign_orchestrator.core.repository import JobRepository, repository_from_url
from ecosign_orchestrator.core.retry import RetryPolicy
from ecosign_orchestrator.core.schedules import Schedule
from ecosign_orchestrator.core.types import JSONValue
from ecosign_orchestrator.core.worker import Worker, WorkerSettings
from ecosign_orchestrator.service import tracing
from ecosign_orchestrator.service.logs import register_secrets
from ecosign_orchestrator.service.settings import Settings

if TYPE_CHECKING:
    from ecosign_orchestrator import ecosign
    from ecosign_orchestrator.service.metrics import Metrics

# The processors (and aiohttp, pydantic models, Prometheus) are imported where they are wired, not
# at import time: commands that only read the job store start twice as fast.

logger = logging.getLogger(__name__)


def load_app(spec: str) -> Registry:
    """Import ``module:attribute`` and return the :class:`Registry` it names.

    The current folder is searched first, as uvicorn and Celery do, so ``--app myjobs:registry``
    finds ``./myjobs.py`` without setting PYTHONPATH.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise errors.ConfigurationError(f"--app {spec!r}: expected module:attribute")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
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


def ecosign_config(settings: Settings) -> ecosign.EcosignConfig:
    """The document flow's configuration from settings (defaults: the step table)."""
    from ecosign_orchestrator import ecosign

    config = ecosign.EcosignConfig(
        lifecycle_write_back=settings.lifecycle_write_back,
        function_limits=dict(settings.function_limits),
        function_rates={
            function: (int(rate["per"]), float(rate["seconds"]))
            for function, rate in settings.function_rates.items()
        },
        circuit=CircuitPolicy(
            failures=settings.circuit_failures,
            cooldown_seconds=settings.circuit_cooldown_seconds,
            cache_seconds=settings.circuit_cache_seconds,
        ),
    )
    config = config.with_overrides(
        functions=settings.step_functions,
        policies=settings.step_policies,
        confirmations=settings.confirmations,
        headers={
            step: {name: value.get_secret_value() for name, value in headers.items()}
            for step, headers in settings.step_headers.items()
        },
        body_fields=settings.step_body,
        gates=settings.state_gates,
    )
    return config.scaled(
        backoff=settings.backoff_scale,
        timeout=settings.edge_timeout_scale,
        confirmation=settings.confirmation_scale,
    )


async def _not_configured(ctx: JobContext) -> JSONValue:  # pragma: no cover - never claimed
    raise errors.ConfigurationError("ecosign.document is not configured on this worker")


@dataclasses.dataclass(slots=True)
class Runtime:
    """What a process runs with: the registry, and kinds that are known but not runnable here."""

    registry: Registry
    #: kind -> why this process cannot run it (enqueueing it is still fine).
    unconfigured: dict[str, str]
    #: Where workers and processors of this process report (None: nowhere).
    metrics: Metrics | None = None
    #: Where runs and step attempts are traced (OpenTelemetry when configured).
    tracer: Tracer = dataclasses.field(default_factory=NullTracer)
    #: The checks a DocumentJob passes before its flow is created (None: document flows are not
    #: configured here, so their state cannot be read).
    admission: ecosign.Admission | None = None
    #: Plans document flows without running them (None: document flows are not configured).
    previewer: ecosign.Previewer | None = None

    def runnable_kinds(self, requested: Sequence[str] | None) -> list[str]:
        """Kinds a worker should claim; requesting an unconfigured kind is an error."""
        if requested:
            for kind in requested:
                self.registry.get(kind)
                if kind in self.unconfigured:
                    raise errors.ConfigurationError(f"{kind}: {self.unconfigured[kind]}")
            return list(requested)
        for kind, reason in self.unconfigured.items():
            logger.warning(
                "%s disabled on this worker: %s", kind, reason, extra={"action": "kind_disabled"}
            )
        return [k for k in self.registry.names() if k not in self.unconfigured]


@contextlib.asynccontextmanager
async def runtime(
    settings: Settings, apps: Sequence[str] = (), *, metrics: Metrics | None = None
) -> AsyncIterator[Runtime]:
    """The registry with every built-in kind, plus ``apps``; HTTP clients closed on exit."""
    from ecosign_orchestrator import ecosign
    from ecosign_orchestrator.service import demo_kinds

    registry = Registry()
    if settings.with_demo_kinds:
        registry.include(demo_kinds.registry)
    unconfigured: dict[str, str] = {}
    admission = None
    previewer = None
    config = ecosign_config(settings)
    retry = RetryPolicy(max_attempts=config.job_max_attempts(), base_seconds=2, cap_seconds=60)
    async with contextlib.AsyncExitStack() as stack:
        missing = settings.ecosign_missing
        if missing:
            unconfigured[ecosign.KIND] = f"set {', '.join(missing)} to run document flows"
            processor = _not_configured
        else:
            processor = await _document_processor(settings, config, stack, metrics)
            admission = ecosign.Admission(processor.source)
            previewer = ecosign.Previewer(processor.source, processor.config)
            if settings.reconcile_every_seconds is not None:
                _register_reconcile(registry, processor, settings.reconcile_every_seconds)
        registry.register(ecosign.KIND, processor, retry=retry, validate=ecosign.validate_payload)
        _register_ffmpeg(registry, unconfigured, settings)
        for spec in apps:
            registry.include(load_app(spec))
        for schedule in settings.schedule_list():
            registry.get(schedule.kind)  # a schedule of an unknown kind fails at start-up
            registry.schedule(schedule)
        tracer = tracing.tracer_from_environment()
        stack.callback(tracing.shutdown, tracer)
        yield Runtime(
            registry=registry,
            unconfigured=unconfigured,
            metrics=metrics,
            tracer=tracer,
            admission=admission,
            previewer=previewer,
        )


def _register_reconcile(
    registry: Registry, processor: ecosign.DocumentProcessor, every_seconds: float
) -> None:
    """The opt-in reconciliation scan: its kind, and the schedule that submits it."""
    from ecosign_orchestrator import ecosign

    assert isinstance(processor.source, ecosign.RestStateSource)  # built just before
    scan = ecosign.reconcile_processor(processor.source, registry)
    registry.register(ecosign.RECONCILE_KIND, scan, retry=RetryPolicy(max_attempts=1))
    registry.schedule(
        Schedule(
            name=ecosign.RECONCILE_KIND, kind=ecosign.RECONCILE_KIND, every_seconds=every_seconds
        )
    )


def _register_ffmpeg(registry: Registry, unconfigured: dict[str, str], settings: Settings) -> None:
    from ecosign_orchestrator import ffmpeg

    try:
        binaries = ffmpeg.find_binaries()
    except errors.ConfigurationError as exc:
        unconfigured[ffmpeg.KIND] = str(exc)
        binaries = None
    roots = None
    if settings.ffmpeg_roots_configured:
        assert settings.ffmpeg_output_root is not None
        roots = ffmpeg.MediaRoots.of(settings.ffmpeg_input_roots, settings.ffmpeg_output_root)
    registry.register(
        ffmpeg.KIND,
        ffmpeg.FFmpegProcessor(binaries, roots=roots),
        retry=RetryPolicy(max_attempts=3, base_seconds=5, cap_seconds=60),
        timeout=settings.ffmpeg_timeout_seconds,
        validate=functools.partial(ffmpeg.validate_payload, roots=roots),
    )


async def _document_processor(
    settings: Settings,
    config: ecosign.EcosignConfig,
    stack: contextlib.AsyncExitStack,
    metrics: Metrics | None,
) -> ecosign.DocumentProcessor:
    from ecosign_orchestrator import ecosign

    assert settings.edge_base_url and settings.supabase_url and settings.service_key
    key = settings.service_key.get_secret_value()
    # A flow makes one request at a time, so with no more slots than this cap no request
    # waits; past it, requests wait their turn holding nothing but their coroutine.
    client = await stack.enter_async_context(ecosign.HttpClient.open(settings.edge_max_connections))
    if metrics is not None:
        metrics.watch_exchanges(lambda: client.exchanges)
    try:
        edge = ecosign.EdgeClient(
            settings.edge_base_url,
            key,
            client=client,
            on_call=None if metrics is None else metrics.edge_call,
            log_body_bytes=settings.call_log_body_bytes,
            log_request_bodies=settings.call_log_request_bodies,
        )
        source = ecosign.RestStateSource(settings.supabase_url, key, client=client)
    except ValueError as exc:
        raise errors.ConfigurationError(str(exc)) from None
    return ecosign.DocumentProcessor(edge, source, config)


def document_migrations() -> list[tuple[str, str]]:
    """The document flows' own SQL (``submit_document_job``), applied after the engine's.
    Read as files, not imported: commands that only read the store stay fast."""
    from importlib import resources

    from ecosign_orchestrator.core.repository import sql

    folder = resources.files("ecosign_orchestrator").joinpath("ecosign", "migrations", "postgres")
    return sql.migrations_in(folder)


@contextlib.asynccontextmanager
async def open_repository(
    settings: Settings, *, migrate: bool | None = None, check: bool = True
) -> AsyncIterator[JobRepository]:
    """An open repository; SQLite is migrated on the way in unless ``auto_migrate`` is off, and
    (with ``check``) a schema that is not up to date is an error naming the fix."""
    register_secrets(settings.secret_values())
    url = settings.database_url_value
    options: dict[str, object] = {}
    if url.startswith(("postgresql://", "postgres://")):
        options = {
            "schema": settings.database_schema,
            "max_size": settings.database_pool_size,
            "migrations": document_migrations(),
        }
    repository = repository_from_url(url, **options)
    async with repository:
        embedded = repository.backend in ("sqlite", "memory")
        should_migrate = migrate if migrate is not None else settings.auto_migrate and embedded
        if should_migrate:
            await repository.migrate()
        elif check and not await repository.schema_ready():
            raise errors.MigrationError(
                "the database schema is not up to date: run `ecosign-orchestrator db migrate`"
            )
        yield repository


def worker_settings(
    settings: Settings,
    *,
    concurrency: int | None = None,
    burst: bool = False,
    queues: Sequence[str] | None = None,
    kind_concurrency: dict[str, int] | None = None,
) -> WorkerSettings:
    """Worker tuning from settings (arguments override them)."""
    chosen_queues = list(queues or settings.worker_queues)
    return WorkerSettings(
        queues=tuple(chosen_queues) if chosen_queues else None,
        kind_concurrency={**settings.kind_concurrency, **(kind_concurrency or {})},
        burst=burst,
        concurrency=concurrency or settings.worker_concurrency,
        lease_seconds=settings.lease_seconds,
        heartbeat_seconds=settings.heartbeat_seconds,
        lease_margin_seconds=settings.lease_margin_seconds,
        poll_seconds=settings.poll_seconds,
        max_poll_seconds=max(settings.max_poll_seconds, settings.poll_seconds),
        recovery_seconds=settings.recovery_seconds,
        shutdown_grace_seconds=settings.shutdown_grace_seconds,
        retention=settings.retention(),
    )


def build_worker(
    settings: Settings,
    repository: JobRepository,
    rt: Runtime,
    *,
    concurrency: int | None = None,
    kinds: Sequence[str] | None = None,
    burst: bool = False,
    queues: Sequence[str] | None = None,
    kind_concurrency: dict[str, int] | None = None,
) -> Worker:
    """A worker for the runnable kinds of ``rt`` on ``repository``."""
    tuning = worker_settings(
        settings,
        concurrency=concurrency,
        burst=burst,
        queues=queues,
        kind_concurrency=kind_concurrency,
    )
    return Worker(
        repository,
        rt.registry,
        settings=tuning,
        kinds=rt.runnable_kinds(kinds),
        instruments=rt.metrics,
        tracer=rt.tracer,
    )


def build_queue(repository: JobRepository, registry: Registry) -> JobQueue:
    """The producer API."""
    return JobQueue(repository, registry)


__all__ = [
    "Runtime",
    "build_queue",
    "build_worker",
    "ecosign_config",
    "load_app",
    "open_repository",
    "runtime",
    "worker_settings",
]
