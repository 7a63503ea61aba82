"""Slow and half-open clients are cut off; they cannot hold the API (real server, raw sockets)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from ecosign_orchestrator.service.api import create_app
from ecosign_orchestrator.service.http_limits import HttpLimits
from ecosign_orchestrator.service.settings import Settings
from tests.support.api import serve_in_thread
from tests.support.procs import eventually

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


async def test_at_the_cap_the_server_stops_accepting_and_sheds_who_makes_no_progress(
    serve: Serve,
) -> None:
    """At its cap the server accepts nothing more (a new client waits in the kernel's backlog,
    costing no descriptor), and makes room by shedding connections that sent nothing for a
    second: a client that talks is served in about that long, not after every deadline."""
    with serve(HttpLimits(max_connections=20, header_timeout=30)) as url:
        held = [await _connect(url) for _ in range(20)]  # silent: they never send a request
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
            waiting = asyncio.create_task(client.get("/healthz"))
            done, _ = await asyncio.wait({waiting}, timeout=0.5)
            assert not done  # not refused, not answered: waiting in the backlog
            answer = await waiting
            assert answer.status_code == 200
            assert _cut(await client.get("/metrics"), "shed") >= 1
        shed = await asyncio.gather(*(_answer(reader) for reader, _ in held[:1]))
        assert shed == [b""]  # the oldest silent connection was closed to make room
        for _, writer in held:
            writer.close()


async def _connect_from(
    url: str, source: str, *, receive_buffer: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection from another loopback address (another client), optionally with a small
    receive buffer (a client that holds little of what it is sent)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.bind((source, 0))
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    return await asyncio.open_connection(sock=sock)


async def _ends(reader: asyncio.StreamReader) -> int:
    """Read until the server closes or resets the connection; the bytes read."""
    size = 0
    with contextlib.suppress(ConnectionResetError):
        async with asyncio.timeout(20):
            while chunk := await reader.read(65536):
                size += len(chunk)
    return size


async def test_clients_that_never_read_are_dropped_while_others_are_served(
    serve: Serve,
) -> None:
    """Pipelined requests whose answers are never read: each such connection is dropped once
    its answer has sat unread for ``send_timeout``; an authenticated client is answered at once
    all along."""
    request = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n" * 200
    with serve(HttpLimits(send_timeout=1.0)) as url:
        attackers = [await _connect_from(url, "127.0.0.2", receive_buffer=4096) for _ in range(20)]
        for _, writer in attackers:
            writer.write(request)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=5) as client:
            answers: list[int] = []

            async def all_cut() -> bool:
                answers.append((await client.get("/v1/jobs")).status_code)  # served throughout
                return _cut(await client.get("/metrics"), "stalled") >= len(attackers)

            await eventually(all_cut, timeout=30, what="every unread connection to be cut")
            assert set(answers) == {200}
        sizes = await asyncio.gather(*(_ends(reader) for reader, _ in attackers))
        one = len(await _connect_and_fetch(url))  # the size of one answer's body
        assert all(size < 200 * one for size in sizes), "cut before every answer was sent"
        for _, writer in attackers:
            writer.close()


def _cut(metrics: httpx.Response, reason: str) -> float:
    """``ecosign_orch_http_connections_cut_total`` for ``reason`` (0 before any)."""
    prefix = f'ecosign_orch_http_connections_cut_total{{reason="{reason}"}} '
    lines = [line for line in metrics.text.splitlines() if line.startswith(prefix)]
    return float(lines[0].removeprefix(prefix)) if lines else 0.0


async def _connect_and_fetch(url: str) -> bytes:
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        return (await client.get("/openapi.json")).content


async def test_one_client_cannot_take_every_connection(serve: Serve) -> None:
    with serve(HttpLimits(max_per_client=10, header_timeout=30)) as url:
        held = [await _connect_from(url, "127.0.0.3") for _ in range(10)]
        over = await _connect_from(url, "127.0.0.3")
        assert await _answer(over[0]) == b""  # closed at once: that client is at its cap
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            assert (await client.get("/healthz")).status_code == 200  # another client is served
        for _, writer in [*held, over]:
            writer.close()


async def test_a_pipelining_client_that_reads_gets_every_answer(serve: Serve) -> None:
    """The pipelining guard holds only clients that read nothing: one that sends 50 requests
    at once and reads gets its 50 answers."""
    with serve(HttpLimits(send_timeout=5.0)) as url:
        reader, writer = await _connect(url)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 50)
        received = b""
        async with asyncio.timeout(20):
            while received.count(b"HTTP/1.1 200 OK") < 50:
                received += await reader.read(65536)
        writer.close()
