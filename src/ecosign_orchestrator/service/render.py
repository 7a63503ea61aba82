"""Rich renderings of jobs and events for the terminal.

Every table is laid out for the width it is given (``tables.fitted``): ids show their random
end (the last 12 characters, which every command accepts), long text wraps at spaces, and the
columns an operator needs least are left out first on a narrow terminal.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ecosign_orchestrator import ecosign
from ecosign_orchestrator.core.calls import CallRecord
from ecosign_orchestrator.core.events import Event, EventType
from ecosign_orchestrator.core.job import Job, StepStatus
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.service.tables import Cell, Column, fitted, short_id

STATUS_STYLE = {
    JobStatus.QUEUED: "cyan",
    JobStatus.RUNNING: "bold yellow",
    JobStatus.WAITING: "blue",
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
#: Why a job went back to the queue, in an operator's words (``job_queued``'s ``reason``).
QUEUED_WORDS = {
    "enqueued": "submitted",
    "lease_expired": "its worker stopped answering: back in the queue",
    "manual_retry": "retried by hand",
    "released": "its worker shut down: back in the queue",
}


def status_text(status: JobStatus) -> Text:
    """A coloured status."""
    return Text(status.value, style=STATUS_STYLE[status])


def relative(moment: datetime | None, now: datetime | None = None) -> str:
    """``12s ago`` / ``in 3m`` (empty for None)."""
    if moment is None:
        return ""
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    amount = duration(abs(seconds))
    return f"in {amount}" if seconds < 0 else f"{amount} ago"


def duration(seconds: float) -> str:
    """``0.4s``, ``12s``, ``3m``, ``5.5h``, ``3.0d``."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86_400:.1f}d"


#: Kept for callers of the first release: same as :func:`relative`.
ago = relative


def progress_text(job: Job) -> str:
    """``42% message``."""
    fraction = job.progress.fraction
    percent = "" if fraction is None else f"{fraction * 100:.0f}% "
    return f"{percent}{job.progress.message}".strip()


def wait_text(job: Job) -> str:
    """What a waiting job waits for, its next check and its deadline, in one line."""
    if job.status is not JobStatus.WAITING or job.waiting is None:
        return ""
    parts = [f"waits for {job.waiting.reason}", f"next check {relative(job.run_at)}"]
    if job.waiting.deadline is not None:
        parts.append(f"gives up {relative(job.waiting.deadline)}")
    return ", ".join(parts)


def runs_text(job: Job) -> str:
    """``2/54`` once a job has run; empty before (a waiting flow is not "0 of 54")."""
    return f"{job.attempts}/{job.max_attempts}" if job.attempts else ""


def what(job: Job) -> str:
    """A document flow's intent (``protect+tsa+bitcoin``); any other job's kind."""
    return (ecosign.intent_label(job.payload) if job.kind == ecosign.KIND else "") or job.kind


def job_line(job: Job) -> str:
    """The one thing to know about a job now: what it waits for, why it failed, its progress."""
    if job.status is JobStatus.WAITING:
        return wait_text(job)
    if job.last_error is not None and job.status in (JobStatus.FAILED, JobStatus.RETRYING):
        retry = f" (next run {relative(job.run_at)})" if job.status is JobStatus.RETRYING else ""
        return f"{job.last_error.message}{retry}"
    if job.status is JobStatus.QUEUED and job.run_at > datetime.now(UTC):
        return f"runs {relative(job.run_at)}"
    if job.status is JobStatus.COMPLETED and job.started_at and job.finished_at:
        return f"done in {duration((job.finished_at - job.started_at).total_seconds())}"
    return progress_text(job)


def jobs_table(jobs: list[Job], title: str = "Jobs", *, width: int = 80) -> Table:
    """One row per job."""
    columns = [
        Column("id", keep=100),
        Column("what", keep=40, flex=True, min_width=19),
        Column("status", keep=95),
        Column("runs", keep=45, justify="right"),
        Column("updated", keep=35),
        Column("detail", keep=90, flex=True, min_width=20),
    ]
    rows: list[list[Cell]] = [
        [
            short_id(job.id),
            what(job),
            status_text(job.status),
            runs_text(job),
            relative(job.updated_at),
            job_line(job),
        ]
        for job in jobs
    ]
    return fitted(columns, rows, width=width, title=title)


def steps_table(job: Job, *, width: int = 80) -> Table:
    """The job's named steps."""
    columns = [
        Column("step", keep=100),
        Column("status", keep=95),
        Column("tries", keep=40, justify="right"),
        Column("started", keep=45),
        Column("finished", keep=35),
        Column("message", keep=90, flex=True, min_width=20),
    ]
    rows: list[list[Cell]] = []
    for step in job.steps:
        icon, style = STEP_ICON[step.status]
        rows.append(
            [
                step.name,
                Text(f"{icon} {step.status.value}", style=style),
                str(step.attempts or ""),
                "" if step.started_at is None else f"{step.started_at:%H:%M:%S}",
                "" if step.finished_at is None else f"{step.finished_at:%H:%M:%S}",
                step.message,
            ]
        )
    return fitted(columns, rows, width=width, title="Steps")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)


def job_facts(job: Job) -> list[tuple[str, str]]:
    """What ``status`` lists about a job, as (label, value) pairs, empty values left out."""
    lease = ""
    if job.lease_owner:
        lease = (
            f"{job.lease_owner} until {job.lease_expires_at:%H:%M:%S}"
            if (job.lease_expires_at)
            else job.lease_owner
        )
    rows = [
        ("kind", job.kind),
        ("runs", "" if not job.attempts else f"{job.attempts} of {job.max_attempts}"),
        ("queue", f"{job.queue} (priority {job.priority})"),
        ("created", f"{job.created_at.isoformat()} ({relative(job.created_at)})"),
        ("started", "" if job.started_at is None else job.started_at.isoformat()),
        ("finished", "" if job.finished_at is None else job.finished_at.isoformat()),
    ]
    if job.status is JobStatus.WAITING and job.waiting is not None:
        rows += [
            ("waiting for", job.waiting.reason),
            ("since", f"{job.waiting.since.isoformat()} ({relative(job.waiting.since)})"),
            ("next check", f"{job.run_at.isoformat()} ({relative(job.run_at)})"),
            (
                "gives up",
                ""
                if job.waiting.deadline is None
                else f"{job.waiting.deadline.isoformat()} ({relative(job.waiting.deadline)})",
            ),
        ]
    elif job.status in (JobStatus.QUEUED, JobStatus.RETRYING):
        rows.append(("next run", f"{job.run_at.isoformat()} ({relative(job.run_at)})"))
    rows += [
        ("progress", progress_text(job)),
        ("lease", lease),
        ("dedupe key", job.dedupe_key or ""),
    ]
    if job.last_error is not None:
        kind = "transient" if job.last_error.transient else "fatal"
        rows.append(("last error", f"{job.last_error.type} ({kind}): {job.last_error.message}"))
    if job.result is not None:
        rows.append(("result", _json(job.result)[:2000]))
    return [(label, value) for label, value in rows if value]


def job_detail(job: Job, *, width: int = 80) -> RenderableType:
    """Everything about one job."""
    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold", no_wrap=True)
    info.add_column(overflow="ellipsis")
    title = Text.assemble(("job ", "bold"), (job.id, "bold"), "  ", status_text(job.status))
    for label, value in job_facts(job):
        info.add_row(label, Text(value))
    parts: list[RenderableType] = [title, info]
    if job.steps:
        parts += ["", steps_table(job, width=width)]
    return Group(*parts)


def event_summary(event: Event) -> str:
    """What an event says, in words: the step and its try, the reason, the error, who acted."""
    data = event.data
    parts = []
    if "step" in data:
        tries = data.get("attempt")
        parts.append(f"{data['step']} try {tries}" if tries else str(data["step"]))
        if "message" in data and not isinstance(data.get("error"), dict):
            parts.append(str(data["message"]))
    reason = data.get("reason")
    if isinstance(reason, str) and reason:
        parts.append(
            f"waits for {reason}"
            if event.type is EventType.JOB_WAITING
            else QUEUED_WORDS.get(reason, reason)
        )
    error = data.get("error")
    if isinstance(error, dict):
        parts.append(f"{error.get('type')}: {error.get('message')}")
    if "delay" in data and isinstance(data["delay"], int | float):
        parts.append(f"next run in {data['delay']:.1f}s")
    if "worker" in data:
        parts.append(f"worker {data['worker']}")
    if data.get("requested") and event.type is EventType.JOB_CANCELLED:
        parts.append("cancel requested")
    if isinstance(data.get("actor"), str):
        parts.append(f"by {data['actor']}")
    return " · ".join(parts)


#: The events columns: fixed sizes, so ``--follow`` lines up row by row under one header.
EVENT_COLUMNS = [
    Column("event", keep=60, justify="right", size=7),
    Column("time", keep=70, size=8),
    Column("type", keep=100, size=14),
    Column("detail", keep=90, flex=True, min_width=20, size=2000),
]


def _event_row(event: Event) -> list[str]:
    return [str(event.id), f"{event.at:%H:%M:%S}", event.type.value, event_summary(event)]


def events_table(events: list[Event], *, width: int = 80, show_header: bool = True) -> Table:
    """One row per event (``events``; ``events --follow`` prints one such table per event)."""
    rows = [_event_row(e) for e in events]
    return fitted(EVENT_COLUMNS, rows, width=width, show_header=show_header)


class EventPrinter:
    """Prints events as they come, one row at a time under one header, in the columns of
    ``events_table`` (``events --follow``, ``submit --wait``): one format with or without
    following."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._header = False

    def print(self, event: Event) -> None:
        """One event's row (the header first, once)."""
        if not self._header:
            self.console.print(events_table([], width=self.console.width))
            self._header = True
        self.console.print(events_table([event], width=self.console.width, show_header=False))


def schedules_table(found: list[dict[str, Any]], *, width: int = 80) -> Table:
    """Schedules with their next tick and latest tick's job (``jobs schedules``)."""
    columns = [
        Column("name", keep=100, flex=True, min_width=10),
        Column("kind", keep=40, flex=True, min_width=10),
        Column("when", keep=80, flex=True, min_width=10),
        Column("next tick", keep=90),
        Column("last tick", keep=30),
        Column("last job", keep=50),
        Column("status", keep=60),
    ]
    rows = [
        [
            str(item["name"]),
            str(item["kind"]),
            str(item["when"]),
            str(item["next_tick"])[:16].replace("T", " "),
            str(item["last_tick"] or "")[:16].replace("T", " "),
            short_id(str(item["last_job"])) if item["last_job"] else "—",
            str(item["last_status"] or "not submitted"),
        ]
        for item in found
    ]
    return fitted(columns, rows, width=width, title="Schedules")


def failures_table(groups: list[dict[str, Any]], *, width: int = 80) -> Table:
    """Failed jobs by kind, step and reason (``jobs failures``)."""
    columns = [
        Column("jobs", keep=100, justify="right"),
        Column("kind", keep=30, flex=True, min_width=10),
        Column("step", keep=80),
        Column("reason", keep=95, flex=True, min_width=24),
        Column("newest", keep=40),
        Column("example", keep=60),
    ]
    rows = [
        [
            str(group["count"]),
            str(group["kind"]),
            str(group["step"] or "-"),
            str(group["reason"]),
            str(group["newest"] or "")[:16].replace("T", " "),
            short_id(str(group["example"])),
        ]
        for group in groups
    ]
    return fitted(columns, rows, width=width, title="Failures")


def selection_table(selected: list[dict[str, Any]], *, width: int = 80) -> Table:
    """The jobs a bulk retry or cancel names (``retry --status failed ... --dry-run``)."""
    columns = [
        Column("id", keep=100),
        Column("kind", keep=30, flex=True, min_width=10),
        Column("status", keep=80),
        Column("step", keep=70),
        Column("reason", keep=90, flex=True, min_width=20),
    ]
    rows = [
        [
            short_id(str(job["id"])),
            str(job["kind"]),
            str(job["status"]),
            str(job["step"] or "-"),
            str(job["reason"] or ""),
        ]
        for job in selected
    ]
    return fitted(columns, rows, width=width)


def plan_view(preview: dict[str, Any], *, width: int = 80) -> RenderableType:
    """What a DocumentJob would do (``plan``): the steps, then the flow it would join."""
    columns = [
        Column("step", keep=100),
        Column("would", keep=95),
        Column("function", keep=40),
        Column("why", keep=90, flex=True, min_width=24),
    ]
    style = {"required": "bold", "skipped": "dim", "awaiting": "cyan"}
    rows: list[list[Cell]] = [
        [
            str(s["step"]),
            Text(
                {"required": "run", "skipped": "skip", "awaiting": "wait"}.get(
                    str(s["action"]), str(s["action"])
                ),
                style=style.get(str(s["action"]), ""),
            ),
            str(s["function"]),
            str(s["reason"]),
        ]
        for s in preview["steps"]
    ]
    joins = preview.get("joins")
    lines: list[RenderableType] = [
        Text(f"document {preview['document_entity_id']}"),
        Text(f"witness  {preview['witness_hash'] or 'none yet (the flow creates it)'}"),
        fitted(columns, rows, width=width, title="Plan"),
        Text(
            f"A submission would return flow {joins['id']} ({joins['status']}) instead of "
            "starting one."
            if joins
            else "A submission would start a new flow."
        ),
        Text("Nothing was written and no Edge Function was called.", style="dim"),
    ]
    return Group(*lines)


def calls_table(calls: list[CallRecord], *, width: int = 80) -> Table:
    """One row per call attempt: what was called, how it went, what it answered."""
    columns = [
        Column("#", keep=70, justify="right"),
        Column("time", keep=40),
        Column("step", keep=30),
        Column("try", keep=60, justify="right"),
        Column("function", keep=100),
        Column("http", keep=95),
        Column("ms", keep=50, justify="right"),
        Column("answer", keep=90, flex=True, min_width=20),
    ]
    rows = []
    for number, call in enumerate(calls, 1):
        answer = call.error or call.response_body
        rows.append(
            [
                str(number),
                f"{call.started_at:%H:%M:%S}",
                call.step,
                str(call.attempt),
                call.target,
                "—" if call.status is None else str(call.status),
                f"{call.duration_ms:.0f}",
                " ".join(answer.split())[:300],
            ]
        )
    return fitted(columns, rows, width=width, title="Edge Function calls")


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
