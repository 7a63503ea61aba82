"""Arguments and options the job commands share (ids, selections, ``--json``)."""

from __future__ import annotations

from typing import Annotated

import typer

from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.service.cli.common import (
    fail,
    jobs_app,
)

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


def prefix_of(group: typer.Typer) -> str:
    return "jobs " if group is jobs_app else ""


def statuses_of(values: list[str] | None) -> list[JobStatus] | None:
    if not values:
        return None
    try:
        return [JobStatus(v) for v in values]
    except ValueError:
        known = ", ".join(s.value for s in JobStatus)
        raise fail(f"--status: must be one of {known}") from None


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
