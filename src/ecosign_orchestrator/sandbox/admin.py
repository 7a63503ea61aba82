"""The sandbox's admin API (service key): documents, the call ledger, faults, timing, anchors.

Not part of EcoSign: it is how tests, the demo and ``dev`` set up documents and misbehaviour.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ecosign_orchestrator.sandbox.faults import Fault
from ecosign_orchestrator.sandbox.functions import HANDLERS
from ecosign_orchestrator.sandbox.requests import REQUEST_KIND, request_event, request_payload
from ecosign_orchestrator.sandbox.state import key_matches, sandbox_of
from ecosign_orchestrator.sandbox.store import EventRejected, new_document


def _admin_auth(request: Request) -> Response | None:
    sandbox = sandbox_of(request)
    token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not key_matches(token, sandbox.service_key):
        return JSONResponse({"error": "Forbidden"}, status_code=403)
    return None


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"{}")
    except ValueError:
        return None


async def _admin_object(request: Request) -> dict[str, Any] | Response:
    """The admin request's JSON object body (a ``Response``: refused, send it)."""
    denied = _admin_auth(request)
    if denied is not None:
        return denied
    body = await _json_body(request)
    if not isinstance(body, dict):
        return JSONResponse({"error": "body must be an object"}, status_code=400)
    return body


def _request_options(spec: Any, default_shape: str) -> dict[str, Any]:
    """The options of one protection request (``requests.request_payload``), checked."""
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise ValueError("request must be an object")
    unknown = set(spec) - REQUEST_OPTIONS
    if unknown:
        raise ValueError(f"unknown request options: {', '.join(sorted(unknown))}")
    return {"shape": default_shape, **spec}


#: What a caller may say about a protection request the sandbox writes.
REQUEST_OPTIONS = frozenset(
    {"shape", "evidence", "signature_flow", "anchor_stage", "step_index", "witness_hash"}
)


async def admin_documents(request: Request) -> Response:
    """``POST /admin/documents``: create a document (fields override EcoSign's defaults).

    Unless ``"protect_requested": false``, its ledger starts with the protection request EcoSign's
    ``record-protection-event`` writes (``anchor_stage: "initial"``, ``step_index: 0`` and the
    evidence of the owner's plan), in the sandbox's request shape or the one named by
    ``"request": {"shape": "protection-details", "evidence": ["tsa"], ...}``.
    ``"events": [...]`` seeds the ledger as-is.
    """
    body = await _admin_object(request)
    if isinstance(body, Response):
        return body
    sandbox = sandbox_of(request)
    protect = bool(body.pop("protect_requested", True))
    try:
        options = _request_options(body.pop("request", None), sandbox.request_shape)
        doc = new_document(**body)
        if protect and not any(e.get("kind") == REQUEST_KIND for e in doc["events"]):
            payload = request_payload(doc, **options)
            event = request_event(payload, at=doc["created_at"], source="record-protection-event")
            doc["events"].insert(0, event)
    except (TypeError, ValueError) as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse(sandbox.store.put(doc), status_code=201)


async def admin_requests(request: Request) -> Response:
    """``POST /admin/documents/{id}/requests``: record one more protection request, as a
    signature flow does for a later stage: ``{"signature_flow": true, "anchor_stage": "final",
    "step_index": 2, "witness_hash": "..."}`` (the ledger's rules apply)."""
    denied = _admin_auth(request)
    if denied is not None:
        return denied
    sandbox = sandbox_of(request)
    doc = sandbox.store.get(request.path_params["doc_id"])
    if doc is None:
        return JSONResponse({"error": "not found"}, status_code=404)
    try:
        options = _request_options(await _json_body(request), sandbox.request_shape)
        payload = request_payload(doc, **options)
    except (TypeError, ValueError) as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    event = {"kind": REQUEST_KIND, "payload": payload}
    try:
        sandbox.store.append_event(doc["id"], event, "record-protection-event")
    except EventRejected as exc:
        return JSONResponse({"error": str(exc)}, status_code=409)
    return JSONResponse(sandbox.store.get(doc["id"]), status_code=201)


async def admin_document(request: Request) -> Response:
    """``GET /admin/documents/{id}``."""
    denied = _admin_auth(request)
    if denied is not None:
        return denied
    doc = sandbox_of(request).store.get(request.path_params["doc_id"])
    return JSONResponse(doc) if doc else JSONResponse({"error": "not found"}, status_code=404)


async def admin_ledger(request: Request) -> Response:
    """``GET /admin/ledger[?document_entity_id=...]``: calls and effects per idempotency key."""
    denied = _admin_auth(request)
    if denied is not None:
        return denied
    doc_id = request.query_params.get("document_entity_id")
    return JSONResponse(sandbox_of(request).store.ledger_summary(doc_id))


async def admin_faults(request: Request) -> Response:
    """``GET|PUT /admin/faults``: ``{"run-tsa": {"rate": 0.3, "statuses": [503]}, "x": null}``."""
    denied = _admin_auth(request)
    if denied is not None:
        return denied
    faults = sandbox_of(request).faults
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
            known = ", ".join(sorted(HANDLERS))
            return JSONResponse(
                {"error": f"unknown function {', '.join(sorted(unknown))} (known: {known})"},
                status_code=400,
            )
        for name, fault in parsed.items():
            faults.set(name, fault)
    return JSONResponse({name: f.to_json() for name, f in faults.faults.items()})


async def admin_timing(request: Request) -> Response:
    """``PUT /admin/timing``: ``{"polygon": 1.0, "bitcoin": null}`` (seconds; null = never)."""
    denied = _admin_auth(request)
    if denied is not None:
        return denied
    timing = sandbox_of(request).functions.timing
    body = await _json_body(request)
    if request.method == "PUT" and isinstance(body, dict):
        for network in ("polygon", "bitcoin"):
            if network in body:
                setattr(timing, network, body[network])
    return JSONResponse(dataclasses.asdict(timing))


async def _anchor_action(request: Request, verb: str) -> Response:
    """``{"witness_hash": ..., "network": ...}`` -> ``{verb: bool}`` after the confirmer's act."""
    body = await _admin_object(request)
    if isinstance(body, Response):
        return body
    functions = sandbox_of(request).functions
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
    sandbox = sandbox_of(request)
    sandbox.store.reset()
    sandbox.faults.faults.clear()
    return JSONResponse({"reset": True})


#: The admin routes, for ``create_app``.
ROUTES = [
    Route("/admin/documents", admin_documents, methods=["POST"]),
    Route("/admin/documents/{doc_id}", admin_document, methods=["GET"]),
    Route("/admin/documents/{doc_id}/requests", admin_requests, methods=["POST"]),
    Route("/admin/ledger", admin_ledger, methods=["GET"]),
    Route("/admin/faults", admin_faults, methods=["GET", "PUT"]),
    Route("/admin/timing", admin_timing, methods=["GET", "PUT"]),
    Route("/admin/anchors/confirm", admin_confirm, methods=["POST"]),
    Route("/admin/anchors/timeout", admin_timeout, methods=["POST"]),
    Route("/admin/reset", admin_reset, methods=["POST"]),
]
