"""Keeping a local store: ``jobs enqueue`` (any registered kind), ``jobs prune`` (finished jobs
past their retention) and ``jobs schedules`` (what the workers' schedules submit next)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer

from ecosign_orchestrator.core import retention, scheduler
from ecosign_orchestrator.core.job import utcnow
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.service import render, wiring
from ecosign_orchestrator.service.cli.common import (
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
from ecosign_orchestrator.service.cli.options import (
    JsonOpt,
    statuses_of,
)
from ecosign_orchestrator.service.jsonio import strict_loads


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
    cutoffs = guard(lambda: _prune_cutoffs(older_than, statuses_of(status)))

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
            console.print(render.schedules_table(found, width=console.width))
        else:
            console.print("no schedules (see ECOSIGN_ORCH_SCHEDULES in docs/configuration.md)")

    run(with_repository(action))
