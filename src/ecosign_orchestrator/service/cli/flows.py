"""CLI commands for document flows: ``submit`` and ``sandbox serve``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ecosign_orchestrator.service import render
from ecosign_orchestrator.service.cli.common import app, console, emit_json, fail, guard
from ecosign_orchestrator.service.cli.jobs import run_remote_aware, with_target
from ecosign_orchestrator.service.cli.target import Target
from ecosign_orchestrator.service.jsonio import strict_loads

sandbox_app = typer.Typer(
    help="The local stand-in for EcoSign's Edge Functions.", no_args_is_help=True
)
app.add_typer(sandbox_app, name="sandbox")

DEFAULT_SANDBOX_KEY = "sandbox-service-key"


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


@app.command()
def submit(
    source: Annotated[
        str | None,
        typer.Argument(help="DocumentJob JSON file, or - for stdin.", show_default=False),
    ] = None,
    document: Annotated[str | None, typer.Option(help="document_entity_id (UUID).")] = None,
    protect: Annotated[bool, typer.Option("--protect", help="Action: protect.")] = False,
    nda: Annotated[bool, typer.Option("--nda", help="Action: NDA.")] = False,
    sign_owner: Annotated[
        bool, typer.Option("--sign-owner", help="Action: owner signature.")
    ] = False,
    sign_workflow: Annotated[
        bool, typer.Option("--sign-workflow", help="Action: workflow signatures.")
    ] = False,
    tsa: Annotated[bool, typer.Option("--tsa", help="Evidence: RFC 3161 timestamp.")] = False,
    polygon: Annotated[bool, typer.Option("--polygon", help="Evidence: Polygon anchor.")] = False,
    bitcoin: Annotated[bool, typer.Option("--bitcoin", help="Evidence: Bitcoin anchor.")] = False,
    metadata: Annotated[str | None, typer.Option(help="metadata as a JSON object.")] = None,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="Follow the flow until it ends (a worker must be running)."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Submit a DocumentJob: the orchestrator takes the document through its steps."""
    if source is not None:
        if document is not None:
            raise fail("give either a DocumentJob file or --document flags, not both")
        text = sys.stdin.read() if source == "-" else _read_file(source)
        body = guard(lambda: strict_loads(text, field="DocumentJob"))
    else:
        actions = {
            "protect": protect,
            "nda": nda,
            "sign_owner": sign_owner,
            "sign_workflow": sign_workflow,
        }
        forensic = {"tsa": tsa, "polygon": polygon, "bitcoin": bitcoin}
        body = guard(lambda: _intent_from_flags(document, actions, forensic, metadata))
    from ecosign_orchestrator import ecosign

    intent = guard(lambda: ecosign.DocumentJob.model_validate(body))

    async def action(b: Target) -> int:
        job, created = await b.submit(intent)
        if as_json and not wait:
            emit_json({"created": created, "job": job.to_json()})
            return 0
        verb = "submitted" if created else "already submitted (same document and intent)"
        console.print(f"{verb}: flow [bold]{job.id}[/] ({job.status.value})")
        if not wait:
            return 0
        async for event in b.follow(job.id, 0):
            if not as_json:
                summary = render.event_summary(event)
                console.print(f"  {event.type.value:<14} {summary}", highlight=False)
        final = await b.get(job.id)
        if as_json:
            emit_json(final.to_json())
        else:
            console.print(render.job_detail(final))
        return 0 if final.status.value == "completed" else 1

    raise typer.Exit(run_remote_aware(with_target(action, registry=True)))


def _read_file(path: str) -> str:
    try:
        return Path(path).read_text("utf-8")
    except OSError as exc:
        raise fail(f"{path}: {exc.strerror}") from None


@sandbox_app.command("serve")
def sandbox_serve(
    host: Annotated[str, typer.Option(help="Interface (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 54321,
    service_key: Annotated[
        str, typer.Option(envvar="ECOSIGN_SANDBOX_SERVICE_KEY", help="Key the sandbox accepts.")
    ] = DEFAULT_SANDBOX_KEY,
    db: Annotated[Path | None, typer.Option(help="Persist documents in this SQLite file.")] = None,
    polygon_confirm: Annotated[
        float, typer.Option(help="Seconds until a Polygon anchor confirms (-1: never).")
    ] = 2.0,
    bitcoin_confirm: Annotated[
        float, typer.Option(help="Seconds until a Bitcoin anchor confirms (-1: never).")
    ] = 5.0,
    faults: Annotated[
        str | None, typer.Option(help='Faults JSON: {"run-tsa": {"rate": 0.3, "statuses": [503]}}.')
    ] = None,
) -> None:
    """Run the sandbox alone (Edge Functions + REST + admin API) in the foreground."""
    from ecosign_orchestrator import sandbox

    plan = sandbox.FaultPlan()
    if faults:
        specs = guard(lambda: strict_loads(faults, field="--faults"))
        try:
            for name, spec in specs.items():
                plan.set(name, sandbox.Fault.from_json(spec))
        except (TypeError, ValueError, AttributeError) as exc:
            raise fail(f"--faults: {exc}") from None
    timing = sandbox.AnchorTiming(
        polygon=None if polygon_confirm < 0 else polygon_confirm,
        bitcoin=None if bitcoin_confirm < 0 else bitcoin_confirm,
    )
    store = sandbox.Store(db)
    try:
        application = sandbox.create_app(service_key, store=store, faults=plan, timing=timing)
    except ValueError as exc:
        raise fail(str(exc)) from None
    url = f"http://{host}:{port}"
    console.print(
        f"sandbox on {url}\n"
        f"  export EDGE_BASE_URL={url} SUPABASE_URL={url}\n"
        "  export ECOSIGN_ORCH_SERVICE_KEY=<the key given with --service-key>\n"
        f"  create a document: curl -X POST {url}/admin/documents "
        "-H 'Authorization: Bearer <key>' -d '{}'"
    )
    sandbox.serve(application, host=host, port=port)
