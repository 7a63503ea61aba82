"""Selecting jobs by what went wrong, for bulk operations and failure summaries.

A failed job's *step* is the step its error names (``details.step``), else the step recorded as
failed; its *reason* is the error's message without the step prefix. Operators group failures
by (kind, step, reason) and act on a selection: retry every flow that failed at
``build_artifact`` with a 400, cancel every queued job of a kind.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.job import Job, StepStatus
from ecosign_orchestrator.core.repository.protocol import JobRepository
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.core.types import JobId, JSONDict, JSONValue

#: Jobs read per page while selecting.
PAGE = 500
#: The most jobs one selection examines (a bound on a bulk operation's cost).
MAX_SCAN = 100_000
#: Reasons are cut to this many characters when grouped.
REASON_CHARS = 160


def failure_step(job: Job) -> str:
    """The step a job failed at ("" when none is known)."""
    if job.last_error is not None:
        step = job.last_error.details.get("step")
        if isinstance(step, str):
            return step
    failed = [s.name for s in job.steps if s.status is StepStatus.FAILED]
    return failed[-1] if failed else ""


def failure_reason(job: Job) -> str:
    """Why a job failed, without the step prefix its message may carry ("" when it did not)."""
    if job.last_error is None:
        return ""
    message = job.last_error.message
    step = failure_step(job)
    if step and message.startswith(f"{step}: "):
        message = message.removeprefix(f"{step}: ")
    return " ".join(message.split())[:REASON_CHARS]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobFilter:
    """Which jobs a bulk operation acts on."""

    statuses: Sequence[JobStatus]
    kinds: Sequence[str] | None = None
    #: Only jobs that failed at this step.
    step: str | None = None
    #: Only jobs whose last error contains this text (case and runs of spaces ignored).
    reason: str | None = None
    #: The most jobs selected.
    limit: int = 1000
    #: Only these jobs (the ids a dry run listed): acting on exactly what was confirmed, never
    #: on a job that came to match since.
    ids: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not self.statuses:
            raise errors.InvalidJob("status", "name at least one status to select jobs")
        if not 1 <= self.limit <= 10_000:
            raise errors.InvalidJob("limit", "must be between 1 and 10000")
        if self.ids is not None and len(self.ids) > 10_000:
            raise errors.InvalidJob("ids", "at most 10000")

    def matches(self, job: Job) -> bool:
        """Whether ``job`` is selected (status and kind are already filtered by the store)."""
        chosen = self.ids is None or job.id in self.ids
        return chosen and failed_like(job, step=self.step, reason=self.reason)


def failed_like(job: Job, *, step: str | None, reason: str | None) -> bool:
    """Whether ``job`` failed at ``step`` (when given) with ``reason`` in its last error (when
    given; case and runs of spaces ignored)."""
    if step is not None and failure_step(job) != step:
        return False
    if reason is not None:
        error = job.last_error
        text = "" if error is None else " ".join(f"{error.type} {error.message}".split())
        return " ".join(reason.split()).lower() in text.lower()
    return True


async def page_failed_like(
    repository: JobRepository,
    *,
    step: str | None,
    reason: str | None,
    statuses: Sequence[JobStatus] | None = None,
    kinds: Sequence[str] | None = None,
    dedupe_prefix: str | None = None,
    before: JobId | None = None,
    limit: int = 50,
    max_scan: int = 5 * PAGE,
    ids: frozenset[str] | None = None,
) -> tuple[list[Job], JobId | None]:
    """A page of jobs (newest first) that also pass :func:`failed_like`, and the cursor of the
    next page (None at the end of the store). At most ``max_scan`` jobs are read per page, so a
    narrow filter may give a short page with a cursor to continue from. ``ids``: only these."""
    chosen: list[Job] = []
    scanned = 0
    while scanned < max_scan:
        page = await repository.list_jobs(
            statuses=statuses, kinds=kinds, dedupe_prefix=dedupe_prefix, before=before, limit=PAGE
        )
        scanned += len(page)
        for job in page:
            if (ids is None or job.id in ids) and failed_like(job, step=step, reason=reason):
                chosen.append(job)
                if len(chosen) == limit:
                    return chosen, job.id
        if len(page) < PAGE:
            return chosen, None
        before = page[-1].id
    return chosen, before


async def select(repository: JobRepository, selection: JobFilter) -> list[Job]:
    """The jobs ``selection`` names, newest first, at most ``selection.limit``."""
    chosen, _ = await page_failed_like(
        repository,
        step=selection.step,
        reason=selection.reason,
        statuses=selection.statuses,
        kinds=selection.kinds,
        limit=selection.limit,
        max_scan=MAX_SCAN,
        ids=selection.ids,
    )
    return chosen


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FailureGroup:
    """Failed jobs that share a kind, a step and a reason."""

    kind: str
    step: str
    reason: str
    count: int
    newest: datetime | None
    #: The newest job of the group (to inspect one).
    example: str

    def to_json(self) -> JSONDict:
        """JSON form for APIs and the CLI."""
        return {
            "kind": self.kind,
            "step": self.step,
            "reason": self.reason,
            "count": self.count,
            "newest": None if self.newest is None else self.newest.isoformat(),
            "example": self.example,
        }


async def failures(
    repository: JobRepository, *, kinds: Sequence[str] | None = None, limit: int = 10_000
) -> list[FailureGroup]:
    """Failed jobs grouped by (kind, step, reason), largest group first."""
    jobs = await select(
        repository, JobFilter(statuses=[JobStatus.FAILED], kinds=kinds, limit=limit)
    )
    groups: dict[tuple[str, str, str], list[Job]] = {}
    for job in jobs:
        groups.setdefault((job.kind, failure_step(job), failure_reason(job)), []).append(job)
    summary = [
        FailureGroup(
            kind=kind,
            step=step,
            reason=reason,
            count=len(members),
            newest=max((j.finished_at for j in members if j.finished_at), default=None),
            example=members[0].id,
        )
        for (kind, step, reason), members in groups.items()
    ]
    return sorted(summary, key=lambda g: (-g.count, g.kind, g.step, g.reason))


@dataclasses.dataclass(frozen=True, slots=True)
class BulkResult:
    """What a bulk operation selected and did."""

    selected: list[Job]
    #: Jobs acted on (empty for a dry run).
    done: list[Job]
    #: Jobs that changed in between and were left alone, with why.
    skipped: list[tuple[str, str]]

    def to_json(self, *, dry_run: bool) -> JSONDict:
        """JSON form for APIs and the CLI: each selected job with its failure step and reason."""
        selected: list[JSONValue] = [
            {
                "id": job.id,
                "kind": job.kind,
                "status": job.status.value,
                "step": failure_step(job),
                "reason": failure_reason(job),
            }
            for job in self.selected
        ]
        skipped: list[JSONValue] = [[job_id, why] for job_id, why in self.skipped]
        return {
            "dry_run": dry_run,
            "selected": selected,
            "done": len(self.done),
            "skipped": skipped,
        }


async def act(
    repository: JobRepository,
    selection: JobFilter,
    verb: str,
    *,
    dry_run: bool,
    actor: str | None = None,
) -> BulkResult:
    """``retry`` or ``cancel`` every job ``selection`` names (or, with ``dry_run``, only say
    which). A job that cannot take the action (its state changed since it was selected, or
    another active job holds its dedupe key) is skipped with the reason. Each event records
    ``actor``."""
    if verb not in ("retry", "cancel"):
        raise errors.InvalidJob("verb", "must be retry or cancel")
    selected = await select(repository, selection)
    done: list[Job] = []
    skipped: list[tuple[str, str]] = []
    if not dry_run:
        for job in selected:
            try:
                action = repository.retry if verb == "retry" else repository.cancel
                done.append(await action(job.id, actor=actor))
            except (errors.IllegalTransition, errors.JobNotFound, errors.DuplicateJob) as exc:
                skipped.append((job.id, str(exc)))
    return BulkResult(selected=selected, done=done, skipped=skipped)
