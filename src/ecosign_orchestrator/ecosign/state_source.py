"""Where document state comes from: the ``DocumentStateSource`` port and its PostgREST adapter."""

from __future__ import annotations

from typing import Any, Protocol

from ecosign_orchestrator.ecosign.edge import decode_json
from ecosign_orchestrator.ecosign.http import CallError, classify
from ecosign_orchestrator.ecosign.redaction import Redactor
from ecosign_orchestrator.ecosign.state import COLUMNS, DocumentState
from ecosign_orchestrator.ecosign.transport import Answer, HttpClient

OBJECT_MEDIA = "application/vnd.pgrst.object+json"
#: How errors name the endpoint.
TARGET = "rest/document_entities"


class DocumentNotFound(Exception):
    """No ``document_entities`` row has this id (PostgREST 406 ``PGRST116``)."""

    def __init__(self, document_id: str) -> None:
        super().__init__(f"document_entities row {document_id} not found")
        self.document_id = document_id


class DocumentStateSource(Protocol):
    """Reads a document's state (and optionally writes back its lifecycle status)."""

    async def read(self, document_id: str) -> DocumentState:
        """The current state; :class:`DocumentNotFound` or :class:`CallError` on failure."""

    async def write_lifecycle(
        self, document_id: str, lifecycle_status: str, *, expected: str | None
    ) -> None:
        """Set ``lifecycle_status`` if it still is ``expected`` (opt-in write-back)."""


class RestStateSource:
    """``GET {supabase_url}/rest/v1/document_entities?id=eq.{id}&select=...`` (and ``PATCH``)."""

    def __init__(
        self, base_url: str, service_key: str, *, client: HttpClient, timeout: float = 15.0
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("SUPABASE_URL must be an http(s) URL")
        self.base_url = base_url.rstrip("/")
        self._headers = {"apikey": service_key, "Authorization": f"Bearer {service_key}"}
        self._secrets = Redactor([service_key])
        self._client = client
        self._timeout = timeout

    async def _send(
        self,
        method: str,
        document_id: str,
        *,
        extra_params: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Answer:
        url = f"{self.base_url}/rest/v1/document_entities"
        params = {"id": f"eq.{document_id}", "select": ",".join(COLUMNS), **(extra_params or {})}
        return await self._client.send(
            method, url, target=TARGET, params=params, timeout=self._timeout, **kwargs
        )

    async def read(self, document_id: str) -> DocumentState:
        """Read one row as a single object (a missing row is a 406 ``PGRST116``, never ``[]``)."""
        response = await self._send(
            "GET", document_id, headers={**self._headers, "Accept": OBJECT_MEDIA}
        )
        body = self._decode(response)
        if response.status == 406 and isinstance(body, dict) and body.get("code") == "PGRST116":
            raise DocumentNotFound(document_id)
        _raise_unless_ok(response, body)
        try:
            return DocumentState.from_row(body)
        except (KeyError, ValueError) as exc:
            raise CallError(
                "rest/document_entities",
                f"unexpected row shape: {exc}",
                status=200,
                transient=False,
            ) from None

    async def list_requested(self, after: str, limit: int) -> list[dict[str, Any]]:
        """Rows (``id``, ``events`` and the witness columns) whose events hold a
        ``document.protected.requested``, in id order after ``after`` (a reconciliation scan's
        page)."""
        params = {
            "select": "id,events,witness_current_hash,witness_hash,witness_history",
            "events": 'cs.[{"kind":"document.protected.requested"}]',
            "order": "id.asc",
            "limit": str(limit),
        }
        if after:
            params["id"] = f"gt.{after}"
        url = f"{self.base_url}/rest/v1/document_entities"
        response = await self._client.send(
            "GET", url, target=TARGET, params=params, headers=self._headers, timeout=self._timeout
        )
        body = self._decode(response)
        if response.status != 200:
            _raise_unless_ok(response, body)  # the answer table judges errors; 200 is a list
        if not isinstance(body, list):
            raise CallError(
                "rest/document_entities", "a listing is not an array", status=200, transient=False
            )
        return [row for row in body if isinstance(row, dict)]

    def _decode(self, response: Answer) -> Any:
        """The JSON answer, with the service key redacted if the endpoint echoed it (every
        error message and record is made from this)."""
        body = decode_json(response)
        return self._secrets.json(body) if self._secrets.found_in(response.content) else body

    async def write_lifecycle(
        self, document_id: str, lifecycle_status: str, *, expected: str | None
    ) -> None:
        """``PATCH`` the lifecycle status only if it still is ``expected`` (the value the decision
        was made on), asking for the row back to see that it matched."""
        condition = "is.null" if expected is None else f"eq.{expected}"
        response = await self._send(
            "PATCH",
            document_id,
            headers={**self._headers, "Prefer": "return=representation"},
            json={"lifecycle_status": lifecycle_status},
            extra_params={"lifecycle_status": condition},
        )
        body = self._decode(response)
        if response.status == 200 and body == []:
            await self.read(document_id)  # DocumentNotFound if the row is gone
            raise CallError(
                "rest/document_entities",
                f"lifecycle_status changed since it was read (was {expected!r})",
                status=200,
                transient=True,
            )
        _raise_unless_ok(response, {"rows": body} if isinstance(body, list) else body)


def _raise_unless_ok(response: Answer, body: Any) -> None:
    """A :class:`CallError` for an answer the classification table does not call a success."""
    verdict = classify(response.status, body, response.headers)
    if not verdict.ok:
        raise CallError(
            "rest/document_entities",
            verdict.message,
            status=response.status,
            transient=verdict.transient,
            retry_after=verdict.retry_after,
        )
