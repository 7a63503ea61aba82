"""The sandbox HTTP server: EcoSign's Edge Functions and REST endpoint, plus an admin API.

Same paths, auth headers, status codes and body shapes as Supabase (``supabase-http.md``):
``POST /functions/v1/{name}`` with ``Authorization: Bearer <service key>`` (this module), and
``GET|PATCH /rest/v1/document_entities?id=eq.<uuid>`` with ``apikey`` (``rest.py``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ecosign_orchestrator.sandbox import admin, rest
from ecosign_orchestrator.sandbox.faults import Fault, FaultPlan
from ecosign_orchestrator.sandbox.functions import HANDLERS, AnchorTiming, Functions
from ecosign_orchestrator.sandbox.requests import DEFAULT_SHAPE, SHAPES
from ecosign_orchestrator.sandbox.state import Sandbox, key_matches, sandbox_of
from ecosign_orchestrator.sandbox.store import Store

_PLATFORM_CODES = {503: "BOOT_ERROR", 504: "IDLE_TIMEOUT", 546: "WORKER_LIMIT"}


#: Functions EcoSign runs from cron: they check ``x-cron-secret`` besides the service key.
CRON_FUNCTIONS = frozenset({"notify-artifact-ready"})


def _cron_secret_check(request: Request, sandbox: Sandbox, name: str) -> Response | None:
    """403 without the right ``x-cron-secret``, as the real cron functions answer."""
    if sandbox.cron_secret is None or name not in CRON_FUNCTIONS:
        return None
    if not key_matches(request.headers.get("x-cron-secret", ""), sandbox.cron_secret):
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
    if not key_matches(token or request.headers.get("apikey", ""), sandbox.service_key):
        return JSONResponse({"error": "Forbidden"}, status_code=403)
    return None


async def function_endpoint(request: Request) -> Response:
    """``/functions/v1/{name}``."""
    sandbox = sandbox_of(request)
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
        return _fault_response(fault, status, headers)
    code, payload, effect = await asyncio.to_thread(handler, sandbox.functions, body)
    sandbox.store.record_call(name, key, doc_id, code, effect=effect, traceparent=trace)
    return JSONResponse(payload, status_code=code)


def _fault_response(fault: Fault, status: int, request_headers: Mapping[str, str]) -> Response:
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = f"{fault.retry_after:g}"
    if status in _PLATFORM_CODES:
        headers["sb-error-code"] = _PLATFORM_CODES[status]
    if status == 204:
        return Response(status_code=204, headers=headers)
    body = fault.body or {"success": False, "error": "injected_fault"}
    if fault.echo_headers:  # a careless function that repeats what it was sent in its error
        sent = "; ".join(f"{k}: {v}" for k, v in request_headers.items())
        body = {**body, "error": f"{body.get('error', 'rejected')} (request headers: {sent})"}
    return JSONResponse(body, status_code=status, headers=headers)


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
    request_shape: str = DEFAULT_SHAPE,
) -> Starlette:
    """The sandbox application (``cron_secret``: ``notify-artifact-ready`` demands it in
    ``x-cron-secret``, like EcoSign's; ``request_shape``: which of EcoSign's protection request
    shapes new documents get, ``sandbox.requests.SHAPES``)."""
    if len(service_key) < 8:
        raise ValueError("the sandbox service key must be at least 8 characters")
    if request_shape not in SHAPES:
        raise ValueError(f"request shape must be one of {', '.join(SHAPES)}")
    store = store or Store()
    app = Starlette(
        routes=[
            Route("/functions/v1/{name}", function_endpoint, methods=ALL_METHODS),
            Route("/rest/v1/document_entities", rest.rest_documents, methods=["GET", "PATCH"]),
            *admin.ROUTES,
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
    app.state.sandbox = Sandbox(
        service_key=service_key,
        store=store,
        faults=faults or FaultPlan(),
        functions=Functions(store, timing),
        cron_secret=cron_secret,
        request_shape=request_shape,
    )
    return app
