"""The sandbox HTTP server: EcoSign's Edge Functions and REST endpoint, plus an admin API.

Same paths, auth headers, status codes and body shapes as Supabase (``supabase-http.md``):
``POST /functions/v1/{name}`` with ``Authorization: Bearer <service key>``, and
``GET|PATCH /rest/v1/document_entities?id=eq.<uuid>`` with ``apikey``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ecosign_orchestrator.sandbox.faults import Fault, FaultPlan
from ecosign_orchestrator.sandbox.functions import HANDLERS, AnchorTiming, Functions
from ecosign_orchestrator.sandbox.store import LIFECYCLE_STATUSES, Store, new_document

OBJECT_MEDIA = "application/vnd.pgrst.object+json"
_EQ = re.compile(r"^eq\.(.+)$")
_PLATFORM_CODES = {503: "BOOT_ERROR", 504: "IDLE_TIMEOUT", 546: "WORKER_LIMIT"}


@dataclasses.dataclass(slots=True)
class Sandbox:
    """Everything the server holds."""

    service_key: str
    store: Store
    faults: FaultPlan
    functions: Functions
    #: What the real ``notify-artifact-ready`` demands in ``x-cron-secret`` (None: not checked).
    cron_secret: str | None = None


def _pgrst_error(status: int, code: str, message: str, details: str | None = None) -> JSONResponse:
    return JSONResponse(
        {"code": code, "details": details, "hint": None, "message": message}, status_code=status
    )


def _sandbox(request: Request) -> Sandbox:
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox


def _key_matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


#: Functions EcoSign runs from cron: they check ``x-cron-secret`` besides the service key.
CRON_FUNCTIONS = frozenset({"notify-artifact-ready"})


def _cron_secret_check(request: Request, sandbox: Sandbox, name: str) -> Response | None:
    """403 without the right ``x-cron-secret``, as the real cron functions answer."""
    if sandbox.cron_secret is None or name not in CRON_FUNCTIONS:
        return None
    if not _key_matches(request.headers.get("x-cron-secret", ""), sandbox.cron_secret):
        return JSONResponse({"error": "Forbidden"}, status_code=403)
    return None


def _function_auth(request: Request, sandbox: Sandbox) -> Response | None:
    header = request.headers.get("authorization")
    if header is None and request.headers.get("apikey") is None:
        return JSONResponse(
            {"code": 401, "message": "Missing authorization header"},
            status_code=401,
            headers={"sb-error-code": "UNAUTHORIZED_NO_AUTH_HEADER"},
        )
    scheme, _, token = (header or "").partition(" ")
    if header is not None and (scheme.lower() != "bearer" or not token):
        return JSONResponse(
            {"code": 401, "message": "Invalid JWT"},
            status_code=401,
            headers={"sb-error-code": "UNAUTHORIZED_INVALID_JWT_FORMAT"},
        )
    if not _key_matches(token or request.headers.get("apikey", ""), sandbox.service_key):
        return JSONResponse({"error": "Forbidden"}, status_code=403)
    return None


async def function_endpoint(request: Request) -> Response:
    """``/functions/v1/{name}``."""
    sandbox = _sandbox(request)
    name = request.path_params["name"]
    handler = HANDLERS.get(name)
    if handler is None:
        return JSONResponse(
            {"code": "NOT_FOUND", "message": "Requested function was not found"},
            status_code=404,
            headers={"sb-error-code": "NOT_FOUND"},
        )
    if request.method == "OPTIONS":
        return Response(status_code=204)
    if request.method != "POST":
        return JSONResponse({"error": "Method not allowed"}, status_code=405)
    denied = _function_auth(request, sandbox) or _cron_secret_check(request, sandbox, name)
    if denied is not None:
        return denied
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return JSONResponse({"success": False, "error": "invalid JSON body"}, status_code=400)
    if not isinstance(body, dict):
        return JSONResponse({"success": False, "error": "body must be an object"}, status_code=400)
    key = request.headers.get("idempotency-key")
    doc_id = (
        body.get("document_entity_id") if isinstance(body.get("document_entity_id"), str) else None
    )
    sandbox.store.call_began(name)
    try:
        return await _serve_call(sandbox, name, body, key, doc_id, request.headers)
    finally:
        sandbox.store.call_ended(name)


async def _serve_call(
    sandbox: Sandbox,
    name: str,
    body: dict[str, Any],
    key: str | None,
    doc_id: str | None,
    headers: Mapping[str, str],
) -> Response:
    handler = HANDLERS[name]
    trace = headers.get("traceparent")
    fault, status = sandbox.faults.draw(name, doc_id)
    if fault is not None and fault.latency:
        await asyncio.sleep(fault.latency)
    if fault is not None and status is not None:
        if fault.hang:
            await asyncio.sleep(fault.hang)
        sandbox.store.record_call(name, key, doc_id, status, effect=False, traceparent=trace)
        return _fault_response(fault, status)
    code, payload, effect = await asyncio.to_thread(handler, sandbox.functions, body)
    sandbox.store.record_call(name, key, doc_id, code, effect=effect, traceparent=trace)
    return JSONResponse(payload, status_code=code)


def _fault_response(fault: Fault, status: int) -> Response:
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = f"{fault.retry_after:g}"
    if status in _PLATFORM_CODES:
        headers["sb-error-code"] = _PLATFORM_CODES[status]
    if status == 204:
        return Response(status_code=204, headers=headers)
    body = fault.body or {"success": False, "error": "injected_fault"}
    return JSONResponse(body, status_code=status, headers=headers)


def _rest_auth(request: Request, sandbox: Sandbox) -> Response | None:
    apikey = request.headers.get("apikey")
    if apikey is None:
        return _pgrst_error(401, "PGRST302", "Anonymous access is disabled")
    if not _key_matches(apikey, sandbox.service_key):
        return _pgrst_error(401, "PGRST301", "JWT invalid")
    return None


def _filter_id(request: Request) -> str | Response:
    raw = request.query_params.get("id")
    match = _EQ.match(raw or "")
    if match is None:
        return _pgrst_error(400, "PGRST100", "failed to parse filter (id)", f"id={raw}")
    try:
        return str(uuid.UUID(match.group(1)))
    except ValueError:
        return _pgrst_error(400, "22P02", f'invalid input syntax for type uuid: "{match.group(1)}"')


def _select(doc: dict[str, Any], select: str | None) -> dict[str, Any] | Response:
    if not select or select == "*":
        return doc
    columns = [c.strip() for c in select.split(",") if c.strip()]
    unknown = [c for c in columns if c not in doc]
    if unknown:
        return _pgrst_error(400, "42703", f"column document_entities.{unknown[0]} does not exist")
    return {c: doc[c] for c in columns}


async def rest_documents(request: Request) -> Response:
    """``GET|PATCH /rest/v1/document_entities?id=eq.<uuid>``, and a listing ``GET`` (``id=gt.``,
    ``events=cs.[...]``, ``order=id``, ``limit``)."""
    sandbox = _sandbox(request)
    denied = _rest_auth(request, sandbox)
    if denied is not None:
        return denied
    if request.method == "GET" and not _EQ.match(request.query_params.get("id") or ""):
        return await _list_documents(request, sandbox)
    doc_id = _filter_id(request)
    if isinstance(doc_id, Response):
        return doc_id
    wants_object = OBJECT_MEDIA in request.headers.get("accept", "")
    matched = True
    if request.method == "PATCH":
        result = await _patch(request, sandbox, doc_id)
        if isinstance(result, Response):
            return result
        matched = result
    else:
        await asyncio.to_thread(sandbox.functions.settle, doc_id)
    doc = sandbox.store.get(doc_id)
    rows = [] if doc is None or not matched else [doc]
    if request.method == "PATCH" and "return=representation" not in request.headers.get(
        "prefer", ""
    ):
        if wants_object and not rows:
            return _not_single(0)
        return Response(status_code=204, headers={"Content-Range": f"0-{len(rows) - 1}/*"})
    selected = []
    for row in rows:
        picked = _select(row, request.query_params.get("select"))
        if isinstance(picked, Response):
            return picked
        selected.append(picked)
    if wants_object:
        if len(selected) != 1:
            return _not_single(len(selected))
        return Response(
            json.dumps(selected[0]), media_type=OBJECT_MEDIA, headers={"Content-Range": "0-0/*"}
        )
    return JSONResponse(selected, headers={"Content-Range": f"0-{len(selected) - 1}/*"})


async def _list_documents(request: Request, sandbox: Sandbox) -> Response:
    """The PostgREST listing a scan uses: rows after an id, whose ``events`` contain the given
    objects, in id order, at most ``limit``."""
    params = request.query_params
    after = params.get("id", "")
    if after and not after.startswith("gt."):
        return _pgrst_error(400, "PGRST100", "failed to parse filter (id)", f"id={after}")
    wanted: list[dict[str, Any]] = []
    contains = params.get("events")
    if contains is not None:
        try:
            wanted = json.loads(contains.removeprefix("cs."))
        except ValueError:
            return _pgrst_error(400, "PGRST100", "failed to parse filter (events)")
    try:
        limit = int(params.get("limit", "1000"))
    except ValueError:
        return _pgrst_error(400, "PGRST100", "failed to parse limit")
    rows = []
    for doc_id in sandbox.store.ids():
        if after and doc_id <= after.removeprefix("gt."):
            continue
        doc = sandbox.store.get(doc_id)
        if doc is None or not _contains(doc.get("events") or [], wanted):
            continue
        picked = _select(doc, params.get("select"))
        if isinstance(picked, Response):
            return picked
        rows.append(picked)
        if len(rows) >= limit:
            break
    return JSONResponse(rows, headers={"Content-Range": f"0-{len(rows) - 1}/*"})


def _contains(events: list[dict[str, Any]], wanted: list[dict[str, Any]]) -> bool:
    """``jsonb @>`` on arrays of objects: each wanted object is a subset of some element."""
    return all(
        any(all(event.get(k) == v for k, v in item.items()) for event in events) for item in wanted
    )


def _not_single(count: int) -> JSONResponse:
    return _pgrst_error(
        406,
        "PGRST116",
        "Cannot coerce the result to a single JSON object",
        f"The result contains {count} rows",
    )


def _matches_filters(request: Request, doc: dict[str, Any]) -> bool:
    """PostgREST's ``column=eq.value`` / ``column=is.null`` filters besides ``id`` (the ones a
    conditional write uses)."""
    for column, condition in request.query_params.items():
        if column in ("id", "select") or column not in doc:
            continue
        if condition == "is.null" and doc[column] is not None:
            return False
        if condition.startswith("eq.") and str(doc[column]) != condition[3:]:
            return False
    return True


async def _patch(request: Request, sandbox: Sandbox, doc_id: str) -> Response | bool:
    """Apply a PATCH; False when no row matched the filters (PostgREST: 200 ``[]``/204)."""
    try:
        changes = json.loads(await request.body())
    except ValueError:
        return _pgrst_error(400, "PGRST102", "Empty or invalid json")
    if not isinstance(changes, dict) or not changes:
        return _pgrst_error(400, "PGRST102", "Empty or invalid json")
    doc = sandbox.store.get(doc_id)
    if doc is None or not _matches_filters(request, doc):
        return False  # PostgREST answers 200 [] / 204 for no rows, never 404
    forbidden = {"id", "events", "owner_id"} & set(changes)
    if forbidden:
        return _pgrst_error(403, "42501", f"permission denied for column {sorted(forbidden)[0]}")
    status = changes.get("lifecycle_status")
    if status is not None and status not in LIFECYCLE_STATUSES:
        return _pgrst_error(
            400,
            "23514",
            'new row for relation "document_entities" violates check constraint '
            '"document_entities_lifecycle_status_check"',
        )
    sandbox.store.update(doc_id, **changes)
    return True


# -- admin -------------------------------------------------------------------------------------


def _admin_auth(request: Request) -> Response | None:
    sandbox = _sandbox(request)
    token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not _key_matches(token, sandbox.service_key):
        return JSONResponse({"error": "Forbidden"}, status_code=403)
    return None


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"{}")
    except ValueError:
        return None


async def admin_documents(request: Request) -> Response:
    """``POST /admin/documents``: create a document (fields override EcoSign's defaults).

    ``"protect_requested": true`` also appends the CTA's ``document.protected.requested`` event;
    ``"events": [...]`` seeds the ledger as-is.
    """
    denied = _admin_auth(request)
    if denied is not None:
        return denied
    body = await _json_body(request)
    if not isinstance(body, dict):
        return JSONResponse({"error": "body must be an object"}, status_code=400)
    protect = bool(body.pop("protect_requested", True))
    doc = new_document(**body)
    if protect and not any(e.get("kind") == "document.protected.requested" for e in doc["events"]):
        doc["events"].insert(
            0,
            {
                "id": str(uuid.uuid4()),
                "kind": "document.protected.requested",
                "at": doc["created_at"],
                "v": 1,
                "actor": "record-protection-event",
                "entity_id": doc["id"],
                "correlation_id": doc["id"],
                "payload": {"flow_type": "DIRECT_PROTECTION", "anchor_stage": "initial"},
            },
        )
    return JSONResponse(_sandbox(request).store.put(doc), status_code=201)


async def admin_document(request: Request) -> Response:
    """``GET /admin/documents/{id}``."""
    denied = _admin_auth(request)
    if denied is not None:
        return denied
    doc = _sandbox(request).store.get(request.path_params["doc_id"])
    return JSONResponse(doc) if doc else JSONResponse({"error": "not found"}, status_code=404)


async def admin_ledger(request: Request) -> Response:
    """``GET /admin/ledger[?document_entity_id=...]``: calls and effects per idempotency key."""
    denied = _admin_auth(request)
    if denied is not None:
        return denied
    doc_id = request.query_params.get("document_entity_id")
    return JSONResponse(_sandbox(request).store.ledger_summary(doc_id))


async def admin_faults(request: Request) -> Response:
    """``GET|PUT /admin/faults``: ``{"run-tsa": {"rate": 0.3, "statuses": [503]}, "x": null}``."""
    denied = _admin_auth(request)
    if denied is not None:
        return denied
    faults = _sandbox(request).faults
    if request.method == "PUT":
        body = await _json_body(request)
        if not isinstance(body, dict):
            return JSONResponse({"error": "body must be an object"}, status_code=400)
        try:
            parsed = {
                name: None if spec is None else Fault.from_json(spec) for name, spec in body.items()
            }
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        unknown = set(parsed) - set(HANDLERS)
        if unknown:
            return JSONResponse({"error": f"unknown functions: {sorted(unknown)}"}, status_code=400)
        for name, fault in parsed.items():
            faults.set(name, fault)
    return JSONResponse({name: f.to_json() for name, f in faults.faults.items()})


async def admin_timing(request: Request) -> Response:
    """``PUT /admin/timing``: ``{"polygon": 1.0, "bitcoin": null}`` (seconds; null = never)."""
    denied = _admin_auth(request)
    if denied is not None:
        return denied
    timing = _sandbox(request).functions.timing
    body = await _json_body(request)
    if request.method == "PUT" and isinstance(body, dict):
        for network in ("polygon", "bitcoin"):
            if network in body:
                setattr(timing, network, body[network])
    return JSONResponse(dataclasses.asdict(timing))


async def _anchor_action(request: Request, verb: str) -> Response:
    """``{"witness_hash": ..., "network": ...}`` -> ``{verb: bool}`` after the confirmer's act."""
    denied = _admin_auth(request)
    if denied is not None:
        return denied
    body = await _json_body(request)
    if not isinstance(body, dict):
        return JSONResponse({"error": "body must be an object"}, status_code=400)
    functions = _sandbox(request).functions
    act = functions.confirm if verb == "confirmed" else functions.give_up
    return JSONResponse({verb: act(str(body.get("witness_hash")), str(body.get("network")))})


async def admin_confirm(request: Request) -> Response:
    """``POST /admin/anchors/confirm``: the confirmer confirms that pending anchor now."""
    return await _anchor_action(request, "confirmed")


async def admin_timeout(request: Request) -> Response:
    """``POST /admin/anchors/timeout``: the confirmer gives up on that pending anchor now
    (``anchor.timeout``)."""
    return await _anchor_action(request, "timed_out")


async def admin_reset(request: Request) -> Response:
    """``POST /admin/reset``: forget documents, anchors, ledger and faults."""
    denied = _admin_auth(request)
    if denied is not None:
        return denied
    sandbox = _sandbox(request)
    sandbox.store.reset()
    sandbox.faults.faults.clear()
    return JSONResponse({"reset": True})


async def healthz(request: Request) -> Response:
    """Liveness."""
    return JSONResponse({"ok": True})


ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]


def create_app(
    service_key: str,
    *,
    store: Store | None = None,
    faults: FaultPlan | None = None,
    timing: AnchorTiming | None = None,
    cron_secret: str | None = None,
) -> Starlette:
    """The sandbox application (``cron_secret``: ``notify-artifact-ready`` demands it in
    ``x-cron-secret``, like EcoSign's)."""
    if len(service_key) < 8:
        raise ValueError("the sandbox service key must be at least 8 characters")
    store = store or Store()
    app = Starlette(
        routes=[
            Route("/functions/v1/{name}", function_endpoint, methods=ALL_METHODS),
            Route("/rest/v1/document_entities", rest_documents, methods=["GET", "PATCH"]),
            Route("/admin/documents", admin_documents, methods=["POST"]),
            Route("/admin/documents/{doc_id}", admin_document, methods=["GET"]),
            Route("/admin/ledger", admin_ledger, methods=["GET"]),
            Route("/admin/faults", admin_faults, methods=["GET", "PUT"]),
            Route("/admin/timing", admin_timing, methods=["GET", "PUT"]),
            Route("/admin/anchors/confirm", admin_confirm, methods=["POST"]),
            Route("/admin/anchors/timeout", admin_timeout, methods=["POST"]),
            Route("/admin/reset", admin_reset, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
    app.state.sandbox = Sandbox(
        service_key=service_key,
        store=store,
        faults=faults or FaultPlan(),
        functions=Functions(store, timing),
        cron_secret=cron_secret,
    )
    return app
