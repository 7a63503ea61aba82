"""Following flows in the terminal: each flow's steps ticking over, live or as plain lines.

The columns are the step table's (``ecosign.STEPS``): a new step shows up here by itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ecosign_orchestrator import ecosign
from ecosign_orchestrator.core.job import Job, StepRecord, StepStatus
from ecosign_orchestrator.core.repository import JobRepository
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.core.tail import tail
from ecosign_orchestrator.core.types import JobId
from ecosign_orchestrator.service.render import STEP_ICON, status_text
from ecosign_orchestrator.service.tables import Cell, Column, fitted, short_id

#: Column headers by step name: wide and narrow terminals.
LABELS = {spec.step.value: spec.label for spec in ecosign.STEPS}
SHORT_LABELS = {spec.step.value: spec.short_label for spec in ecosign.STEPS}


def intent_label(job: Job) -> str:
    """``protect+tsa+bitcoin`` for a document flow; the kind for any other job."""
    return ecosign.intent_label(job.payload) or job.kind


def _seconds_until(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return max((moment - datetime.now(UTC)).total_seconds(), 0.0)


#: Below this terminal width the table shows icons only.
COMPACT_WIDTH = 150


def step_cell(record: StepRecord | None, *, compact: bool = False) -> Text:
    """One step as an icon and a word (retries and waits show how long)."""
    if record is None:
        return Text("·", style="dim")
    icon, style = STEP_ICON[record.status]
    if compact:
        key = {StepStatus.RETRYING: "retry_at", StepStatus.WAITING: "next_poll_at"}.get(
            record.status
        )
        wait = None if key is None else _seconds_until(record.data.get(key))
        return Text(icon + ("" if wait is None else f"{wait:.0f}s"), style=style)
    word = {
        StepStatus.PENDING: "",
        StepStatus.RUNNING: "running",
        StepStatus.SKIPPED: "skipped",
        StepStatus.SUCCEEDED: "done",
        StepStatus.FAILED: "failed",
        StepStatus.WAITING: "confirming",
        StepStatus.RETRYING: "retry",
    }[record.status]
    if record.status is StepStatus.RETRYING:
        wait = _seconds_until(record.data.get("retry_at"))
        word = f"retry {record.attempts}" + ("" if wait is None else f" in {wait:.0f}s")
    elif record.status is StepStatus.WAITING:
        wait = _seconds_until(record.data.get("next_poll_at"))
        word = "confirming" + ("" if wait is None else f", poll in {wait:.0f}s")
    return Text(f"{icon} {word}".strip(), style=style)


def flows_table(
    jobs: Sequence[Job], title: str = "Document flows", *, compact: bool = False
) -> Table:
    """One row per flow, one column per canonical step (``compact``: icons only, for narrow
    terminals; ✔ done, ↷ skipped, ▶ running, ↻ retry in N s, ⏳ confirming, ✘ failed)."""
    table = Table(
        title=title,
        expand=False,
        caption="✔ done  ↷ skipped  ▶ running  ↻ retry  ⏳ confirming  ✘ failed"
        if compact
        else None,
    )
    table.add_column("flow", no_wrap=True)
    table.add_column("intent", overflow="fold" if compact else "ellipsis", no_wrap=not compact)
    names = SHORT_LABELS if compact else LABELS
    for name in names.values():
        table.add_column(name, no_wrap=True)
    table.add_column("status", no_wrap=True)
    for job in jobs:
        steps = {s.name: s for s in job.steps}
        table.add_row(
            job.id[-8:] if compact else job.id[-12:],
            intent_label(job),
            *(step_cell(steps.get(name), compact=compact) for name in names),
            status_text(job.status),
        )
    return table


def summary_table(jobs: Sequence[Job], *, width: int = 80) -> Table:
    """Where each flow ended."""
    columns = [
        Column("flow", keep=100),
        Column("intent", keep=80, flex=True, min_width=10),
        Column("status", keep=95),
        Column("runs", keep=30, justify="right"),
        Column("lifecycle", keep=70),
        Column("reason", keep=90, flex=True, min_width=20),
    ]
    rows: list[list[Cell]] = []
    for job in jobs:
        result = job.result if isinstance(job.result, dict) else {}
        failed = job.last_error is not None and job.status is not JobStatus.COMPLETED
        rows.append(
            [
                short_id(job.id),
                intent_label(job),
                status_text(job.status),
                str(job.attempts),
                str(result.get("lifecycle_status") or "unchanged"),
                job.last_error.message if failed and job.last_error is not None else "",
            ]
        )
    return fitted(columns, rows, width=width, title="Summary")


async def _changes(repository: JobRepository, ids: set[JobId]) -> AsyncIterator[None]:
    """Yield after any event of these jobs, or every half second (progress and countdowns)."""
    start = await repository.last_event_id()
    async for event in tail(repository, after=start, idle_seconds=0.5):
        if event is None or event.job_id in ids:
            yield


def _line_for(job: Job) -> str:
    """One plain line per flow state (non-TTY output)."""
    steps = " ".join(f"{LABELS.get(s.name, s.name)}={s.status.value}" for s in job.steps)
    return f"{job.id[-12:]} {intent_label(job):<28} {job.status.value:<9} {steps}"


async def follow_flows(
    repository: JobRepository, ids: Sequence[JobId], *, live: bool, console: Console
) -> list[Job]:
    """Show the flows until every one is terminal; return their final state."""
    jobs = [await repository.get(i) for i in ids]
    printed: dict[JobId, str] = {}
    compact = console.width < COMPACT_WIDTH
    view = (
        Live(flows_table(jobs, compact=compact), console=console, refresh_per_second=4)
        if live
        else None
    )
    with view or contextlib.nullcontext():
        async for _ in _changes(repository, set(ids)):
            jobs = [await repository.get(i) for i in ids]
            if view is not None:
                view.update(flows_table(jobs, compact=compact))
            else:
                for job in jobs:
                    line = _line_for(job)
                    if printed.get(job.id) != line:  # print a flow again only when it changed
                        printed[job.id] = line
                        console.print(line)
            if all(j.status.is_terminal for j in jobs):
                break
    return jobs
