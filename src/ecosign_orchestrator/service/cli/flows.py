"""Document flows from the command line: ``submit`` and ``sandbox serve``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.service import render
from ecosign_orchestrator.service.cli.common import (
    app,
    console,
    emit_json,
    example,
    fail,
    guard,
    read_input,
)
from ecosign_orchestrator.service.cli.target import Target, run_on_target
from ecosign_orchestrator.service.jsonio import strict_loads

SourceArg = Annotated[
    str | None,
    typer.Argument(
        metavar="[FILE]", help="A DocumentJob JSON file, or - for stdin.", show_default=False
    ),
]
DocumentOpt = Annotated[str | None, typer.Option(metavar="UUID", help="The document_entity_id.")]
ProtectOpt = Annotated[bool, typer.Option("--protect", help="Action: protect.")]
NdaOpt = Annotated[bool, typer.Option("--nda", help="Action: NDA.")]
SignOwnerOpt = Annotated[bool, typer.Option("--sign-owner", help="Action: owner signature.")]
SignWorkflowOpt = Annotated[
    bool, typer.Option("--sign-workflow", help="Action: workflow signatures.")
]
TsaOpt = Annotated[bool, typer.Option("--tsa", help="Evidence: RFC 3161 timestamp.")]
PolygonOpt = Annotated[bool, typer.Option("--polygon", help="Evidence: Polygon anchor.")]
BitcoinOpt = Annotated[bool, typer.Option("--bitcoin", help="Evidence: Bitcoin anchor.")]
MetadataOpt = Annotated[
    str | None, typer.Option(metavar="JSON", help="The intent's metadata, a JSON object.")
]


def _intent(
    source: str | None,
    document: str | None,
    actions: dict[str, bool],
    forensic: dict[str, bool],
    metadata: str | None,
) -> Any:
    """The DocumentJob of a file (or stdin) or of the flags (exit 2 naming what is wrong)."""
    if source is not None:
        if document is not None:
            raise fail("give either a DocumentJob file or --document flags, not both")
        body = guard(lambda: strict_loads(read_input(source, "DocumentJob"), field="DocumentJob"))
    else:
        body = guard(lambda: _intent_from_flags(document, actions, forensic, metadata))
    from ecosign_orchestrator import ecosign

    return guard(lambda: ecosign.DocumentJob.model_validate(body))


def _intent_from_flags(
    document: str | None, actions: dict[str, bool], forensic: dict[str, bool], metadata: str | None
) -> dict[str, Any]:
    if document is None:
        raise fail("give a DocumentJob file (or - for stdin), or --document with action flags")
    body: dict[str, Any] = {
        "document_entity_id": document,
        "actions": {k: True for k, v in actions.items() if v},
        "forensic": {k: True for k, v in forensic.items() if v},
    }
    if metadata is not None:
        body["metadata"] = strict_loads(metadata, field="--metadata")
    return body


@app.command(
    epilog=example(
        'ecosign-orchestrator submit --document "$DOC" --protect --tsa --wait',
        "ecosign-orchestrator submit job.json --json",
        'FLOW=$(ecosign-orchestrator submit --document "$DOC" --nda --quiet)',
        'echo \'{"document_entity_id": "...", "actions": {"nda": true}}\' | '
        "ecosign-orchestrator submit -",
    )
)
def submit(
    source: SourceArg = None,
    document: DocumentOpt = None,
    protect: ProtectOpt = False,
    nda: NdaOpt = False,
    sign_owner: SignOwnerOpt = False,
    sign_workflow: SignWorkflowOpt = False,
    tsa: TsaOpt = False,
    polygon: PolygonOpt = False,
    bitcoin: BitcoinOpt = False,
    metadata: MetadataOpt = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Follow the flow until it ends; exit 1 unless it completed (needs a "
            "running worker).",
        ),
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print one JSON document (with --wait: the final flow and its events)."
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print only the flow id (for scripts).")
    ] = False,
    priority: Annotated[
        int, typer.Option(metavar="N", help="Higher runs first (a new flow only).")
    ] = 0,
    not_before: Annotated[
        str | None,
        typer.Option(
            metavar="TIME",
            help="Do not start before this ISO 8601 time with a zone, e.g. 2026-12-01T09:00Z.",
        ),
    ] = None,
) -> None:
    """Submit a DocumentJob: the orchestrator takes the document through its steps."""
    start = guard(lambda: _time("--not-before", not_before))
    if quiet and (wait or as_json):
        raise fail("--quiet prints only the flow id: use it without --wait and --json")
    actions = {"protect": protect, "nda": nda, "sign_owner": sign_owner}
    actions["sign_workflow"] = sign_workflow
    forensic = {"tsa": tsa, "polygon": polygon, "bitcoin": bitcoin}
    intent = _intent(source, document, actions, forensic, metadata)

    async def action(target: Target) -> int:
        job, created = await target.submit(intent, priority=priority, not_before=start)
        if quiet:
            typer.echo(job.id)
            return 0
        if not wait:
            if as_json:
                emit_json({"created": created, "job": job.to_json()})
            else:
                verb = "submitted" if created else "already submitted (same document and intent)"
                console.print(f"{verb}: flow [bold]{job.id}[/] ({job.status.value})")
            return 0
        if not as_json:
            verb = "submitted" if created else "already submitted (same document and intent)"
            console.print(f"{verb}: flow [bold]{job.id}[/] ({job.status.value})")
        events = []
        printer = render.EventPrinter(console)
        async for event in target.follow(job.id, 0):
            events.append(event)
            if not as_json:
                printer.print(event)
        final = await target.get(job.id)
        if as_json:
            emit_json(
                {
                    "created": created,
                    "job": final.to_json(),
                    "events": [e.to_json() for e in events],
                }
            )
        else:
            console.print(render.job_detail(final, width=console.width))
        return 0 if final.status is JobStatus.COMPLETED else 1

    raise typer.Exit(run_on_target(action, registry=True))


@app.command(
    epilog=example(
        'ecosign-orchestrator plan --document "$DOC" --protect --tsa --bitcoin',
        "ecosign-orchestrator plan job.json --json",
    )
)
def plan(
    source: SourceArg = None,
    document: DocumentOpt = None,
    protect: ProtectOpt = False,
    nda: NdaOpt = False,
    sign_owner: SignOwnerOpt = False,
    sign_workflow: SignWorkflowOpt = False,
    tsa: TsaOpt = False,
    polygon: PolygonOpt = False,
    bitcoin: BitcoinOpt = False,
    metadata: MetadataOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show what a DocumentJob would do against the document's state now: each step required
    or skipped (with why) and the flow it would join; writes nothing, calls no function."""
    actions = {"protect": protect, "nda": nda, "sign_owner": sign_owner}
    actions["sign_workflow"] = sign_workflow
    forensic = {"tsa": tsa, "polygon": polygon, "bitcoin": bitcoin}
    intent = _intent(source, document, actions, forensic, metadata)

    async def action(target: Target) -> None:
        preview = await target.plan(intent)
        if as_json:
            emit_json(preview)
        else:
            console.print(render.plan_view(preview, width=console.width))

    run_on_target(action, registry=True)


def _time(option: str, value: str | None) -> datetime | None:
    """An ISO 8601 time with a zone (``InvalidJob`` naming the option otherwise)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise errors.InvalidJob(option, f"not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None:
        raise errors.InvalidJob(option, "must carry a time zone (e.g. ...Z or +02:00)")
    return moment
