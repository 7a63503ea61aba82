"""Edge Function answers: the classification table, and the client over httpx.MockTransport."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from ecosign_orchestrator.ecosign.edge import EdgeClient
from ecosign_orchestrator.ecosign.http import CallError, classify, parse_retry_after
from ecosign_orchestrator.ecosign.state_source import DocumentNotFound, RestStateSource

KEY = "service-key-do-not-log-5f2a"


@pytest.mark.parametrize(
    ("status", "body", "ok", "transient", "precondition"),
    [
        (200, {"success": True}, True, False, False),
        (200, {"success": True, "noop": True}, True, False, False),
        (201, {"id": 1}, True, False, False),
        (204, None, False, True, False),
        (200, None, False, True, False),  # 2xx without a JSON object is not success
        (500, {"error": "boom"}, False, True, False),
        (502, None, False, True, False),
        (503, None, False, True, False),
        (504, None, False, True, False),
        (540, None, False, True, False),
        (544, None, False, True, False),
        (546, None, False, True, False),
        (408, None, False, True, False),
        (425, None, False, True, False),
        (429, None, False, True, False),
        (400, {"error": "bad"}, False, False, False),
        (401, {"code": 401, "message": "Invalid JWT"}, False, False, False),
        (403, {"error": "Forbidden"}, False, False, False),
        (404, {"error": "document_entity not found"}, False, False, False),
        (
            500,
            {"error": "eco_certificate_requires_events", "retryable": False},
            False,
            False,
            False,
        ),
        (400, {"error": "x", "retryable": True}, False, True, False),
        (409, {"error": "precondition_failed:missing_tsa_for_witness_hash"}, False, False, True),
        (
            409,
            {
                "error": "precondition_failed:missing_document.protected.requested",
                "retryable": True,
            },
            False,
            True,
            True,
        ),
        (409, {"error": "tsa_not_confirmed", "retryable": True}, False, True, False),
    ],
)
def test_classification_table(
    status: int, body: Any, ok: bool, transient: bool, precondition: bool
) -> None:
    verdict = classify(status, body)
    assert (verdict.ok, verdict.transient, verdict.precondition) == (ok, transient, precondition)


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("7") == 7
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10
    assert parse_retry_after("garbage") is None and parse_retry_after(None) is None
    assert classify(503, None, {"retry-after": "3"}).retry_after == 3


def client_for(handler: Any) -> EdgeClient:
    return EdgeClient(
        "https://proj.supabase.co",
        KEY,
        client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    )


async def test_call_sends_auth_idempotency_key_and_body(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"success": True})

    caplog.set_level(logging.DEBUG)
    result = await client_for(handler).call(
        "run-tsa",
        {"document_entity_id": "d", "witness_hash": "w"},
        idempotency_key="job:append_tsa",
        timeout=5,
    )
    assert result == {"success": True}
    request = seen[0]
    assert request.url == "https://proj.supabase.co/functions/v1/run-tsa"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["idempotency-key"] == "job:append_tsa"
    assert json.loads(request.content) == {"document_entity_id": "d", "witness_hash": "w"}
    assert KEY not in caplog.text


async def test_errors_carry_status_message_and_retry_after_but_never_the_key() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, json={"error": "slow down"}, headers={"Retry-After": "2"})

    with pytest.raises(CallError) as info:
        await client_for(handler).call("build-artifact", {}, idempotency_key="k", timeout=5)
    error = info.value
    assert (error.status, error.transient, error.retry_after, error.reason) == (
        429,
        True,
        2.0,
        "slow down",
    )
    assert KEY not in str(error) and KEY not in json.dumps(error.details())


async def test_network_errors_and_timeouts_are_transient() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    with pytest.raises(CallError) as info:
        await client_for(handler).call("run-tsa", {}, idempotency_key="k", timeout=5)
    assert info.value.transient and info.value.status is None


async def test_rest_read_uses_object_accept_and_maps_pgrst116_to_not_found() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if "missing" in str(request.url):
            return httpx.Response(
                406,
                json={
                    "code": "PGRST116",
                    "details": "The result contains 0 rows",
                    "hint": None,
                    "message": "Cannot coerce the result to a single JSON object",
                },
            )
        return httpx.Response(
            200,
            json={"id": "abc", "events": []},
            headers={"Content-Type": "application/vnd.pgrst.object+json"},
        )

    source = RestStateSource(
        "https://proj.supabase.co",
        KEY,
        client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    )
    state = await source.read("abc")
    assert state.id == "abc"
    assert seen[0].headers["accept"] == "application/vnd.pgrst.object+json"
    assert seen[0].headers["apikey"] == KEY
    assert seen[0].url.params["id"] == "eq.abc"
    with pytest.raises(DocumentNotFound):
        await source.read("missing")


def test_edge_client_refuses_a_non_http_url() -> None:
    with pytest.raises(ValueError, match="EDGE_BASE_URL"):
        EdgeClient("ftp://x", KEY, client=httpx.AsyncClient())


def test_an_error_whose_details_are_computed_keeps_them_in_the_job_record() -> None:
    from ecosign_orchestrator.core.job import JobError
    from ecosign_orchestrator.ecosign.http import CallError

    error = JobError.from_exception(CallError("run-tsa", "busy", status=503, transient=True))
    assert error.details["function"] == "run-tsa" and error.details["status"] == 503
