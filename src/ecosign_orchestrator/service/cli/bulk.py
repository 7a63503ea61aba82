"""Acting on jobs: ``retry`` and ``cancel`` of one job or of every job a selection names
(``--status failed --step STEP --reason TEXT``, with ``--dry-run``), and ``jobs failures``, the
groups such a selection is usually taken from."""

from __future__ import annotations

from collections.abc import Callable

from ecosign_orchestrator.core.selection import JobFilter
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.service import render
from ecosign_orchestrator.service.cli.common import (
    console,
    emit_json,
    example,
    fail,
    guard,
    jobs_app,
)
from ecosign_orchestrator.service.cli.options import (
    DryRun,
    JsonOpt,
    KindSel,
    LimitSel,
    OptionalJobIdArg,
    ReasonSel,
    StatusSel,
    StepSel,
    statuses_of,
)
from ecosign_orchestrator.service.cli.target import Target, run_on_target
from ecosign_orchestrator.service.tables import short_id


def _act(job_id: str, verb: str, as_json: bool) -> None:
    async def action(target: Target) -> None:
        job = await (target.retry(job_id) if verb == "retry" else target.cancel(job_id))
        if as_json:
            emit_json(job.to_json())
        elif verb == "cancel" and job.status is JobStatus.RUNNING:
            console.print(f"job {job.id}: cancel requested; its worker will stop it")
        else:
            console.print(f"job {job.id} is {job.status.value}")

    run_on_target(action)


def _job_or_selection(verb: str, doc: str) -> Callable[..., None]:
    """``retry``/``cancel``: one job by id, or every job a selection names."""

    def command(
        job_id: OptionalJobIdArg = None,
        status: StatusSel = None,
        kind: KindSel = None,
        step: StepSel = None,
        reason: ReasonSel = None,
        dry_run: DryRun = False,
        limit: LimitSel = 1000,
        as_json: JsonOpt = False,
    ) -> None:
        selection = _selection(job_id, status, kind, step, reason, limit)
        if selection is None:
            _act(str(job_id), verb, as_json)
        else:
            _bulk(selection, verb, dry_run, as_json)

    command.__doc__ = doc
    command.__name__ = verb
    return command


retry = _job_or_selection(
    "retry",
    """Run a failed or cancelled job again from its current state (attempts reset); or every
    job a selection names (--status failed --step build_artifact --reason 400 --dry-run).""",
)
cancel = _job_or_selection(
    "cancel",
    """Cancel a job (a running one stops at its worker's next heartbeat); or every job a
    selection names (--status queued --kind ecosign.document --dry-run).""",
)


def _selection(
    job_id: str | None,
    status: list[str] | None,
    kind: list[str] | None,
    step: str | None,
    reason: str | None,
    limit: int,
) -> JobFilter | None:
    """None for one job by id; else the selection (exit 2 for neither, or both)."""
    selecting = bool(status or kind or step or reason)
    if job_id is not None and selecting:
        raise fail("give a JOB_ID or a selection (--status, --kind, --step, --reason), not both")
    if job_id is not None:
        return None
    if not status:
        raise fail("give a JOB_ID, or select jobs with --status (e.g. --status failed)")
    return guard(
        lambda: JobFilter(
            statuses=statuses_of(status) or [], kinds=kind, step=step, reason=reason, limit=limit
        )
    )


def _bulk(selection: JobFilter, verb: str, dry_run: bool, as_json: bool) -> None:
    async def action(target: Target) -> None:
        result = await target.bulk(selection, verb, dry_run=dry_run)
        if as_json:
            emit_json(result)
            return
        if result["selected"]:
            console.print(render.selection_table(result["selected"], width=console.width))
        count = len(result["selected"])
        if dry_run:
            console.print(f"would {verb} {count} jobs (dry run: nothing changed)")
        else:
            console.print(f"{verb}: {result['done']} of {count} jobs", highlight=False)
            for job_id, why in result["skipped"]:
                console.print(f"skipped {short_id(job_id)}: {why}", highlight=False)

    run_on_target(action)


@jobs_app.command(
    "failures",
    epilog=example(
        "ecosign-orchestrator jobs failures",
        "ecosign-orchestrator jobs failures --kind ecosign.document --json",
    ),
)
def jobs_failures(kind: KindSel = None, as_json: JsonOpt = False) -> None:
    """Failed jobs grouped by kind, step and reason, largest group first (then retry a group
    with jobs retry --status failed --step STEP --reason TEXT)."""

    async def action(target: Target) -> None:
        groups = await target.failures(kind)
        if as_json:
            emit_json(groups)
        elif groups:
            console.print(render.failures_table(groups, width=console.width))
        else:
            console.print("no failed jobs")

    run_on_target(action)
