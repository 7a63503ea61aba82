"""Inspecting and acting on jobs, locally or through ``--api-url``: ``status``, ``events``,
``retry``, ``cancel`` and ``jobs list|show|events|retry|cancel``."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Annotated, Any, TypeVar

import typer

from ecosign_orchestrator.core.job import RetryOverride
from ecosign_orchestrator.core.registry import Registry
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.service import render, wiring
from ecosign_orchestrator.service.cli.common import (
    app,
    console,
    emit_json,
    fail,
    guard,
    jobs_app,
    run,
    state,
    with_repository,
)
from ecosign_orchestrator.service.cli.target import (
    LocalTarget,
    RemoteError,
    RemoteTarget,
    Target,
)
from ecosign_orchestrator.service.jsonio import strict_loads

T = TypeVar("T")
JobIdArg = Annotated[str, typer.Argument(help="Job id.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON output.")]


@contextlib.asynccontextmanager
async def target(*, registry: bool = False) -> AsyncIterator[Target]:
    """The remote API when ``--api-url`` is set, else the local database (with the job kinds
    loaded only when ``registry`` is needed, i.e. to submit)."""
    settings = state.settings
    api_url = state.api_url or settings.api_url
    if api_url:
        token = None if settings.api_token is None else settings.api_token.get_secret_value()
        remote = RemoteTarget(api_url, token)
        try:
            yield remote
        finally:
            await remote.aclose()
        return
    async with contextlib.AsyncExitStack() as stack:
        job_kinds = Registry()
        if registry:
            job_kinds = (
                await stack.enter_async_context(wiring.runtime(settings, state.apps))
            ).registry
        repository = await stack.enter_async_context(wiring.open_repository(settings))
        yield LocalTarget(repository, wiring.build_queue(repository, job_kinds))


def with_target(
    action: Callable[[Target], Awaitable[T]], *, registry: bool = False
) -> Callable[[], Coroutine[Any, Any, T]]:
    """A coroutine factory running ``action`` against the chosen backend."""

    async def go() -> T:
        async with target(registry=registry) as b:
            return await action(b)

    return go


def run_remote_aware(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``run``, with API refusals (4xx) turned into exit 2 like local usage errors."""
    try:
        return run(factory)
    except RemoteError as exc:
        raise fail(str(exc)) from None


def _statuses(values: list[str] | None) -> list[JobStatus] | None:
    if not values:
        return None
    try:
        return [JobStatus(v) for v in values]
    except ValueError:
        known = ", ".join(s.value for s in JobStatus)
        raise fail(f"--status: must be one of {known}") from None


@jobs_app.command("list")
def jobs_list(
    status: Annotated[list[str] | None, typer.Option(help="Filter by status (repeatable).")] = None,
    kind: Annotated[list[str] | None, typer.Option(help="Filter by kind (repeatable).")] = None,
    document: Annotated[str | None, typer.Option(help="Flows of this document id.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List jobs, newest first."""
    statuses = _statuses(status)

    async def action(b: Target) -> None:
        jobs, next_cursor = await b.list_jobs(
            statuses=statuses, kinds=kind, document_id=document, cursor=cursor, limit=limit
        )
        if as_json:
            emit_json({"jobs": [j.to_json() for j in jobs], "next_cursor": next_cursor})
        else:
            console.print(render.jobs_table(jobs))
            if next_cursor:
                console.print(f"more: --cursor {next_cursor}")

    run_remote_aware(with_target(action))


def _show(job_id: str, as_json: bool) -> None:
    async def action(b: Target) -> None:
        job = await b.get(job_id)
        if as_json:
            emit_json(job.to_json())
        else:
            console.print(render.job_detail(job))

    run_remote_aware(with_target(action))


@jobs_app.command("show")
def jobs_show(job_id: JobIdArg, as_json: JsonOpt = False) -> None:
    """Show one job with its steps, progress and last error."""
    _show(job_id, as_json)


@app.command("status")
def status_command(job_id: JobIdArg, as_json: JsonOpt = False) -> None:
    """A flow's status and steps (same as ``jobs show``)."""
    _show(job_id, as_json)


def _events(job_id: str, after: int, follow: bool, as_json: bool) -> int:
    async def action(b: Target) -> int:
        if not follow:
            events = await b.events(job_id, after)
            if as_json:
                emit_json([e.to_json() for e in events])
            else:
                console.print(render.events_table(events))
            return 0
        last = None
        async for event in b.follow(job_id, after):
            last = event
            if as_json:
                emit_json(event.to_json(), line=True)  # NDJSON: one event per line
            else:
                console.print(
                    f"{event.id:>6} {event.at:%H:%M:%S} {event.type.value:<14} "
                    f"attempt {event.attempt} {render.event_summary(event)}",
                    highlight=False,
                )
        return 0 if last is None or last.type.value == "job_completed" else 1

    return run_remote_aware(with_target(action))


@jobs_app.command("events")
def jobs_events(
    job_id: JobIdArg,
    after: Annotated[int, typer.Option(min=0, help="Only events after this event id.")] = 0,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Stream until it ends.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """A job's events (``--follow`` streams them until the job ends)."""
    raise typer.Exit(_events(job_id, after, follow, as_json))


@app.command("events")
def events_command(
    job_id: JobIdArg,
    after: Annotated[int, typer.Option(min=0, help="Only events after this event id.")] = 0,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Stream until it ends.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """A job's events (``--follow`` streams them until the job ends; exit 1 if it failed)."""
    raise typer.Exit(_events(job_id, after, follow, as_json))


def _act(job_id: str, verb: str) -> None:
    async def action(b: Target) -> None:
        job = await (b.retry(job_id) if verb == "retry" else b.cancel(job_id))
        if verb == "cancel" and job.status is JobStatus.RUNNING:
            console.print(f"job {job.id}: cancel requested; its worker will stop it")
        else:
            console.print(f"job {job.id} is {job.status.value}")

    run_remote_aware(with_target(action))


@jobs_app.command("retry")
def jobs_retry(job_id: JobIdArg) -> None:
    """Run a failed or cancelled job again from its current state (attempts reset)."""
    _act(job_id, "retry")


@jobs_app.command("cancel")
def jobs_cancel(job_id: JobIdArg) -> None:
    """Cancel a job (a running one stops at its worker's next heartbeat)."""
    _act(job_id, "cancel")


@app.command("retry")
def retry_command(job_id: JobIdArg) -> None:
    """Run a failed or cancelled job again (same as ``jobs retry``)."""
    _act(job_id, "retry")


@app.command("cancel")
def cancel_command(job_id: JobIdArg) -> None:
    """Cancel a job (same as ``jobs cancel``)."""
    _act(job_id, "cancel")


def _parse_payload(payload: str | None) -> Any:
    if payload is None:
        return {}
    text = sys.stdin.read() if payload == "-" else payload
    return strict_loads(text, field="--payload")


@jobs_app.command("enqueue")
def jobs_enqueue(
    kind: Annotated[str, typer.Argument(help="Job kind.")],
    payload: Annotated[str | None, typer.Option(help="JSON object, or - for stdin.")] = None,
    delay: Annotated[float, typer.Option(help="Seconds before it may run.")] = 0.0,
    priority: Annotated[int, typer.Option(help="Higher runs first.")] = 0,
    dedupe_key: Annotated[
        str | None, typer.Option(help="Return the active job with this key.")
    ] = None,
    max_attempts: Annotated[int | None, typer.Option(help="Overrides the kind's policy.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Per-run timeout in seconds.")] = None,
    queue: Annotated[str, typer.Option(help="Queue name.")] = "default",
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Enqueue a job of any registered kind (local database only)."""
    if state.api_url:
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
            retry=RetryOverride(),
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
