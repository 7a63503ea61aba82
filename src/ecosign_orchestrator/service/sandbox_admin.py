"""A client of the sandbox's admin API, for ``sandbox new-document|faults|timing|confirm`` and
``dev``.

The admin API is the sandbox's own (EcoSign has none): every method takes the service key as
``Authorization: Bearer <key>``. Over HTTP, so the commands work against any running sandbox:
the one ``dev`` starts (``source .ecosign-orchestrator/dev.env`` sets ``EDGE_BASE_URL`` and
``ECOSIGN_ORCH_SERVICE_KEY``) or one started with ``sandbox serve``.

========================================  =====================================================
``POST /admin/documents``                 create a document (with EcoSign's protection request)
``GET /admin/documents/{id}``             a document's row
``POST /admin/documents/{id}/requests``   one more protection request (a signature stage)
``GET /admin/ledger``                     calls and effects per idempotency key
``GET|PUT /admin/faults``                 faults per function (``null`` removes one)
``GET|PUT /admin/timing``                 seconds until an anchor confirms (``null``: never)
``POST /admin/anchors/confirm``           confirm a pending anchor now
``POST /admin/anchors/timeout``           give up on a pending anchor now
``POST /admin/reset``                     forget documents, anchors, ledger and faults
========================================  =====================================================
"""

from __future__ import annotations

from typing import Any

import httpx

from ecosign_orchestrator.core import errors


class SandboxAdmin:
    """The admin API of the sandbox at ``url`` (every call: ``Unavailable`` when unreachable,
    ``InvalidJob`` naming the field when the sandbox refuses what was asked)."""

    def __init__(self, url: str, key: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {key}"}
        self._timeout = timeout

    async def _call(self, method: str, path: str, body: Any = None, *, field: str = "") -> Any:
        try:
            async with httpx.AsyncClient(
                base_url=self.url, headers=self._headers, timeout=self._timeout
            ) as client:
                response = await client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise errors.Unavailable(f"the sandbox at {self.url} is unreachable: {exc}") from None
        if response.status_code == 403:
            raise errors.Unavailable(
                f"the sandbox at {self.url} refused the service key (ECOSIGN_ORCH_SERVICE_KEY)"
            )
        if response.status_code == 404:
            raise errors.InvalidJob(field or "path", "the sandbox has no such document")
        if response.status_code >= 400:
            try:
                reason = str(response.json().get("error", response.text))
            except ValueError:
                reason = response.text
            raise errors.InvalidJob(field or "body", reason)
        return response.json()

    async def create_document(self, request_shape: str | None = None) -> str:
        """A new document with EcoSign's protection request; its ``document_entity_id``."""
        body = {} if request_shape is None else {"request": {"shape": request_shape}}
        created = await self._call("POST", "/admin/documents", body)
        return str(created["id"])

    async def document(self, document_id: str) -> dict[str, Any]:
        """A document's row."""
        found: dict[str, Any] = await self._call(
            "GET", f"/admin/documents/{document_id}", field="document"
        )
        return found

    async def faults(self, changes: dict[str, Any] | None = None) -> dict[str, Any]:
        """The faults per function, after applying ``changes`` (a fault's fields, or None to
        remove it) when given."""
        if changes is None:
            current: dict[str, Any] = await self._call("GET", "/admin/faults")
            return current
        updated: dict[str, Any] = await self._call("PUT", "/admin/faults", changes, field="fault")
        return updated

    async def timing(self, changes: dict[str, float | None] | None = None) -> dict[str, Any]:
        """Seconds until an anchor confirms per network (None: never), after ``changes``."""
        if changes is None:
            current: dict[str, Any] = await self._call("GET", "/admin/timing")
            return current
        updated: dict[str, Any] = await self._call("PUT", "/admin/timing", changes)
        return updated

    async def settle_anchor(self, document_id: str, network: str, *, give_up: bool) -> bool:
        """Confirm (or give up on) the document's pending anchor on ``network`` now; whether
        there was one to settle."""
        row = await self.document(document_id)
        witness = row.get("witness_current_hash") or row.get("witness_hash")
        if not witness:
            raise errors.InvalidJob("document", "has no witness yet, so nothing is anchored")
        verb = "timeout" if give_up else "confirm"
        body = {"witness_hash": witness, "network": network}
        answer = await self._call("POST", f"/admin/anchors/{verb}", body)
        return bool(answer.get("timed_out" if give_up else "confirmed"))
