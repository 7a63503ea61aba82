"""Slow and half-open clients are cut off; they cannot hold the API (real server, raw sockets)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from ecosign_orchestrator.service.api import create_app
from ecosign_orchestrator.service.http_limits import HttpLimits
from ecosign_orchestrator.service.settings import Settings
from tests.support.api import serve_in_thread

TOKEN = "slow-client-test-token-5e6f7a8b"


Serve = Callable[[HttpLimits], contextlib.AbstractContextManager[str]]


@pytest.fixture
def serve(tmp_path: Path) -> Serve:
    settings = Settings(
        database_url=SecretStr(f"sqlite:///{tmp_path}/jobs.db"), api_tokens=[SecretStr(TOKEN)]
    )

    def start(limits: HttpLimits) -> contextlib.AbstractContextManager[str]:
        return serve_in_thread(create_app(settings), limits)

    return start


async def _connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def _answer(reader: asyncio.StreamReader) -> bytes:
    """What the server sends before it closes (b'' if it just closes)."""
    async with asyncio.timeout(10):
        return await reader.read()


async def test_half_open_and_trickling_clients_are_cut_off_while_others_are_served(
    serve: Serve,
) -> None:
    limits = HttpLimits(header_timeout=1.0, body_timeout=1.0)
    with serve(limits) as url:
        silent = [await _connect(url) for _ in range(100)]
        partial = [await _connect(url) for _ in range(100)]
        for _, writer in partial:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never the blank line
        slow_body = [await _connect(url) for _ in range(10)]
        for _, writer in slow_body:
            writer.write(
                b"POST /v1/document-jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                + TOKEN.encode()
                + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            assert (await client.get("/healthz")).status_code == 200, "others are served"
            answers = await asyncio.gather(*(_answer(r) for r, _ in silent + partial))
            assert all(a.startswith(b"HTTP/1.1 408 Request Timeout") for a in answers)
            cut = await asyncio.gather(*(_answer(r) for r, _ in slow_body))
            assert all(b"201" not in a and b"200" not in a for a in cut)
            listed = await client.get("/v1/jobs", headers={"Authorization": f"Bearer {TOKEN}"})
            assert listed.json()["jobs"] == [], "a cut-off body submitted nothing"
        for _, writer in silent + partial + slow_body:
            writer.close()


async def test_connections_beyond_the_cap_get_503_at_once_and_service_resumes(
    serve: Serve,
) -> None:
    with serve(HttpLimits(max_connections=20, header_timeout=30)) as url:
        held = [await _connect(url) for _ in range(25)]
        refused = []
        for reader, _ in held[20:]:
            refused.append(await _answer(reader))
        assert all(a.startswith(b"HTTP/1.1 503 Service Unavailable") for a in refused)
        for _, writer in held:
            writer.close()
            await writer.wait_closed()
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            async with asyncio.timeout(10):
                while (await client.get("/healthz")).status_code != 200:
                    await asyncio.sleep(0.05)  # the server notices the closed sockets
