"""The sandbox from the command line: ``sandbox serve`` runs one; ``new-document``, ``faults``,
``timing`` and ``confirm`` drive a running one through its admin API (``sandbox_admin``), by
default the one ``dev`` started (``source .ecosign-orchestrator/dev.env`` sets ``EDGE_BASE_URL``
and ``ECOSIGN_ORCH_SERVICE_KEY``)."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ecosign_orchestrator.service.cli.common import (
    app,
    console,
    emit_json,
    example,
    fail,
    guard,
    run,
)
from ecosign_orchestrator.service.jsonio import strict_loads
from ecosign_orchestrator.service.tables import Column, fitted

if TYPE_CHECKING:  # httpx only when a sandbox is driven
    from ecosign_orchestrator.service.sandbox_admin import SandboxAdmin

sandbox_app = typer.Typer(
    help="The local stand-in for EcoSign's Edge Functions: run one, or drive the running one "
    "(the one dev started, after source .ecosign-orchestrator/dev.env): documents, faults, "
    "anchor timing and confirmations.",
    no_args_is_help=True,
)
app.add_typer(sandbox_app, name="sandbox")

DEFAULT_SANDBOX_KEY = "sandbox-service-key"

UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url", metavar="URL", envvar="EDGE_BASE_URL", help="The sandbox (EDGE_BASE_URL)."
    ),
]
KeyOpt = Annotated[
    str | None,
    typer.Option(
        "--service-key",
        metavar="KEY",
        envvar="ECOSIGN_ORCH_SERVICE_KEY",
        help="Its service key (ECOSIGN_ORCH_SERVICE_KEY).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _admin(url: str | None, service_key: str | None) -> SandboxAdmin:
    if not url or not service_key:
        raise fail(
            "give --url and --service-key (or EDGE_BASE_URL and ECOSIGN_ORCH_SERVICE_KEY: "
            "source .ecosign-orchestrator/dev.env sets both for the sandbox dev runs)"
        )
    from ecosign_orchestrator.service.sandbox_admin import SandboxAdmin

    return SandboxAdmin(url, service_key)


class RequestShape(enum.StrEnum):
    """The protection request shapes EcoSign has written (``sandbox.requests.SHAPES``; kept
    here so that ``--help`` does not import the sandbox)."""

    REQUIRED_EVIDENCE = "required-evidence"
    PROTECTION_DETAILS = "protection-details"


@sandbox_app.command(
    "serve",
    epilog=example(
        "ecosign-orchestrator sandbox serve --port 54321 --service-key local-dev-key",
        'ecosign-orchestrator sandbox serve --faults \'{"run-tsa": {"rate": 0.3}}\'',
    ),
)
def sandbox_serve(
    host: Annotated[
        str, typer.Option(metavar="HOST", help="Interface (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, metavar="PORT")] = 54321,
    service_key: Annotated[
        str,
        typer.Option(
            envvar="ECOSIGN_SANDBOX_SERVICE_KEY", metavar="KEY", help="Key the sandbox accepts."
        ),
    ] = DEFAULT_SANDBOX_KEY,
    db: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Persist documents in this SQLite file.")
    ] = None,
    polygon_confirm: Annotated[
        float,
        typer.Option(metavar="SECONDS", help="Until a Polygon anchor confirms (-1: never)."),
    ] = 2.0,
    bitcoin_confirm: Annotated[
        float,
        typer.Option(metavar="SECONDS", help="Until a Bitcoin anchor confirms (-1: never)."),
    ] = 5.0,
    faults: Annotated[
        str | None,
        typer.Option(metavar="JSON", help='Faults per function, e.g. {"run-tsa": {"rate": 0.3}}.'),
    ] = None,
    cron_secret: Annotated[
        str | None,
        typer.Option(
            envvar="ECOSIGN_SANDBOX_CRON_SECRET",
            metavar="SECRET",
            help="notify-artifact-ready demands it in x-cron-secret, like EcoSign's.",
        ),
    ] = None,
    request_shape: Annotated[
        RequestShape,
        typer.Option(
            envvar="ECOSIGN_SANDBOX_REQUEST_SHAPE",
            help="Which of EcoSign's protection request shapes new documents get.",
        ),
    ] = RequestShape.REQUIRED_EVIDENCE,
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
        application = sandbox.create_app(
            service_key,
            store=store,
            faults=plan,
            timing=timing,
            cron_secret=cron_secret,
            request_shape=request_shape.value,
        )
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


@sandbox_app.command(
    "new-document",
    epilog=example(
        "DOC=$(ecosign-orchestrator sandbox new-document)",
        'ecosign-orchestrator submit --document "$DOC" --nda --wait',
    ),
)
def sandbox_new_document(
    url: UrlOpt = None,
    service_key: KeyOpt = None,
    request_shape: Annotated[
        RequestShape | None,
        typer.Option(
            help="The shape of its protection request (default: the sandbox's): "
            "required-evidence (flow_type + required_evidence) or protection-details "
            "(EcoSign's newest: no flow_type, evidence in protection_details).",
        ),
    ] = None,
) -> None:
    """Create a document in a running sandbox and print its id (a document_entity_id).

    Its ledger starts with the protection request EcoSign writes (anchor_stage "initial",
    step_index 0). In production the id is that of EcoSign's document_entities row the CTA
    acts on.
    """
    admin = _admin(url, service_key)
    shape = None if request_shape is None else request_shape.value
    typer.echo(run(lambda: admin.create_document(shape)))


def _faults_table(faults: dict[str, Any]) -> Any:
    columns = [
        Column("function", keep=100),
        Column("fails", keep=90),
        Column("with", keep=80),
        Column("latency", keep=40),
        Column("retry-after", keep=30),
        Column("documents", keep=20, flex=True, min_width=12),
    ]
    rows = []
    for name, fault in sorted(faults.items()):
        fails = f"{fault['rate']:.0%}"
        if fault["fail_next"]:
            fails = f"next {fault['fail_next']}, then {fails}"
        if fault["hang_rate"]:
            fails += f"; {fault['hang_rate']:.0%} hang {fault['hang']:g}s"
        rows.append(
            [
                name,
                fails,
                ",".join(str(s) for s in fault["statuses"]),
                f"{fault['latency']:g}s" if fault["latency"] else "",
                "" if fault["retry_after"] is None else f"{fault['retry_after']:g}s",
                ", ".join(fault["documents"] or []) or "all",
            ]
        )
    return fitted(columns, rows, width=console.width, title="Sandbox faults")


@sandbox_app.command(
    "faults",
    epilog=example(
        "ecosign-orchestrator sandbox faults                               # what is set",
        "ecosign-orchestrator sandbox faults run-tsa --rate 0.5 --status 503",
        "ecosign-orchestrator sandbox faults submit-anchor-bitcoin --fail-next 3 --retry-after 5",
        "ecosign-orchestrator sandbox faults run-tsa --clear",
        "ecosign-orchestrator sandbox faults --clear                       # every one",
    ),
)
def sandbox_faults(
    function: Annotated[
        str | None,
        typer.Argument(
            metavar="FUNCTION", help="An Edge Function, e.g. run-tsa.", show_default=False
        ),
    ] = None,
    rate: Annotated[
        float, typer.Option(min=0, max=1, metavar="P", help="Share of calls that fail (0..1).")
    ] = 0.0,
    status: Annotated[
        list[int] | None,
        typer.Option(min=100, max=599, metavar="CODE", help="Status to fail with (repeatable)."),
    ] = None,
    fail_next: Annotated[
        int, typer.Option(min=0, metavar="N", help="Fail the next N calls whatever the rate.")
    ] = 0,
    latency: Annotated[
        float, typer.Option(min=0, metavar="SECONDS", help="Added to every call.")
    ] = 0.0,
    hang_rate: Annotated[
        float,
        typer.Option(min=0, max=1, metavar="P", help="Share of calls that hang, then answer 504."),
    ] = 0.0,
    hang: Annotated[
        float, typer.Option(min=0, metavar="SECONDS", help="How long a hanging call hangs.")
    ] = 0.0,
    retry_after: Annotated[
        float | None,
        typer.Option(min=0, metavar="SECONDS", help="Retry-After sent with each failure."),
    ] = None,
    document: Annotated[
        list[str] | None,
        typer.Option(metavar="UUID", help="Only calls for this document fail (repeatable)."),
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Remove FUNCTION's fault (or every fault).")
    ] = False,
    url: UrlOpt = None,
    service_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make the sandbox's Edge Functions fail: show the faults, set one function's, or clear.

    A fault applies to calls from now on: a share of them (--rate) or the next N (--fail-next)
    answer one of the --status codes, optionally after a delay or with Retry-After.
    """
    admin = _admin(url, service_key)
    shaping = bool(rate or status or fail_next or latency or hang_rate or hang or document)
    shaping = shaping or retry_after is not None
    if function is None and shaping:
        raise fail("name the FUNCTION the options apply to (e.g. run-tsa)")
    if clear and shaping:
        raise fail("--clear removes a fault: give it alone, without fault options")

    async def go() -> dict[str, Any]:
        if clear:
            names = [function] if function else list(await admin.faults())
            return await admin.faults(dict.fromkeys(names))
        if function is None:
            return await admin.faults()
        fault = {
            "rate": rate,
            "statuses": status or [500],
            "fail_next": fail_next,
            "latency": latency,
            "hang_rate": hang_rate,
            "hang": hang,
            "retry_after": retry_after,
            "documents": document or None,
        }
        if not shaping:
            raise fail(f"give what {function} should do (--rate, --fail-next, ...) or --clear")
        return await admin.faults({function: fault})

    faults = run(go)
    if as_json:
        emit_json(faults)
    elif faults:
        console.print(_faults_table(faults))
    else:
        console.print("no faults: every function answers normally")


def _seconds_or_never(option: str, value: str | None) -> float | None:
    text = (value or "").strip().lower()
    if text == "never":
        return None
    try:
        seconds = float(text)
    except ValueError:
        raise fail(f"{option}: give seconds (e.g. 5) or never, not {value!r}") from None
    if not 0 <= seconds <= 86_400 * 30:
        raise fail(f"{option}: must be between 0 and 2592000 seconds, or never")
    return seconds


@sandbox_app.command(
    "timing",
    epilog=example(
        "ecosign-orchestrator sandbox timing",
        "ecosign-orchestrator sandbox timing --bitcoin never      # flows wait for bitcoin",
        "ecosign-orchestrator sandbox timing --polygon 2 --bitcoin 30",
    ),
)
def sandbox_timing(
    polygon: Annotated[
        str | None,
        typer.Option(metavar="SECONDS|never", help="Until a new Polygon anchor confirms."),
    ] = None,
    bitcoin: Annotated[
        str | None,
        typer.Option(metavar="SECONDS|never", help="Until a new Bitcoin anchor confirms."),
    ] = None,
    url: UrlOpt = None,
    service_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show or set how long the sandbox takes to confirm an anchor (never: it stays pending
    until sandbox confirm, or the flow's deadline)."""
    admin = _admin(url, service_key)
    changes: dict[str, float | None] = {}
    if polygon is not None:
        changes["polygon"] = _seconds_or_never("--polygon", polygon)
    if bitcoin is not None:
        changes["bitcoin"] = _seconds_or_never("--bitcoin", bitcoin)
    timing = run(lambda: admin.timing(changes or None))
    if as_json:
        emit_json(timing)
        return
    for network in ("polygon", "bitcoin"):
        seconds = timing.get(network)
        after = "never (until sandbox confirm)" if seconds is None else f"after {seconds:g}s"
        console.print(f"{network:<8} anchors confirm {after}", highlight=False)


class Network(enum.StrEnum):
    """The networks a document is anchored on."""

    POLYGON = "polygon"
    BITCOIN = "bitcoin"


@sandbox_app.command(
    "confirm",
    epilog=example(
        'ecosign-orchestrator sandbox confirm "$ECOSIGN_DEV_DOCUMENT" --network bitcoin',
        'ecosign-orchestrator sandbox confirm "$DOC" --network polygon --give-up',
    ),
)
def sandbox_confirm(
    document: Annotated[
        str, typer.Argument(metavar="DOCUMENT", help="The document's id.", show_default=False)
    ],
    network: Annotated[Network, typer.Option(help="The anchor's network.")] = Network.BITCOIN,
    give_up: Annotated[
        bool,
        typer.Option(
            "--give-up", help="Give up on it instead (anchor.timeout, as EcoSign's confirmer)."
        ),
    ] = False,
    url: UrlOpt = None,
    service_key: KeyOpt = None,
) -> None:
    """Confirm the document's pending anchor now, as EcoSign's confirmer would (or give up on
    it); a waiting flow sees it at its next check."""
    admin = _admin(url, service_key)
    settled = run(lambda: admin.settle_anchor(document, network.value, give_up=give_up))
    if not settled:
        raise fail(f"no pending {network.value} anchor for document {document}")
    verb = "gave up on" if give_up else "confirmed"
    console.print(f"{verb} the {network.value} anchor of document {document}", highlight=False)
