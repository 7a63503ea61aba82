"""The routes of ``/v1``: submit, inspect, follow, retry, cancel."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from ecosign_orchestrator import ecosign, ffmpeg
from ecosign_orchestrator.core import errors, scheduler
from ecosign_orchestrator.core import overview as overview_ops
from ecosign_orchestrator.core import selection as selection_ops
from ecosign_orchestrator.core.lookup import resolve_job_id
from ecosign_orchestrator.core.queue import JobQueue, schedule_options
from ecosign_orchestrator.core.repository import JobRepository
from ecosign_orchestrator.core.selection import JobFilter
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.core.types import JobId
from ecosign_orchestrator.service.api.auth import Actor, requires
from ecosign_orchestrator.service.api.errors import ApiError
from ecosign_orchestrator.service.api.limits import StrictJSONRoute
from ecosign_orchestrator.service.api.schemas import (
    BatchItemOut,
    BulkOut,
    BulkRequest,
    CallOut,
    DocumentJobBatch,
    EventOut,
    FailureGroupOut,
    JobOut,
    JobPage,
    OverviewOut,
    Problem,
    ScheduleOut,
)
from ecosign_orchestrator.service.tokens import Scope

router = APIRouter(prefix="/v1", route_class=StrictJSONRoute)

READ = [Depends(requires(Scope.READ))]
WRITE = [Depends(requires(Scope.WRITE))]

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing or invalid bearer token"},
    403: {"model": Problem, "description": "The token is read-only"},
    422: {"model": Problem, "description": "Invalid parameters or body; each field is named"},
    503: {"model": Problem, "description": "The job store is unavailable"},
}
BODY_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "Idempotency-Key reused with a different body"},
    413: {"model": Problem, "description": "Body larger than the limit (1 MiB by default)"},
    415: {"model": Problem, "description": "Body is not application/json"},
    422: {"model": Problem, "description": "Invalid body; each invalid field is named"},
}
JOB_ID = Annotated[
    str,
    Path(
        description="Job id, or a unique prefix or suffix of 8 or more of its characters",
        max_length=64,
    ),
]
IDEMPOTENCY_KEY = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Same key and body: the same job (200). Same key, another body: 409.",
    ),
]


def repository(request: Request) -> JobRepository:
    """The app's repository."""
    repo: JobRepository = request.app.state.repository
    return repo


def queue(request: Request) -> JobQueue:
    """The app's producer API."""
    q: JobQueue = request.app.state.queue
    return q


def admission(request: Request) -> ecosign.Admission | None:
    """The checks a DocumentJob passes before its flow is created (None: this server cannot
    read EcoSign's state; the flow checks when it runs)."""
    checks: ecosign.Admission | None = getattr(request.app.state, "admission", None)
    return checks


Repo = Annotated[JobRepository, Depends(repository)]
Queue = Annotated[JobQueue, Depends(queue)]
Admit = Annotated[ecosign.Admission | None, Depends(admission)]


@router.post(
    "/document-jobs",
    status_code=201,
    dependencies=WRITE,
    responses={
        200: {
            "model": JobOut,
            "description": "The existing flow (same key and body, or same document and intent)",
        },
        201: {"model": JobOut, "description": "A new flow"},
        **AUTH_RESPONSES,
        **BODY_RESPONSES,
    },
    summary="Submit a DocumentJob (a CTA's intent)",
)
async def submit_document_job(
    intent: ecosign.DocumentJob,
    response: Response,
    q: Queue,
    checks: Admit,
    idempotency_key: IDEMPOTENCY_KEY = None,
    priority: Annotated[
        int, Query(ge=-(2**31 - 1), le=2**31 - 1, description="Higher runs first")
    ] = 0,
    not_before: Annotated[
        datetime | None,
        Query(description="Do not start before this time (ISO 8601 with a time zone)"),
    ] = None,
) -> JobOut:
    """One flow per document and intent: the orchestrator takes it through its steps.
    ``priority`` and ``not_before`` schedule a new flow (a repeat returns the existing one).
    The document's state is read once first: a document EcoSign does not have, or a
    ``metadata.witness_hash`` it never had, is refused (422 naming the field)."""
    rank, delay = schedule_options(priority, not_before)
    request = ecosign.flow_request(
        intent, priority=rank, delay=delay, idempotency_key=idempotency_key
    )
    if checks is not None:  # after the body's own checks: a state read costs a round trip
        await checks.check(intent)
    result = await q.submit(request)
    response.status_code = 201 if result.created else 200
    response.headers["Location"] = f"/v1/jobs/{result.job.id}"
    return JobOut.of(result.job)


@router.post(
    "/document-jobs:batch",
    dependencies=WRITE,
    responses={**AUTH_RESPONSES, **BODY_RESPONSES},
    summary="Submit many DocumentJobs in one transaction",
)
async def submit_document_jobs(
    batch: DocumentJobBatch, q: Queue, checks: Admit
) -> list[BatchItemOut]:
    """Up to 1,000 intents, each with the rules of a single submission (one flow per document
    and intent: a repeat returns the existing flow, also within the batch). Every intent is
    checked before anything is written (422 names the first bad one); the flows are written
    in one transaction. The answers keep the batch's order."""
    requests = [ecosign.flow_request(intent) for intent in batch.jobs]
    if checks is not None:
        await checks.check_many(batch.jobs)
    results = await q.submit_many(requests)
    return [BatchItemOut(created=r.created, job=JobOut.of(r.job)) for r in results]


@router.post(
    "/ffmpeg-jobs",
    status_code=201,
    dependencies=WRITE,
    responses={
        200: {"model": JobOut, "description": "The job created earlier with this Idempotency-Key"},
        201: {"model": JobOut, "description": "A new job"},
        **AUTH_RESPONSES,
        **BODY_RESPONSES,
        403: {
            "model": Problem,
            "description": "The token is read-only, or this server has no media roots",
        },
    },
    summary="Submit an FFmpeg transcode",
)
async def submit_ffmpeg_job(
    job: ffmpeg.FFmpegJob,
    request: Request,
    response: Response,
    q: Queue,
    idempotency_key: IDEMPOTENCY_KEY = None,
) -> JobOut:
    """Validated at once (input inside the server's media roots and present, output folder
    inside them and writable); runs on any worker. Refused (403) on a server with no media roots:
    the client never chooses where the service reads or writes."""
    if not request.app.state.ffmpeg_enabled:
        raise ApiError(
            403,
            "FFmpeg jobs are disabled on this server: its operator enables them by setting "
            "ECOSIGN_ORCH_FFMPEG_INPUT_ROOTS and ECOSIGN_ORCH_FFMPEG_OUTPUT_ROOT",
        )
    payload = job.model_dump(mode="json", exclude_none=True)
    result = await q.submit(q.build(ffmpeg.KIND, payload, idempotency_key=idempotency_key))
    response.status_code = 201 if result.created else 200
    response.headers["Location"] = f"/v1/jobs/{result.job.id}"
    return JobOut.of(result.job)


@router.get(
    "/jobs/{job_id}",
    dependencies=READ,
    responses={404: {"model": Problem, "description": "No such job"}, **AUTH_RESPONSES},
    summary="A job with its steps, progress, last error and lifecycle mapping",
)
async def get_job(job_id: JOB_ID, repo: Repo) -> JobOut:
    """Everything about one job."""
    return JobOut.of(await repo.get(await resolve_job_id(repo, job_id)))


@router.get(
    "/jobs",
    dependencies=READ,
    responses={422: {"model": Problem, "description": "Invalid filter"}, **AUTH_RESPONSES},
    summary="List jobs, newest first (cursor pagination)",
)
async def list_jobs(
    repo: Repo,
    status: Annotated[
        list[JobStatus] | None, Query(description="Filter by status (repeatable)")
    ] = None,
    kind: Annotated[
        list[Annotated[str, Query(max_length=128)]] | None,
        Query(description="Filter by kind (repeatable)"),
    ] = None,
    document_id: Annotated[
        str | None, Query(max_length=64, description="Flows of one document")
    ] = None,
    step: Annotated[
        str | None, Query(max_length=200, description="Jobs that failed at this step")
    ] = None,
    reason: Annotated[
        str | None,
        Query(max_length=500, description="Jobs whose last error contains this (any case)"),
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=64, description="next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> JobPage:
    """Jobs matching every filter given. With ``step`` or ``reason`` a page may hold fewer than
    ``limit`` jobs (a bounded number is examined per page); ``next_cursor`` is null at the end."""
    dedupe_prefix = (
        None if document_id is None else ecosign.document_prefix(_uuid("document_id", document_id))
    )
    before = None if cursor is None else JobId(_uuid("cursor", cursor))
    if step is None and reason is None:
        jobs = await repo.list_jobs(
            statuses=status, kinds=kind, dedupe_prefix=dedupe_prefix, before=before, limit=limit
        )
        next_cursor = jobs[-1].id if len(jobs) == limit else None
    else:
        jobs, next_cursor = await selection_ops.page_failed_like(
            repo,
            step=step,
            reason=reason,
            statuses=status,
            kinds=kind,
            dedupe_prefix=dedupe_prefix,
            before=before,
            limit=limit,
        )
    return JobPage(jobs=[JobOut.of(j) for j in jobs], next_cursor=next_cursor)


@router.get(
    "/jobs/{job_id}/events",
    dependencies=READ,
    responses={404: {"model": Problem, "description": "No such job"}, **AUTH_RESPONSES},
    summary="A job's events, oldest first",
)
async def job_events(
    job_id: JOB_ID,
    repo: Repo,
    after: Annotated[int, Query(ge=0, le=2**62, description="Only events with a larger id")] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[EventOut]:
    """The event log of one job."""
    full_id = await resolve_job_id(repo, job_id)
    await repo.get(full_id)
    events = await repo.events(after_id=after, job_id=full_id, limit=limit)
    return [EventOut.of(e) for e in events]


@router.post(
    "/jobs:retry",
    dependencies=WRITE,
    responses={**AUTH_RESPONSES},
    summary="Retry every job a selection names (dry_run lists them)",
)
async def bulk_retry(body: BulkRequest, repo: Repo, actor: Actor) -> BulkOut:
    """Select by status, kind, failing step and error text; retry each (a job that changed
    meanwhile is skipped with the reason)."""
    return await _bulk(repo, body, "retry", actor)


@router.post(
    "/jobs:cancel",
    dependencies=WRITE,
    responses={**AUTH_RESPONSES},
    summary="Cancel every job a selection names (dry_run lists them)",
)
async def bulk_cancel(body: BulkRequest, repo: Repo, actor: Actor) -> BulkOut:
    """Select by status, kind, failing step and error text; cancel each."""
    return await _bulk(repo, body, "cancel", actor)


async def _bulk(repo: JobRepository, body: BulkRequest, verb: str, actor: str) -> BulkOut:
    selection = JobFilter(
        statuses=body.status,
        kinds=body.kind,
        step=body.step,
        reason=body.reason,
        limit=body.limit,
        ids=None if body.ids is None else frozenset(body.ids),
    )
    result = await selection_ops.act(repo, selection, verb, dry_run=body.dry_run, actor=actor)
    return BulkOut.model_validate(result.to_json(dry_run=body.dry_run))


@router.get(
    "/failures",
    dependencies=READ,
    responses={**AUTH_RESPONSES},
    summary="Failed jobs grouped by kind, step and reason, largest group first",
)
async def failure_groups(
    repo: Repo,
    kind: Annotated[list[str] | None, Query(description="Only these kinds")] = None,
) -> list[FailureGroupOut]:
    """What failed, where and why: retry a group with ``POST /v1/jobs:retry``."""
    groups = await selection_ops.failures(repo, kinds=kind)
    return [FailureGroupOut.model_validate(g.to_json()) for g in groups]


@router.get(
    "/overview",
    dependencies=READ,
    responses={**AUTH_RESPONSES},
    summary="Jobs by status and kind, queue depth, oldest waiting job, jobs finished per minute, "
    "the largest failure groups",
)
async def job_overview(
    repo: Repo,
    kind: Annotated[
        list[Annotated[str, Query(max_length=128)]] | None,
        Query(description="Only these kinds (repeatable)"),
    ] = None,
) -> OverviewOut:
    """The store at a glance, from bounded reads: what the console's overview shows."""
    found = await overview_ops.overview(repo, kinds=kind)
    return OverviewOut.model_validate(found.to_json())


@router.get(
    "/schedules",
    dependencies=READ,
    responses={**AUTH_RESPONSES},
    summary="The schedules this process knows, their next tick and latest tick's job",
)
async def schedule_list(q: Queue) -> list[ScheduleOut]:
    """Each schedule with its next tick and the job its latest due tick submitted."""
    found = await scheduler.statuses(q, q.registry.schedules())
    return [ScheduleOut.model_validate(s.to_json()) for s in found]


@router.get(
    "/jobs/{job_id}/calls",
    dependencies=READ,
    responses={404: {"model": Problem, "description": "No such job"}, **AUTH_RESPONSES},
    summary="A flow's Edge Function calls, one per attempt, oldest first",
)
async def job_calls(
    job_id: JOB_ID,
    repo: Repo,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[CallOut]:
    """The call log of one job: each attempt's function, status or network error, latency, the
    headers that matter and the answer's body (up to a configured size); of the request only
    field names and sizes. Never a key or a token."""
    full_id = await resolve_job_id(repo, job_id)
    await repo.get(full_id)
    return [CallOut.of(c) for c in await repo.calls(full_id, limit=limit)]


@router.post(
    "/jobs/{job_id}/retry",
    dependencies=WRITE,
    responses={
        404: {"model": Problem, "description": "No such job"},
        409: {
            "model": Problem,
            "description": "Only failed or cancelled jobs can be retried, and not while a newer "
            "job with the same dedupe key is active",
        },
        **AUTH_RESPONSES,
    },
    summary="Run a failed or cancelled job again from its current state",
)
async def retry_job(job_id: JOB_ID, repo: Repo, actor: Actor) -> JobOut:
    """Back to the queue with a fresh set of attempts; a document flow re-plans from state.
    The ``job_queued`` event names the token that asked (``data.actor``)."""
    return JobOut.of(await repo.retry(await resolve_job_id(repo, job_id), actor=actor))


@router.post(
    "/jobs/{job_id}/cancel",
    dependencies=WRITE,
    responses={
        404: {"model": Problem, "description": "No such job"},
        409: {"model": Problem, "description": "The job already completed"},
        **AUTH_RESPONSES,
    },
    summary="Cancel a job (a running one stops at its worker's next heartbeat)",
)
async def cancel_job(job_id: JOB_ID, repo: Repo, actor: Actor) -> JobOut:
    """Waiting jobs end at once; a running one gets a cancel request. The event names the
    token that asked (``data.actor``)."""
    return JobOut.of(await repo.cancel(await resolve_job_id(repo, job_id), actor=actor))


def _uuid(field: str, value: str) -> str:
    """A canonical lowercase UUID, or 422 naming ``field``."""
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise errors.InvalidJob(field, "must be a UUID") from None
    if not value.isascii() or str(parsed) != value.strip().lower():
        raise errors.InvalidJob(field, "must be a UUID in its canonical form")
    return str(parsed)
