"""EcoSign's REST endpoint for ``document_entities``, as PostgREST answers it.

``GET|PATCH /rest/v1/document_entities?id=eq.<uuid>`` with ``apikey`` (a single object with
``Accept: application/vnd.pgrst.object+json``: a missing row is a 406 ``PGRST116``), and the listing
a reconciliation scan reads (``id=gt.``, ``events=cs.[...]``, ``order=id``, ``limit``).
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ecosign_orchestrator.sandbox.state import Sandbox, key_matches, sandbox_of
from ecosign_orchestrator.sandbox.store import LIFECYCLE_STATUSES

OBJECT_MEDIA = "application/vnd.pgrst.object+json"
_EQ = re.compile(r"^eq\.(.+)$")


def _pgrst_error(status: int, code: str, message: str, details: str | None = None) -> JSONResponse:
    return JSONResponse(
        {"code": code, "details": details, "hint": None, "message": message}, status_code=status
    )


def _rest_auth(request: Request, sandbox: Sandbox) -> Response | None:
    apikey = request.headers.get("apikey")
    if apikey is None:
        return _pgrst_error(401, "PGRST302", "Anonymous access is disabled")
    if not key_matches(apikey, sandbox.service_key):
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
    sandbox = sandbox_of(request)
    denied = _rest_auth(request, sandbox)
    if denied is not None:
        return denied
    if request.method == "GET" and not _EQ.match(request.query_params.get("id") or ""):
        sandbox.store.count_rest(request.method, None)
        return await _list_documents(request, sandbox)
    doc_id = _filter_id(request)
    if isinstance(doc_id, Response):
        return doc_id
    sandbox.store.count_rest(request.method, doc_id)
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
