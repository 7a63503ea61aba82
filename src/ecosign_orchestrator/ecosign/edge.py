"""The Edge Function client: ``POST {base}/functions/v1/{name}`` with the service key.

Every call carries ``Idempotency-Key: <job id>:<step>``. The service key is sent in headers only
and never logged or put in an error message.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from ecosign_orchestrator.ecosign.http import CallError, classify

logger = logging.getLogger(__name__)

#: ``(function, HTTP status or None for a network error, seconds)`` after every call.
CallObserver = Callable[[str, int | None, float], None]


def decode_json(response: httpx.Response) -> Any:
    """The JSON body, or None if there is none or it is not JSON."""
    if not response.content:
        return None
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def translate_transport_error(target: str, exc: httpx.HTTPError) -> CallError:
    """A transport failure (timeout, connection) as a transient :class:`CallError`."""
    kind = "timeout" if isinstance(exc, httpx.TimeoutException) else "network error"
    return CallError(target, f"{kind}: {type(exc).__name__}", status=None, transient=True)


class EdgeClient:
    """Calls Edge Functions; share one per process (the httpx client pools connections)."""

    def __init__(
        self,
        base_url: str,
        service_key: str,
        *,
        client: httpx.AsyncClient,
        on_call: CallObserver | None = None,
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
    ) -> dict[str, Any]:
        """POST ``body`` to ``function`` with the service key, the idempotency key and any extra
        ``headers`` (never logged); the decoded JSON on success, else :class:`CallError`."""
        url = f"{self.base_url}/functions/v1/{function}"
        headers = {**(headers or {}), **self._headers, "Idempotency-Key": idempotency_key}
        started = time.perf_counter()
        try:
            response = await self._client.post(url, json=body, headers=headers, timeout=timeout)
        except httpx.HTTPError as exc:
            self._observe(function, None, time.perf_counter() - started)
            error = translate_transport_error(function, exc)
            logger.info(
                "edge %s failed: %s",
                function,
                error.reason,
                extra={
                    "action": "edge_call",
                    "function": function,
                    "status": None,
                    "outcome": "transient",
                },
            )
            raise error from None
        elapsed = time.perf_counter() - started
        self._observe(function, response.status_code, elapsed)
        payload = decode_json(response)
        verdict = classify(response.status_code, payload, response.headers)
        outcome = "ok" if verdict.ok else ("transient" if verdict.transient else "fatal")
        logger.info(
            "edge %s -> %d in %.0f ms",
            function,
            response.status_code,
            elapsed * 1000,
            extra={
                "action": "edge_call",
                "function": function,
                "status": response.status_code,
                "outcome": outcome,
                "duration_ms": round(elapsed * 1000, 1),
            },
        )
        if verdict.ok:
            result: dict[str, Any] = payload
            return result
        raise CallError(
            function,
            verdict.message,
            status=response.status_code,
            transient=verdict.transient,
            precondition=verdict.precondition,
            retry_after=verdict.retry_after,
        )
