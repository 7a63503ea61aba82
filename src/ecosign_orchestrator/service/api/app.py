"""The FastAPI application: routes, auth, limits, health, metrics, an optional embedded worker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from importlib import metadata
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline

from ecosign_orchestrator.core.repository import JobRepository
from ecosign_orchestrator.service import console, wiring
from ecosign_orchestrator.service.api import errors as api_errors
from ecosign_orchestrator.service.api.auth import StreamTickets, TokenCheck, requires
from ecosign_orchestrator.service.api.limits import BodyLimit
from ecosign_orchestrator.service.api.plans import plan_router
from ecosign_orchestrator.service.api.routes import AUTH_RESPONSES, router
from ecosign_orchestrator.service.api.schemas import Health
from ecosign_orchestrator.service.api.streams import stream_router
from ecosign_orchestrator.service.metrics import CONTENT_TYPE, Metrics
from ecosign_orchestrator.service.settings import Settings
from ecosign_orchestrator.service.tokens import Scope

logger = logging.getLogger(__name__)

DESCRIPTION = """
The single authority that drives EcoSign's document flows. A CTA submits a **DocumentJob**
(its intent); the orchestrator plans the steps from the document's state, calls the Edge Functions
in order, retries with backoff, and closes the flow as `completed` or `failed`.

Authenticate with `Authorization: Bearer <token>` (read-write tokens from
`ECOSIGN_ORCH_API_TOKENS`, read-only from `ECOSIGN_ORCH_API_READ_TOKENS`). Errors are JSON:
`{"detail": "...", "errors": [{"field": "...", "reason": "..."}]}`.
"""


def create_app(
    settings: Settings, *, apps: tuple[str, ...] = (), embedded_worker: bool = True
) -> FastAPI:
    """The API; the repository, runtime and (optionally) a worker live for the app's lifespan."""
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            wiring.runtime(settings, apps, metrics=metrics) as rt,
            wiring.open_repository(settings) as repository,
        ):
            app.state.repository = repository
            app.state.queue = wiring.build_queue(repository, rt.registry)
            app.state.admission = rt.admission
            app.state.previewer = rt.previewer
            task = None
            worker = None
            if embedded_worker:
                worker = wiring.build_worker(settings, repository, rt)
                task = asyncio.create_task(worker.run(), name="embedded-worker")
            try:
                yield
            finally:
                if worker is not None and task is not None:
                    worker.stop()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    # Swagger UI and ReDoc are served from the fastapi-offline wheel, not a CDN: /docs works on
    # machines with no internet, and no third-party script runs on the page.
    app = FastAPIOffline(
        title="ecosign-orchestrator",
        version=metadata.version("ecosign-orchestrator"),
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.tokens = TokenCheck(settings.tokens())
    app.state.tickets = StreamTickets([t.secret for t in settings.tokens()])
    app.state.metrics = metrics
    app.state.ffmpeg_enabled = settings.ffmpeg_roots_configured
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    api_errors.install(app)
    app.include_router(router)
    app.include_router(stream_router)
    app.include_router(plan_router)
    console.install(app)
    _serve_openapi_from_bytes(app)

    @app.get("/healthz", tags=["health"], summary="The process is alive")
    async def healthz() -> Health:
        """Liveness: no dependency checked."""
        return Health(status="ok")

    readiness = Readiness()

    @app.get(
        "/readyz",
        tags=["health"],
        summary="The job store is reachable, migrated and accepts writes",
        responses={503: {"model": Health, "description": "Not ready"}},
    )
    async def readyz(request: Request) -> Any:
        """Readiness: the schema is up to date and a one-row write commits (a store that
        answers reads but refuses writes, e.g. a full disk or a read-only server, is not ready).
        The reason goes to the log, not to this unauthenticated answer. Checked at most once a
        second: callers meanwhile share the last answer (this route needs no token, and each
        check writes to the store)."""
        return await readiness.check(request.app.state.repository)

    @app.get(
        "/metrics",
        tags=["health"],
        summary="Prometheus metrics",
        dependencies=[Depends(requires(Scope.READ))],
        response_class=Response,
        responses={
            200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"},
            **AUTH_RESPONSES,
        },
    )
    async def metrics_endpoint(request: Request) -> Response:
        """Jobs by kind and status, queue depth, claims, retries, lease recoveries, step durations,
        Edge Function calls by status class."""
        repository: JobRepository = request.app.state.repository
        gate = getattr(request.app.state, "connection_gate", None)
        return Response(await metrics.render(repository, gate=gate), media_type=CONTENT_TYPE)

    return app


def _serve_openapi_from_bytes(app: FastAPI) -> None:
    """``/openapi.json`` encoded once, not at every request: it is the largest answer anyone
    may ask for without a token, and a client that pipelines requests for it and reads nothing
    made the server encode 46 KB of JSON per request for answers nobody read."""
    path = app.openapi_url
    app.router.routes = [r for r in app.router.routes if getattr(r, "path", None) != path]
    encoded: list[bytes] = []

    async def openapi_json() -> Response:
        if not encoded:
            schema = app.openapi()
            encoded.append(json.dumps(schema, ensure_ascii=False, separators=(",", ":")).encode())
        return Response(encoded[0], media_type="application/json")

    app.add_api_route(path or "/openapi.json", openapi_json, include_in_schema=False)


#: How long each readiness check may take before the answer is "not ready".
READY_TIMEOUT_SECONDS = 3.0
#: How long one readiness answer serves every caller.
READY_CACHE_SECONDS = 1.0


class Readiness:
    """``/readyz``'s check, made at most once per :data:`READY_CACHE_SECONDS` whoever asks."""

    def __init__(self) -> None:
        self._answer: Any = None
        self._at = float("-inf")
        self._lock = asyncio.Lock()

    async def check(self, repository: JobRepository) -> Any:
        """The readiness answer (200 body or a 503 response), fresh within the cache time."""
        async with self._lock:  # callers during a check wait for it instead of checking too
            if time.monotonic() - self._at >= READY_CACHE_SECONDS:
                self._answer = await _ready(repository)
                self._at = time.monotonic()
            return self._answer


async def _ready(repository: JobRepository) -> Any:
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            migrated = await repository.schema_ready()
    except Exception as exc:  # any failure means "not ready"
        return _not_ready(f"the job store is unreachable ({type(exc).__name__})", exc)
    if not migrated:
        return _not_ready("migrations pending")
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await repository.probe_write()
    except Exception as exc:
        return _not_ready(f"the job store does not accept writes ({type(exc).__name__})", exc)
    return Health(status="ok")


def _not_ready(detail: str, exc: BaseException | None = None) -> JSONResponse:
    """503 with a short reason; the full error goes to the log only."""
    if exc is not None:
        logger.warning("not ready: %s: %s", detail, exc, extra={"action": "not_ready"})
    body = Health(status="unavailable", detail=detail).model_dump()
    return JSONResponse(body, status_code=503)
