"""Rich renderings of jobs and events for the terminal."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ecosign_orchestrator.core.calls import CallRecord
from ecosign_orchestrator.core.events import Event
from ecosign_orchestrator.core.job import Job, StepStatus
from ecosign_orchestrator.core.status import JobStatus

STATUS_STYLE = {
    JobStatus.QUEUED: "cyan",
    JobStatus.RUNNING: "bold yellow",
    JobStatus.RETRYING: "magenta",
    JobStatus.COMPLETED: "bold green",
    JobStatus.FAILED: "bold red",
    JobStatus.CANCELLED: "dim",
}
STEP_ICON = {
    StepStatus.PENDING: ("·", "dim"),
    StepStatus.RUNNING: ("▶", "yellow"),
    StepStatus.SKIPPED: ("↷", "dim"),
    StepStatus.WAITING: ("⏳", "cyan"),
    StepStatus.RETRYING: ("↻", "magenta"),
    StepStatus.SUCCEEDED: ("✔", "green"),
    StepStatus.FAILED: ("✘", "red"),
}


def status_text(status: JobStatus) -> Text:
    """A coloured status."""
    return Text(status.value, style=STATUS_STYLE[status])


def ago(moment: datetime | None) -> str:
    """``12s ago`` / ``in 3s``."""
    if moment is None:
        return ""
    seconds = (datetime.now(UTC) - moment).total_seconds()
    word = "ago" if seconds >= 0 else "from now"
    seconds = abs(seconds)
    if seconds < 60:
        return f"{seconds:.0f}s {word}"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m {word}"
    return f"{seconds / 3600:.1f}h {word}"


def progress_text(job: Job) -> str:
    """``42% message``."""
    fraction = job.progress.fraction
    percent = "" if fraction is None else f"{fraction * 100:.0f}% "
    return f"{percent}{job.progress.message}".strip()


def jobs_table(jobs: list[Job], title: str = "Jobs") -> Table:
    """One row per job."""
    table = Table(title=title, expand=False)
    for column in ("id", "kind", "status", "attempts"):
        table.add_column(column, no_wrap=True)
    for column in ("progress", "updated", "last error"):
        table.add_column(column, overflow="fold")
    for job in jobs:
        error = "" if job.last_error is None else f"{job.last_error.type}: {job.last_error.message}"
        table.add_row(
            job.id,
            job.kind,
            status_text(job.status),
            f"{job.attempts}/{job.max_attempts}",
            progress_text(job),
            ago(job.updated_at),
            error[:80],
        )
    return table


def steps_table(job: Job) -> Table:
    """The job's named steps."""
    table = Table(title="Steps", expand=False)
    for column in ("step", "status", "attempts", "started", "finished", "message"):
        table.add_column(column, overflow="fold")
    for step in job.steps:
        icon, style = STEP_ICON[step.status]
        table.add_row(
            step.name,
            Text(f"{icon} {step.status.value}", style=style),
            str(step.attempts),
            "" if step.started_at is None else step.started_at.strftime("%H:%M:%S"),
            "" if step.finished_at is None else step.finished_at.strftime("%H:%M:%S"),
            step.message[:100],
        )
    return table


def job_detail(job: Job) -> RenderableType:
    """Everything about one job."""
    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold")
    info.add_column()
    rows: list[tuple[str, RenderableType]] = [
        ("id", job.id),
        ("kind", job.kind),
        ("status", status_text(job.status)),
        ("attempts", f"{job.attempts}/{job.max_attempts}"),
        ("queue / priority", f"{job.queue} / {job.priority}"),
        ("created", job.created_at.isoformat()),
        ("run at", f"{job.run_at.isoformat()} ({ago(job.run_at)})"),
        ("started", "" if job.started_at is None else job.started_at.isoformat()),
        ("finished", "" if job.finished_at is None else job.finished_at.isoformat()),
        ("progress", progress_text(job)),
        ("lease", f"{job.lease_owner or ''} until {job.lease_expires_at or ''}".strip()),
        ("dedupe key", job.dedupe_key or ""),
    ]
    if job.last_error is not None:
        kind = "transient" if job.last_error.transient else "fatal"
        rows.append(("last error", f"{job.last_error.type} ({kind}): {job.last_error.message}"))
    if job.result is not None:
        rows.append(("result", str(job.result)[:500]))
    for name, value in rows:
        info.add_row(name, value)
    parts: list[RenderableType] = [Panel(info, title=f"job {job.id}", expand=False)]
    if job.steps:
        parts.append(steps_table(job))
    return Group(*parts)


def events_table(events: list[Event]) -> Table:
    """One row per event."""
    table = Table(title="Events", expand=False)
    for column in ("id", "at", "job", "type", "attempt", "data"):
        table.add_column(column, overflow="fold")
    for event in events:
        table.add_row(
            str(event.id),
            event.at.strftime("%H:%M:%S.%f")[:-3],
            event.job_id,
            event.type.value,
            str(event.attempt),
            str(event.data)[:120],
        )
    return table


def schedules_table(found: list[dict[str, Any]]) -> Table:
    """Schedules with their next tick and latest tick's job (``jobs schedules``)."""
    table = Table(title="Schedules", expand=False)
    for column in ("name", "kind", "when", "next tick", "last tick", "last job", "status"):
        table.add_column(column, overflow="fold")
    for item in found:
        table.add_row(
            escape(str(item["name"])),
            escape(str(item["kind"])),
            escape(str(item["when"])),
            str(item["next_tick"])[:19],
            str(item["last_tick"])[:19],
            str(item["last_job"] or "—"),
            str(item["last_status"] or "not submitted"),
        )
    return table


def failures_table(groups: list[dict[str, Any]]) -> Table:
    """Failed jobs by kind, step and reason (``jobs failures``)."""
    table = Table(title="Failures", expand=False)
    for column in ("count", "kind", "step", "reason", "newest", "example"):
        table.add_column(column, overflow="fold")
    for group in groups:
        table.add_row(
            str(group["count"]),
            escape(str(group["kind"])),
            escape(str(group["step"] or "-")),
            escape(str(group["reason"])),
            str(group["newest"] or "")[:19],
            str(group["example"]),
        )
    return table


def calls_table(calls: list[CallRecord]) -> Table:
    """One row per call attempt: what was called, how it went, what it answered."""
    table = Table(title="Edge Function calls", expand=False)
    for column in ("#", "started", "step", "try", "function", "status", "ms", "answer"):
        table.add_column(column, overflow="fold")
    for number, call in enumerate(calls, 1):
        status = "—" if call.status is None else str(call.status)
        answer = call.error or call.response_body
        table.add_row(
            str(number),
            call.started_at.strftime("%H:%M:%S.%f")[:-3],
            call.step,
            str(call.attempt),
            call.target,
            status,
            f"{call.duration_ms:.0f}",
            escape(" ".join(answer.split())[:100]),
        )
    return table


def call_detail(number: int, call: CallRecord) -> Group:
    """Everything the log keeps of one call (``calls --full``)."""
    status = "no answer" if call.status is None else f"HTTP {call.status}"
    lines = [
        f"[bold]#{number} {escape(call.target)}[/] · step {escape(call.step)} try "
        f"{call.attempt} · {status} in {call.duration_ms:.0f} ms · {call.started_at.isoformat()}",
        f"idempotency key: {escape(call.idempotency_key or '—')}",
    ]
    if call.error:
        lines.append(f"error: {escape(call.error)}")
    for name, value in call.response_headers.items():
        lines.append(f"{escape(name)}: {escape(value)}")
    lines.append(f"request: {escape(json.dumps(call.request, ensure_ascii=False))}")
    cut = " (truncated)" if call.truncated else ""
    lines.append(f"answer{cut}: {escape(call.response_body) or '—'}")
    return Group(*lines, "")


def event_summary(event: Event) -> str:
    """A short description of an event's data (reason, error, delay)."""
    data = event.data
    parts = []
    if "step" in data:
        parts.append(f"{data['step']} (step attempt {data.get('attempt', '?')})")
        if "message" in data and not isinstance(data.get("error"), dict):
            parts.append(str(data["message"]))
    if "reason" in data:
        parts.append(str(data["reason"]))
    error = data.get("error")
    if isinstance(error, dict):
        parts.append(f"{error.get('type')}: {error.get('message')}")
    if "delay" in data and isinstance(data["delay"], int | float):
        parts.append(f"retry in {data['delay']:.1f}s")
    if "worker" in data:
        parts.append(f"worker {data['worker']}")
    return " · ".join(parts)


def event_line(event: Event) -> str:
    """One plain line per event (``events --follow``, ``submit --wait``)."""
    return (
        f"{event.id:>6} {event.at:%H:%M:%S} {event.type.value:<15} "
        f"attempt {event.attempt} {event_summary(event)}"
    ).rstrip()
