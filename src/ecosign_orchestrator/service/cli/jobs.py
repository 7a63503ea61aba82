"""Inspecting and acting on jobs, locally or through ``--api-url``: ``status``, ``events``,
``calls`` and ``jobs list|show|events|calls`` (``bulk``: retry and cancel; ``housekeeping``:
enqueue, prune, schedules).

Every ``JOB_ID`` may be a full id or a unique prefix or suffix of 8 or more characters (the
short ids the demo and ``jobs list`` show). Every ``--json`` output is pure JSON on stdout: one
document, or one document per line when following.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ecosign_orchestrator.core.events import EventType
from ecosign_orchestrator.service import render
from ecosign_orchestrator.service.cli.bulk import cancel, retry
from ecosign_orchestrator.service.cli.common import (
    app,
    console,
    emit_json,
    example,
    jobs_app,
    state,
)
from ecosign_orchestrator.service.cli.options import (
    AfterOpt,
    FollowOpt,
    JobIdArg,
    JsonOpt,
    prefix_of,
    statuses_of,
)
from ecosign_orchestrator.service.cli.target import Target, run_on_target


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
    statuses = statuses_of(status)

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
        console.print(render.jobs_table(jobs, width=console.width))
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
            console.print(render.job_detail(job, width=console.width))

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
                console.print(render.events_table(found, width=console.width))
            return 0
        last = None
        printer = render.EventPrinter(console)
        async for event in target.follow(job_id, after):
            last = event
            if as_json:
                emit_json(event.to_json(), line=True)
            else:
                printer.print(event)
        return 0 if last is None or last.type is EventType.JOB_COMPLETED else 1

    raise typer.Exit(run_on_target(action))


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
            console.print(render.calls_table(found, width=console.width))
        else:
            console.print("no calls recorded for this job")

    run_on_target(action)


# Each is both a top-level command (for flows: `status`, `events`, `retry`, `cancel`) and a
# `jobs` subcommand (for any kind): one function, registered twice.
for group, show_name in ((app, "status"), (jobs_app, "show")):
    group.command(
        show_name,
        epilog=example(f"ecosign-orchestrator {prefix_of(group)}{show_name} 5f3c9e2a41b7"),
    )(show)
    group.command(
        "events",
        epilog=example(
            f"ecosign-orchestrator {prefix_of(group)}events 5f3c9e2a41b7 --follow",
            f"ecosign-orchestrator {prefix_of(group)}events 5f3c9e2a41b7 --after 120 --json",
        ),
    )(events)
    group.command(
        "calls",
        epilog=example(
            f"ecosign-orchestrator {prefix_of(group)}calls 5f3c9e2a41b7",
            f"ecosign-orchestrator {prefix_of(group)}calls 5f3c9e2a41b7 --full",
        ),
    )(calls)
    for verb, command in (("retry", retry), ("cancel", cancel)):
        group.command(
            verb, epilog=example(f"ecosign-orchestrator {prefix_of(group)}{verb} 5f3c9e2a41b7")
        )(command)
