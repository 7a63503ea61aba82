"""Response and error schemas of the HTTP API (pydantic at the edge)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from ecosign_orchestrator import ecosign
from ecosign_orchestrator.core.calls import CallRecord
from ecosign_orchestrator.core.events import Event
from ecosign_orchestrator.core.job import Job, JobError, StepRecord
from ecosign_orchestrator.core.status import JobStatus


class FieldError(BaseModel):
    """One invalid field."""

    field: str = Field(examples=["actions"])
    reason: str = Field(examples=["at least one of protect, nda, sign_owner, sign_workflow"])


class Problem(BaseModel):
    """An error answer."""

    detail: str = Field(examples=["invalid request"])
    errors: list[FieldError] = Field(default_factory=list)


class ErrorOut(BaseModel):
    """Why a run or a step failed."""

    type: str
    message: str
    transient: bool
    details: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, error: JobError | None) -> ErrorOut | None:
        """From the core value."""
        return None if error is None else cls.model_validate(error.to_json())


class StepOut(BaseModel):
    """One named step (the seven EcoSign steps, the ffmpeg transcode...)."""

    name: str
    status: str
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime | None
    message: str
    error: ErrorOut | None
    data: dict[str, Any]

    @classmethod
    def of(cls, step: StepRecord) -> StepOut:
        """From the core value."""
        return cls(
            name=step.name,
            status=step.status.value,
            attempts=step.attempts,
            started_at=step.started_at,
            finished_at=step.finished_at,
            updated_at=step.updated_at,
            message=step.message,
            error=ErrorOut.of(step.error),
            data=step.data,
        )


class ProgressOut(BaseModel):
    """How far a running job is."""

    fraction: float | None
    message: str


class LifecycleOut(BaseModel):
    """A document flow's terminal state and the ``lifecycle_status`` it implies (design §5)."""

    terminal_state: str | None = Field(description="completed or failed, once the flow ended")
    implied_lifecycle_status: str | None = Field(
        description="what the ended flow implies for document_entities.lifecycle_status"
    )
    written_back: bool


class WaitingOut(BaseModel):
    """What a ``waiting`` job waits for."""

    reason: str = Field(description="In words: what it waits for")
    since: datetime = Field(description="When this wait began")
    next_check: datetime = Field(description="When it looks again (its run_at)")
    deadline: datetime | None = Field(description="When it stops waiting and fails the step")

    @classmethod
    def of(cls, job: Job) -> WaitingOut | None:
        """A waiting job's wait (None for any other status)."""
        if job.status is not JobStatus.WAITING or job.waiting is None:
            return None
        wait = job.waiting
        return cls(
            reason=wait.reason, since=wait.since, next_check=job.run_at, deadline=wait.deadline
        )


class JobOut(BaseModel):
    """A job, with its steps, progress, last error and (for document flows) lifecycle mapping."""

    id: str
    kind: str
    queue: str
    status: JobStatus = Field(
        description="queued (ready to run), running, retrying (after a failure, at run_at), "
        "waiting (for something outside it: see waiting), completed, failed or cancelled"
    )
    waiting: WaitingOut | None = Field(
        default=None, description="For a waiting job: what it waits for, since when, until when"
    )
    priority: int
    attempts: int
    max_attempts: int
    run_at: datetime
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    dedupe_key: str | None
    idempotency_key: str | None
    cancel_requested: bool
    progress: ProgressOut
    steps: list[StepOut]
    payload: dict[str, Any]
    result: Any = None
    last_error: ErrorOut | None
    lifecycle: LifecycleOut | None = None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        """From the core value."""
        return cls(
            id=job.id,
            kind=job.kind,
            queue=job.queue,
            status=job.status,
            waiting=WaitingOut.of(job),
            priority=job.priority,
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            run_at=job.run_at,
            created_at=job.created_at,
            updated_at=job.updated_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            dedupe_key=job.dedupe_key,
            idempotency_key=job.idempotency_key,
            cancel_requested=job.cancel_requested,
            progress=ProgressOut(fraction=job.progress.fraction, message=job.progress.message),
            steps=[StepOut.of(s) for s in job.steps],
            payload=job.payload,
            result=job.result,
            last_error=ErrorOut.of(job.last_error),
            lifecycle=_lifecycle(job),
        )


def _lifecycle(job: Job) -> LifecycleOut | None:
    if job.kind != ecosign.KIND:
        return None
    view = ecosign.flow_lifecycle(job)
    return LifecycleOut(
        terminal_state=view.terminal_state,
        implied_lifecycle_status=view.implied_lifecycle_status,
        written_back=view.written_back,
    )


class JobPage(BaseModel):
    """A page of jobs, newest first; pass ``next_cursor`` as ``cursor`` for the next page."""

    jobs: list[JobOut]
    next_cursor: str | None


class DocumentJobBatch(BaseModel):
    """Many DocumentJobs submitted at once (checked whole before anything is written)."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[ecosign.DocumentJob] = Field(min_length=1, max_length=1000)


class BatchItemOut(BaseModel):
    """One submission of a batch: its flow, and whether it is new."""

    created: bool
    job: JobOut


class BulkRequest(BaseModel):
    """A selection of jobs to retry or cancel at once."""

    model_config = ConfigDict(extra="forbid")

    status: list[JobStatus] = Field(min_length=1, description="Select jobs in these statuses")
    kind: list[str] | None = Field(default=None, description="Only these kinds")
    step: str | None = Field(default=None, max_length=200, description="Failed at this step")
    reason: str | None = Field(
        default=None, max_length=500, description="Last error contains this (case-insensitive)"
    )
    limit: int = Field(default=1000, ge=1, le=10_000, description="Act on at most this many")
    ids: list[Annotated[str, Field(pattern=r"^[0-9a-f-]{36}$")]] | None = Field(
        default=None,
        max_length=10_000,
        description="Only these jobs, e.g. the ids a dry run listed: a retry then acts on "
        "exactly what was confirmed, never on a job that came to match since",
    )
    dry_run: bool = Field(default=False, description="Only list the selection")


class SelectedJob(BaseModel):
    """A job a bulk operation selected."""

    id: str
    kind: str
    status: str
    step: str
    reason: str


class BulkOut(BaseModel):
    """What a bulk operation selected and did."""

    dry_run: bool
    selected: list[SelectedJob]
    done: int = Field(description="Jobs acted on (0 for a dry run)")
    skipped: list[tuple[str, str]] = Field(description="[job id, why] changed meanwhile")


class FailureGroupOut(BaseModel):
    """Failed jobs sharing a kind, a step and a reason."""

    kind: str
    step: str
    reason: str
    count: int
    newest: datetime | None
    example: str = Field(description="The newest job of the group")


class MinuteOut(BaseModel):
    """Jobs finished in one minute."""

    start: datetime
    completed: int
    failed: int


class WaitGroupOut(BaseModel):
    """Waiting jobs that wait for the same thing."""

    reason: str
    count: int
    oldest_since: datetime


class OverviewOut(BaseModel):
    """The store at a glance."""

    at: datetime
    statuses: dict[str, int] = Field(description="Jobs per status, every status named")
    kinds: dict[str, dict[str, int]] = Field(description="Jobs per kind, then per status")
    queue_depth: int = Field(description="Queued or retrying jobs: runs waiting for a worker")
    waiting: list[WaitGroupOut] = Field(
        description="Waiting jobs by what they wait for, with the oldest wait"
    )
    oldest_waiting_id: str | None = Field(description="The due job that has waited longest")
    oldest_waiting_seconds: float
    per_minute: list[MinuteOut] = Field(description="Finished jobs per minute, the last 15")
    failures: list[FailureGroupOut] = Field(description="The largest failure groups")
    last_event_id: int = Field(
        description="The newest event when this was read: follow /v1/events/stream?after= it"
    )


class ScheduleOut(BaseModel):
    """A schedule, its next tick and the job of its latest due tick."""

    name: str
    kind: str
    when: str = Field(description="cron expression or period")
    next_tick: datetime
    last_tick: datetime
    last_job: str | None = Field(description="The latest due tick's job, if submitted")
    last_status: str | None


class EventOut(BaseModel):
    """One event of the log; ``id`` is the resume cursor."""

    id: int
    job_id: str
    type: str
    at: datetime
    attempt: int
    data: dict[str, Any]

    @classmethod
    def of(cls, event: Event) -> EventOut:
        """From the core value."""
        return cls(
            id=event.id,
            job_id=event.job_id,
            type=event.type.value,
            at=event.at,
            attempt=event.attempt,
            data=event.data,
        )


class CallOut(BaseModel):
    """One attempt of one Edge Function call, as the call log keeps it."""

    id: int
    job_id: str
    job_attempt: int = Field(description="The flow's run that made the call")
    step: str
    attempt: int = Field(description="The step's attempt")
    target: str = Field(description="The Edge Function")
    idempotency_key: str | None
    started_at: datetime
    duration_ms: float
    status: int | None = Field(description="HTTP status; null when no answer came")
    error: str = Field(description="Why it failed (timeout, network error, the answer's reason)")
    response_headers: dict[str, str]
    response_body: str = Field(description="Up to call_log_body_bytes of the answer")
    truncated: bool
    request: dict[str, Any] = Field(description="The request's field names and sizes")

    @classmethod
    def of(cls, call: CallRecord) -> CallOut:
        """From the core value."""
        return cls.model_validate(call.to_json())


class TicketOut(BaseModel):
    """A stream ticket: pass it as ``ticket`` to ``GET /v1/events/stream``."""

    ticket: str
    expires_in: float = Field(description="Seconds the ticket opens the stream for")


class Health(BaseModel):
    """Liveness or readiness."""

    status: str = Field(examples=["ok"])
    detail: str = ""


class PlanStepOut(BaseModel):
    """One step of a plan."""

    step: str
    function: str = Field(description="The Edge Function it calls")
    action: str = Field(description="required, skipped or awaiting (a confirmation)")
    reason: str


class JoinedFlowOut(BaseModel):
    """The flow a submission would return."""

    id: str
    status: JobStatus


class PlanOut(BaseModel):
    """What submitting a DocumentJob now would do."""

    document_entity_id: str
    intent_key: str = Field(description="The flow's dedupe key: one flow per document and intent")
    witness_hash: str | None = Field(description="The witness its steps would act on")
    steps: list[PlanStepOut]
    joins: JoinedFlowOut | None = Field(
        description="The active or completed flow of the same intent a submission would return"
    )
    writes: str
