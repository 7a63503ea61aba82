"""Edge Function answers: the classification table, and the clients over real HTTP (an aiohttp
server on loopback)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from ecosign_orchestrator.ecosign.edge import EdgeClient
from ecosign_orchestrator.ecosign.http import CallError, classify, parse_retry_after
from ecosign_orchestrator.ecosign.state_source import DocumentNotFound, RestStateSource
from ecosign_orchestrator.ecosign.transport import HttpClient

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


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[tuple[str, HttpClient]]:
    """A real HTTP server on loopback answering every request with ``handler``, and a client."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with HttpClient.open(4) as client:
            yield f"http://127.0.0.1:{port}", client
    finally:
        await runner.cleanup()


async def test_call_sends_auth_idempotency_key_and_body(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[web.Request, Any]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append((request, await request.json()))
        return web.json_response({"success": True})

    caplog.set_level(logging.DEBUG)
    async with serving(handler) as (url, client):
        result = await EdgeClient(url, KEY, client=client).call(
            "run-tsa",
            {"document_entity_id": "d", "witness_hash": "w"},
            idempotency_key="job:append_tsa",
            timeout=5,
        )
    assert result == {"success": True}
    request, body = seen[0]
    assert (request.method, request.path) == ("POST", "/functions/v1/run-tsa")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["idempotency-key"] == "job:append_tsa"
    assert body == {"document_entity_id": "d", "witness_hash": "w"}
    assert KEY not in caplog.text


async def test_errors_carry_status_message_and_retry_after_but_never_the_key() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        echoed = request.headers["authorization"]  # a function echoing what it was sent
        return web.json_response(
            {"error": f"slow down ({echoed})"}, status=429, headers={"Retry-After": "2"}
        )

    async with serving(handler) as (url, client):
        with pytest.raises(CallError) as info:
            await EdgeClient(url, KEY, client=client).call(
                "build-artifact", {}, idempotency_key="k", timeout=5
            )
    error = info.value
    assert (error.status, error.transient, error.retry_after, error.reason) == (
        429,
        True,
        2.0,
        "slow down (Bearer [redacted])",
    )
    assert KEY not in str(error) and KEY not in json.dumps(error.details())


async def test_timeouts_and_refused_connections_are_transient() -> None:
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        await release.wait()  # never answers within the call's timeout
        return web.json_response({"success": True})

    async with serving(handler) as (url, client):
        with pytest.raises(CallError) as info:
            await EdgeClient(url, KEY, client=client).call(
                "run-tsa", {}, idempotency_key="k", timeout=0.2
            )
        release.set()
        assert info.value.transient and info.value.status is None
        assert info.value.reason.startswith("timeout")
    closed = url  # the server is gone: nothing listens on that port any more
    async with HttpClient.open(1) as client:
        with pytest.raises(CallError) as info:
            await EdgeClient(closed, KEY, client=client).call(
                "run-tsa", {}, idempotency_key="k", timeout=5
            )
    assert info.value.transient and info.value.status is None
    assert info.value.reason.startswith("network error")


async def test_an_answer_larger_than_the_limit_is_refused_unread() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)  # chunked: no Content-Length to go by
        await response.prepare(request)
        for _ in range(64):
            await response.write(b"x" * 1024)
        await response.write_eof()
        return response

    records: list[Any] = []
    async with serving(handler) as (url, client):
        client.max_body_bytes = 10_000
        with pytest.raises(CallError) as info:
            await EdgeClient(url, KEY, client=client).call(
                "run-tsa", {}, idempotency_key="k", timeout=5, log=records.append
            )
    assert not info.value.transient and "larger than" in info.value.reason
    [record] = records  # the call is in the job's call log like any other failed call
    assert "larger than" in record.error


async def test_many_concurrent_callers_each_get_their_own_answer() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        await asyncio.sleep(0)  # let the other callers interleave
        return web.json_response({"echo": body["n"], "key": request.headers["idempotency-key"]})

    async with serving(handler) as (url, client):
        edge = EdgeClient(url, KEY, client=client)  # 4 connections for 300 callers

        async def caller(n: int) -> tuple[int, Any]:
            answer = await edge.call("f", {"n": n}, idempotency_key=f"k{n}", timeout=10)
            return n, answer

        answers = await asyncio.gather(*(caller(n) for n in range(300)))
    assert all(answer == {"echo": n, "key": f"k{n}"} for n, answer in answers)


async def test_requests_past_the_connection_cap_wait_their_turn_outside_their_timeout() -> None:
    """At most ``connections`` exchanges are open at once (4 here); a request queued behind
    them for longer than its own timeout still gets its answer: the queue delays calls, it does
    not fail them (nor spend the attempts of the steps that made them)."""
    open_now = most = 0
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal open_now, most
        open_now += 1
        most = max(most, open_now)
        try:
            if request.query.get("hold"):
                await release.wait()
            return web.json_response({"n": request.query["n"]})
        finally:
            open_now -= 1

    async with serving(handler) as (url, client):

        async def get(n: int, *, hold: bool, timeout: float) -> bytes:
            params = {"n": str(n), **({"hold": "1"} if hold else {})}
            answer = await client.send("GET", url, target="t", params=params, timeout=timeout)
            return answer.content

        held = [asyncio.create_task(get(n, hold=True, timeout=30)) for n in range(4)]
        queued = [asyncio.create_task(get(n, hold=False, timeout=0.2)) for n in range(4, 12)]
        # Three times the queued requests' timeout passes while every connection is held.
        done, _ = await asyncio.wait(queued, timeout=0.6)
        assert not done and open_now == 4
        release.set()
        answers = await asyncio.gather(*held, *queued)
    assert [json.loads(a)["n"] for a in answers] == [str(n) for n in range(12)]
    assert most == 4


async def test_rest_read_uses_object_accept_and_maps_pgrst116_to_not_found() -> None:
    seen: list[web.Request] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        if "missing" in request.query["id"]:
            return web.json_response(
                {
                    "code": "PGRST116",
                    "details": "The result contains 0 rows",
                    "hint": None,
                    "message": "Cannot coerce the result to a single JSON object",
                },
                status=406,
            )
        return web.json_response(
            {"id": "abc", "events": []}, content_type="application/vnd.pgrst.object+json"
        )

    async with serving(handler) as (url, client):
        source = RestStateSource(url, KEY, client=client)
        state = await source.read("abc")
        assert state.id == "abc"
        assert seen[0].path == "/rest/v1/document_entities"
        assert seen[0].headers["accept"] == "application/vnd.pgrst.object+json"
        assert seen[0].headers["apikey"] == KEY
        assert seen[0].query["id"] == "eq.abc"
        with pytest.raises(DocumentNotFound):
            await source.read("missing")


async def test_edge_client_refuses_a_non_http_url() -> None:
    async with HttpClient.open(1) as client:
        with pytest.raises(ValueError, match="EDGE_BASE_URL"):
            EdgeClient("ftp://x", KEY, client=client)


def test_an_error_whose_details_are_computed_keeps_them_in_the_job_record() -> None:
    from ecosign_orchestrator.core.job import JobError
    from ecosign_orchestrator.ecosign.http import CallError

    error = JobError.from_exception(CallError("run-tsa", "busy", status=503, transient=True))
    assert error.details["function"] == "run-tsa" and error.details["status"] == 503
