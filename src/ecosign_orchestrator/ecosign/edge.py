"""The Edge Function client: ``POST {base}/functions/v1/{name}`` with the service key.

Every call carries ``Idempotency-Key: <job id>:<step>``. The service key is sent in headers only
and never logged or put in an error message.

Each exchange can be handed to a call log (:class:`CallRecord`): the status or the network
error, the latency, the headers worth keeping, the response body up to ``log_body_bytes``, and
of the request only its field names and sizes (the whole body with ``log_request_bodies``).
The service key and any extra header value are replaced by ``[redacted]`` in everything read
from an answer: the call log, the error a failed call raises, and the body a success returns.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ecosign_orchestrator.core import jsonfast
from ecosign_orchestrator.core.calls import CallRecord
from ecosign_orchestrator.core.types import JSONDict
from ecosign_orchestrator.ecosign.http import CallError, classify
from ecosign_orchestrator.ecosign.redaction import Redactor
from ecosign_orchestrator.ecosign.transport import Answer, HttpClient

logger = logging.getLogger(__name__)

#: ``(function, HTTP status or None for a network error, seconds)`` after every call.
CallObserver = Callable[[str, int | None, float], None]
#: Receives the record of each exchange (``JobContext.record_call``).
CallLog = Callable[[CallRecord], None]
#: Response headers a call log keeps (lowercase): why to wait, and how to find the call in the
#: function's own logs.
KEPT_HEADERS = frozenset(
    {
        "retry-after",
        "content-type",
        "sb-error-code",
        "sb-request-id",
        "x-request-id",
        "x-sb-edge-region",
        "x-deno-execution-id",
    }
)


def decode_json(answer: Answer) -> Any:
    """The JSON body, or None if there is none or it is not JSON."""
    if not answer.content:
        return None
    try:
        return jsonfast.loads(answer.content)
    except ValueError:
        return None


class EdgeClient:
    """Calls Edge Functions; share one per process (the HTTP client pools connections)."""

    def __init__(
        self,
        base_url: str,
        service_key: str,
        *,
        client: HttpClient,
        on_call: CallObserver | None = None,
        log_body_bytes: int = 8192,
        log_request_bodies: bool = False,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("EDGE_BASE_URL must be an http(s) URL")
        if not service_key:
            raise ValueError("the service key is empty")
        self.base_url = base_url.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {service_key}",
            "apikey": service_key,
            "Content-Type": "application/json",
        }
        self._client = client
        self._on_call = on_call
        self._service_key = service_key
        self.log_body_bytes = log_body_bytes
        self.log_request_bodies = log_request_bodies

    def _observe(self, function: str, status: int | None, seconds: float) -> None:
        if self._on_call is not None:
            self._on_call(function, status, seconds)

    async def call(
        self,
        function: str,
        body: dict[str, Any],
        *,
        idempotency_key: str,
        timeout: float,
        headers: Mapping[str, str] | None = None,
        log: CallLog | None = None,
        step: str = "",
        attempt: int = 1,
    ) -> dict[str, Any]:
        """POST ``body`` to ``function`` with the service key, the idempotency key and any extra
        ``headers`` (never logged); the decoded JSON on success, else :class:`CallError`.

        ``log`` receives the exchange's record (``step`` and ``attempt`` label it)."""
        url = f"{self.base_url}/functions/v1/{function}"
        secrets = Redactor([self._service_key, *(headers or {}).values()])
        exchange = _Exchange(self, function, body, idempotency_key, step, attempt, secrets)
        headers = {**(headers or {}), **self._headers, "Idempotency-Key": idempotency_key}
        started = time.perf_counter()
        try:
            response = await self._client.send(
                "POST", url, target=function, json=body, headers=headers, timeout=timeout
            )
        except CallError as error:  # no answer read: the network, a timeout, or too large
            self._observe(function, error.status, time.perf_counter() - started)
            if log is not None:
                log(exchange.record(None, error.reason))
            logger.info(
                "edge %s failed: %s",
                function,
                error.reason,
                extra={
                    "action": "edge_call",
                    "function": function,
                    "status": error.status,
                    "outcome": "transient" if error.transient else "fatal",
                },
            )
            raise
        elapsed = time.perf_counter() - started
        self._observe(function, response.status, elapsed)
        payload = decode_json(response)
        if secrets.found_in(response.content):  # a function echoing what it was sent
            payload = secrets.json(payload)
        verdict = classify(response.status, payload, response.headers)
        outcome = "ok" if verdict.ok else ("transient" if verdict.transient else "fatal")
        logger.info(
            "edge %s -> %d in %.0f ms",
            function,
            response.status,
            elapsed * 1000,
            extra={
                "action": "edge_call",
                "function": function,
                "status": response.status,
                "outcome": outcome,
                "duration_ms": round(elapsed * 1000, 1),
            },
        )
        if log is not None:
            log(exchange.record(response, "" if verdict.ok else verdict.message))
        if verdict.ok:
            result: dict[str, Any] = payload
            return result
        raise CallError(
            function,
            secrets.text(verdict.message),
            status=response.status,
            transient=verdict.transient,
            precondition=verdict.precondition,
            retry_after=verdict.retry_after,
        )


class _Exchange:
    """One call being made, turned into a :class:`CallRecord` once it ends."""

    def __init__(
        self,
        client: EdgeClient,
        function: str,
        body: dict[str, Any],
        idempotency_key: str,
        step: str,
        attempt: int,
        secrets: Redactor,
    ) -> None:
        self.client = client
        self.function = function
        self.body = body
        self.idempotency_key = idempotency_key
        self.step = step
        self.attempt = attempt
        self.secrets = secrets
        self.started_at = datetime.now(UTC)
        self.clock = time.perf_counter()

    def _request(self) -> JSONDict:
        if self.client.log_request_bodies:
            body: JSONDict = self.secrets.json(self.body)
            return {"body": body}
        sizes: JSONDict = {k: len(json.dumps(v, ensure_ascii=False)) for k, v in self.body.items()}
        return {"fields": sizes}

    def record(self, response: Answer | None, error: str) -> CallRecord:
        duration_ms = (time.perf_counter() - self.clock) * 1000
        body, headers, truncated = "", {}, False
        if response is not None:
            body, truncated = self.secrets.cut(response.content, self.client.log_body_bytes)
            headers = {
                name: self.secrets.text(value)
                for name, value in response.headers.items()
                if name.lower() in KEPT_HEADERS
            }
        return CallRecord(
            target=self.function,
            step=self.step,
            attempt=self.attempt,
            idempotency_key=self.idempotency_key,
            started_at=self.started_at,
            duration_ms=duration_ms,
            status=None if response is None else response.status,
            error=self.secrets.text(error),
            response_headers=headers,
            response_body=body,
            truncated=truncated,
            request=self._request(),
        )
