"""Inspecting and acting on jobs, locally or through ``--api-url``: ``status``, ``events``,
``calls``, ``retry``, ``cancel`` and ``jobs list|show|events|calls|retry|cancel|enqueue|prune``.

Every ``JOB_ID`` may be a full id or a unique prefix or suffix of 8 or more characters (the
short ids the demo and ``jobs list`` show). Every ``--json`` output is pure JSON on stdout: one
document, or one document per line when following.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import typer

from ecosign_orchestrator.core import retention, scheduler
from ecosign_orchestrator.core.events import EventType
from ecosign_orchestrator.core.job import utcnow
from ecosign_orchestrator.core.selection import JobFilter
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.service import render, wiring
from ecosign_orchestrator.service.cli.common import (
    app,
    console,
    emit_json,
    example,
    fail,
    guard,
    jobs_app,
    read_input,
    run,
    state,
    with_repository,
)
from ecosign_orchestrator.service.cli.target import Target, run_on_target
from ecosign_orchestrator.service.jsonio import strict_loads

JobIdArg = Annotated[
    str,
    typer.Argument(
        metavar="JOB_ID",
        help="A job id, or 8+ of its first or last characters.",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
AfterOpt = Annotated[
    int, typer.Option(min=0, metavar="EVENT_ID", help="Only events after this event id.")
]
FollowOpt = Annotated[
    bool, typer.Option("--follow", "-f", help="Stream new events until the job ends.")
]


def _prefix(group: typer.Typer) -> str:
    return "jobs " if group is jobs_app else ""


def _statuses(values: list[str] | None) -> list[JobStatus] | None:
    if not values:
        return None
    try:
        return [JobStatus(v) for v in values]
    except ValueError:
        known = ", ".join(s.value for s in JobStatus)
        raise fail(f"--status: must be one of {known}") from None


@jobs_app.command(
    "list",
    epilog=example(
        "ecosign-orchestrator jobs list --status failed --kind ecosign.document",
        "ecosign-orchestrator jobs list --document 0b6c8a5e-5d3f-4f5e-9a41-2f4b8f1a9c10 --json",
    ),
)
def jobs_list(
    status: Annotated[
        list[str] | None,
        typer.Option(metavar="STATUS", help="queued, running, retrying, completed, failed, ..."),
    ] = None,
    kind: Annotated[
        list[str] | None, typer.Option(metavar="KIND", help="Only this kind (repeatable).")
    ] = None,
    document: Annotated[
        str | None, typer.Option(metavar="UUID", help="Only the flows of this document.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, metavar="N", help="Page size.")] = 50,
    cursor: Annotated[
        str | None, typer.Option(metavar="CURSOR", help="next_cursor of the previous page.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List jobs, newest first."""
    statuses = _statuses(status)

    async def action(target: Target) -> None:
        jobs, next_cursor = await target.list_jobs(
            statuses=statuses, kinds=kind, document_id=document, cursor=cursor, limit=limit
        )
        if as_json:
            emit_json({"jobs": [j.to_json() for j in jobs], "next_cursor": next_cursor})
            return
        if not jobs and not state.remote:
            console.print(f"no jobs in {state.settings.database_location}", highlight=False)
            return
        console.print(render.jobs_table(jobs))
        if next_cursor:
            console.print(f"more: --cursor {next_cursor}")

    run_on_target(action)


def show(job_id: JobIdArg, as_json: JsonOpt = False) -> None:
    """One job with its steps, progress, result and last error."""

    async def action(target: Target) -> None:
        job = await target.get(job_id)
        if as_json:
            emit_json(job.to_json())
        else:
            console.print(render.job_detail(job))

    run_on_target(action)


def events(
    job_id: JobIdArg, after: AfterOpt = 0, follow: FollowOpt = False, as_json: JsonOpt = False
) -> None:
    """A job's events; --follow streams them until the job ends (exit 1 unless it completed)."""

    async def action(target: Target) -> int:
        if not follow:
            found = await target.events(job_id, after)
            if as_json:
                emit_json([e.to_json() for e in found])
            else:
                console.print(render.events_table(found))
            return 0
        last = None
        async for event in target.follow(job_id, after):
            last = event
            if as_json:
                emit_json(event.to_json(), line=True)
            else:
                console.print(render.event_line(event), highlight=False)
        return 0 if last is None or last.type is EventType.JOB_COMPLETED else 1

    raise typer.Exit(run_on_target(action))


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


OptionalJobIdArg = Annotated[
    str | None,
    typer.Argument(
        metavar="JOB_ID",
        help="A job id, or 8+ of its first or last characters; or select with the options.",
        show_default=False,
    ),
]
StatusSel = Annotated[
    list[str] | None,
    typer.Option("--status", metavar="STATUS", help="Select jobs in this status (repeatable)."),
]
KindSel = Annotated[
    list[str] | None, typer.Option("--kind", metavar="KIND", help="Only this kind (repeatable).")
]
StepSel = Annotated[
    str | None, typer.Option("--step", metavar="STEP", help="Only jobs that failed at this step.")
]
ReasonSel = Annotated[
    str | None,
    typer.Option("--reason", metavar="TEXT", help="Only jobs whose last error contains TEXT."),
]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="List what the selection names; change nothing.")
]
LimitSel = Annotated[
    int, typer.Option("--limit", min=1, max=10_000, metavar="N", help="Act on at most N jobs.")
]


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
            statuses=_statuses(status) or [], kinds=kind, step=step, reason=reason, limit=limit
        )
    )


def _bulk(selection: JobFilter, verb: str, dry_run: bool, as_json: bool) -> None:
    async def action(target: Target) -> None:
        result = await target.bulk(selection, verb, dry_run=dry_run)
        if as_json:
            emit_json(result)
            return
        for job in result["selected"]:
            console.print(
                f"{job['id']}  {job['kind']}  {job['status']}  {job['step'] or '-'}  "
                f"{job['reason'] or ''}",
                highlight=False,
                soft_wrap=True,
            )
        count = len(result["selected"])
        if dry_run:
            console.print(f"would {verb} {count} jobs (dry run: nothing changed)")
        else:
            console.print(f"{verb}: {result['done']} of {count} jobs", highlight=False)
            for job_id, why in result["skipped"]:
                console.print(f"skipped {job_id}: {why}", highlight=False)

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
            console.print(render.failures_table(groups))
        else:
            console.print("no failed jobs")

    run_on_target(action)


def calls(
    job_id: JobIdArg,
    full: Annotated[
        bool, typer.Option("--full", help="Every call's headers, request fields and answer.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """A flow's Edge Function calls, one per attempt: status or network error, latency and
    what the function answered (never a key or a token)."""

    async def action(target: Target) -> None:
        found = await target.calls(job_id)
        if as_json:
            emit_json([c.to_json() for c in found])
        elif full:
            for number, call in enumerate(found, 1):
                console.print(render.call_detail(number, call), highlight=False)
        elif found:
            console.print(render.calls_table(found))
        else:
            console.print("no calls recorded for this job")

    run_on_target(action)


# Each is both a top-level command (for flows: `status`, `events`, `retry`, `cancel`) and a
# `jobs` subcommand (for any kind): one function, registered twice.
for group, show_name in ((app, "status"), (jobs_app, "show")):
    group.command(
        show_name, epilog=example(f"ecosign-orchestrator {_prefix(group)}{show_name} 5f3c9e2a41b7")
    )(show)
    group.command(
        "events",
        epilog=example(
            f"ecosign-orchestrator {_prefix(group)}events 5f3c9e2a41b7 --follow",
            f"ecosign-orchestrator {_prefix(group)}events 5f3c9e2a41b7 --after 120 --json",
        ),
    )(events)
    group.command(
        "calls",
        epilog=example(
            f"ecosign-orchestrator {_prefix(group)}calls 5f3c9e2a41b7",
            f"ecosign-orchestrator {_prefix(group)}calls 5f3c9e2a41b7 --full",
        ),
    )(calls)
    for verb, command in (("retry", retry), ("cancel", cancel)):
        group.command(
            verb, epilog=example(f"ecosign-orchestrator {_prefix(group)}{verb} 5f3c9e2a41b7")
        )(command)


def _parse_payload(payload: str | None) -> Any:
    if payload is None:
        return {}
    text = read_input("-", "--payload") if payload == "-" else payload
    return strict_loads(text, field="--payload")


@jobs_app.command(
    "enqueue",
    epilog=example(
        "ecosign-orchestrator jobs enqueue demo.sleep --payload '{\"seconds\": 2}' --delay 10"
    ),
)
def jobs_enqueue(
    kind: Annotated[str, typer.Argument(metavar="KIND", help="A registered job kind.")],
    payload: Annotated[
        str | None, typer.Option(metavar="JSON", help="A JSON object, or - for stdin.")
    ] = None,
    delay: Annotated[
        float, typer.Option(metavar="SECONDS", help="Wait this long before it may run.")
    ] = 0.0,
    priority: Annotated[int, typer.Option(metavar="N", help="Higher runs first.")] = 0,
    dedupe_key: Annotated[
        str | None,
        typer.Option(metavar="KEY", help="Return the active job holding this key instead."),
    ] = None,
    max_attempts: Annotated[
        int | None, typer.Option(metavar="N", help="Overrides the kind's retry policy.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(metavar="SECONDS", help="Per-run timeout.")
    ] = None,
    queue: Annotated[str, typer.Option(metavar="NAME", help="Queue name.")] = "default",
    as_json: JsonOpt = False,
) -> None:
    """Enqueue a job of any registered kind (local database only)."""
    if state.remote:
        raise fail("jobs enqueue works on the local database; over the API use submit")
    data = guard(lambda: _parse_payload(payload))

    async def action(repository: Any, rt: wiring.Runtime) -> None:
        q = wiring.build_queue(repository, rt.registry)
        new = q.build(
            kind,
            data,
            delay=delay,
            priority=priority,
            dedupe_key=dedupe_key,
            max_attempts=max_attempts,
            timeout=timeout,
            queue=queue,
        )
        result = await q.submit(new)
        if as_json:
            emit_json({"created": result.created, "job": result.job.to_json()})
        else:
            verb = "enqueued" if result.created else "already active (dedupe key)"
            console.print(f"{verb}: [bold]{result.job.id}[/] ({result.job.status.value})")

    run(with_repository(action))


@jobs_app.command(
    "prune",
    epilog=example(
        "ecosign-orchestrator jobs prune --dry-run",
        "ecosign-orchestrator jobs prune --older-than 7d --status completed --status cancelled",
    ),
)
def jobs_prune(
    older_than: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help="Finished longer ago than this (30d, 12h, 45m, 90s). Default: each status's "
            "configured retention (retention_completed, retention_failed, ...).",
        ),
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option(metavar="STATUS", help="completed, failed or cancelled (repeatable)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete finished jobs and their events older than their retention (workers also do this
    on their own, every retention_interval_seconds, in small batches)."""
    if state.remote:
        raise fail("jobs prune works on the local database (run it where the database is)")
    cutoffs = guard(lambda: _prune_cutoffs(older_than, _statuses(status)))

    async def action(repository: Any, rt: wiring.Runtime) -> None:
        counts = await retention.prune(repository, cutoffs, dry_run=dry_run)
        rows = [
            {"status": s.value, "finished_before": cutoffs[s].isoformat(), "jobs": n}
            for s, n in counts.items()
        ]
        if as_json:
            emit_json({"dry_run": dry_run, "pruned": rows})
            return
        verb = "would delete" if dry_run else "deleted"
        for row in rows:
            console.print(
                f"{verb} {row['jobs']} {row['status']} jobs finished before "
                f"{row['finished_before']}",
                highlight=False,
            )
        if not rows:
            console.print("nothing to prune: retention is 'never' for these statuses")

    run(with_repository(action))


def _prune_cutoffs(
    older_than: str | None, statuses: list[JobStatus] | None
) -> dict[JobStatus, datetime]:
    """Per status, the finish time before which jobs go."""
    chosen = statuses or [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED]
    active = [s.value for s in chosen if not s.is_terminal]
    if active:
        raise fail(f"--status: only finished jobs are pruned, not {', '.join(active)}")
    now = utcnow()
    if older_than is not None:
        keep = retention.parse_duration(older_than, field="--older-than")
        return {s: now - keep for s in chosen}
    configured = state.settings.retention().cutoffs(now)
    return {s: configured[s] for s in chosen if s in configured}


@jobs_app.command(
    "schedules",
    epilog=example(
        'ECOSIGN_ORCH_SCHEDULES=\'{"nightly": {"kind": "demo.noop", '
        '"cron": "0 3 * * *"}}\' ecosign-orchestrator jobs schedules'
    ),
)
def jobs_schedules(as_json: JsonOpt = False) -> None:
    """The schedules workers run (configuration and --app registries): when each ticks next,
    and the job of its latest due tick (local database only)."""
    if state.remote:
        raise fail("jobs schedules works on the local database; over the API: GET /v1/schedules")

    async def action(repository: Any, rt: wiring.Runtime) -> None:
        q = wiring.build_queue(repository, rt.registry)
        found = [s.to_json() for s in await scheduler.statuses(q, rt.registry.schedules())]
        if as_json:
            emit_json(found)
        elif found:
            console.print(render.schedules_table(found))
        else:
            console.print("no schedules (see ECOSIGN_ORCH_SCHEDULES in docs/configuration.md)")

    run(with_repository(action))
