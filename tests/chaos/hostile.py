"""Hostile input and floods for ``make chaos``: property-based bad submissions through the API
and the CLI (hypothesis), and a burst of submissions while slow clients hold connections."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.procs import cli

#: Arabic-Indic digits: ``uuid.UUID()`` accepts them, a canonical id must not.
_NON_ASCII_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
_HOSTILE_TEXT = st.one_of(
    st.text(max_size=64),
    st.sampled_from(["\x00", "a\x00b", "\ud800", "\udfff", "‮", "\U0001d7d8" * 8, "x" * 5000]),
)


def _valid() -> dict[str, Any]:
    return {"document_entity_id": str(uuid.uuid4()), "actions": {"protect": True}}


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"n": value}
    return value


@st.composite
def bad_bodies(draw: st.DrawFn) -> bytes:
    """A submission that is wrong in one way (each must be refused with a 4xx)."""
    body = _valid()
    how = draw(
        st.sampled_from(
            [
                "doc_text",
                "doc_digits",
                "doc_type",
                "actions_type",
                "unknown_field",
                "deep",
                "huge",
                "not_json",
                "invalid_utf8",
                "no_action",
            ]
        )
    )
    if how == "doc_text":
        body["document_entity_id"] = draw(_HOSTILE_TEXT)
    elif how == "doc_digits":
        body["document_entity_id"] = body["document_entity_id"].translate(_NON_ASCII_DIGITS)
    elif how == "doc_type":
        body["document_entity_id"] = draw(st.one_of(st.integers(), st.none(), st.lists(st.text())))
    elif how == "actions_type":
        body["actions"] = draw(st.one_of(st.integers(), st.text(), st.lists(st.booleans())))
    elif how == "unknown_field":
        body[draw(st.text(min_size=1, max_size=20).filter(lambda k: k not in _KNOWN))] = 1
    elif how == "deep":
        body["metadata"] = _nested(draw(st.integers(min_value=40, max_value=400)))
    elif how == "huge":
        body["metadata"] = {"blob": "x" * draw(st.integers(2_000_000, 4_000_000))}
    elif how == "no_action":
        body["actions"] = {}
    if how == "not_json":
        return draw(st.sampled_from([b"{", b"[1,2]", b"null", b'{"a":NaN}', b'{"a":1,"a":2}']))
    if how == "invalid_utf8":
        return b'{"document_entity_id": "\xff\xfe", "actions": {"protect": true}}'
    return json.dumps(body).encode()


_KNOWN = {"document_entity_id", "actions", "forensic", "metadata", "correlation_id"}


async def fuzz_api(api: httpx.AsyncClient, *, examples: int) -> dict[str, int]:
    """``examples`` hostile submissions; each must be a 4xx and nothing may be stored."""
    base, headers = str(api.base_url), dict(api.headers)
    before = len((await api.get("/v1/jobs", params={"limit": 500})).json()["jobs"])
    wrong = await asyncio.to_thread(_fuzz_api_sync, base, headers, examples)
    after = len((await api.get("/v1/jobs", params={"limit": 500})).json()["jobs"])
    return {"api": examples, "cli": 0, "wrong": len(wrong) + (after != before)}


def _fuzz_api_sync(base: str, headers: dict[str, str], examples: int) -> list[str]:
    wrong: list[str] = []
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(bad_bodies())
        def probe(body: bytes) -> None:
            answer = client.post(
                "/v1/document-jobs",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            if not 400 <= answer.status_code < 500:
                wrong.append(f"{answer.status_code}: {body[:80]!r}")

        probe()
    return wrong


def fuzz_cli(env: dict[str, str], logs: Path) -> dict[str, int]:
    """Bad files through ``submit``: each must exit 2 with a reason, never a traceback."""
    cases = [
        b'{"document_entity_id": "\xff\xfe", "actions": {"protect": true}}',
        json.dumps({"document_entity_id": "x\u0000y", "actions": {"protect": True}}).encode(),
        json.dumps({**_valid(), "metadata": _nested(100)}).encode(),
        json.dumps({**_valid(), "extra": 1}).encode(),
        b'{"document_entity_id": "\\ud800", "actions": {"protect": true}}',
        json.dumps(
            {**_valid(), "document_entity_id": str(uuid.uuid4()).translate(_NON_ASCII_DIGITS)}
        ).encode(),
        b"[]",
        b"{" * 10,
    ]
    wrong = 0
    for i, body in enumerate(cases):
        path = logs / f"bad{i}.json"
        path.write_bytes(body)
        result = cli("submit", str(path), env=env)
        if result.returncode != 2 or "Traceback" in result.stderr:
            wrong += 1
            print(f"  CLI case {i}: exit {result.returncode}: {result.stderr[-300:]}")
    return {"api": 0, "cli": len(cases), "wrong": wrong}


async def flood(
    api: httpx.AsyncClient, api_url: str, docs: list[str], submissions: int
) -> dict[str, Any]:
    """``submissions`` at once (100 in flight) for ``docs`` while 200 slow clients hold
    connections; /healthz is timed meanwhile."""
    host, port = api_url.removeprefix("http://").split(":")
    slow = []
    for _ in range(200):  # from another address than the client's: another host
        _, writer = await asyncio.open_connection(host, int(port), local_addr=("127.0.0.19", 0))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
        slow.append(writer)
    answers: dict[int, int] = {}
    ids: set[str] = set()
    gate = asyncio.Semaphore(100)
    healthz_ms: list[float] = []
    stop = asyncio.Event()

    async def one(i: int) -> None:
        body = {"document_entity_id": docs[i % len(docs)], "actions": {"nda": True}}
        async with gate:
            try:
                answer = await api.post("/v1/document-jobs", json=body)
            except httpx.HTTPError:
                answers[0] = answers.get(0, 0) + 1
                return
        answers[answer.status_code] = answers.get(answer.status_code, 0) + 1
        if answer.status_code in (200, 201):
            ids.add(answer.json()["id"])

    async def probe() -> None:
        async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
            while not stop.is_set():
                started = time.perf_counter()
                await client.get("/healthz")
                healthz_ms.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(0.1)

    prober = asyncio.create_task(probe())
    await asyncio.gather(*(one(i) for i in range(submissions)))
    stop.set()
    await prober
    for writer in slow:
        writer.close()
    accepted = answers.get(200, 0) + answers.get(201, 0)
    refused = answers.get(429, 0) + answers.get(503, 0)
    with_socket_errors = answers.get(0, 0)
    return {
        "ids": sorted(ids),
        "summary": f"{submissions}, {accepted}, {refused}"
        + (f" (+{with_socket_errors} connection errors)" if with_socket_errors else ""),
        "healthz_max_ms": max(healthz_ms, default=0.0),
        "server_errors": sum(n for code, n in answers.items() if code >= 500 and code != 503),
    }
