"""``make chaos`` phases against the HTTP server: clients that never read what they asked for,
clients that reconnect as fast as they are cut, and a connection flood against a ``serve`` held
to 1,024 file descriptors, each while an authenticated client keeps working.

Attackers connect from other loopback addresses (127.0.0.2 and up): the server tells clients
apart by address, as it would tell apart hosts on a network.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

PIPELINED = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n" * 200


async def _open(host: str, port: int, source: str) -> asyncio.StreamWriter | None:
    """A connection from ``source`` that holds almost nothing of what it is sent."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    try:
        sock.bind((source, 0))
        async with asyncio.timeout(5):
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
        _, writer = await asyncio.open_connection(sock=sock, limit=4096)
    except (OSError, TimeoutError):
        sock.close()
        return None
    return writer


async def _attacker(
    host: str, port: int, source: str, payload: bytes, reconnect: bool, stop: asyncio.Event
) -> int:
    """Open a connection, send ``payload``, never read; with ``reconnect``, open a new one as
    soon as the server cuts it. How many connections it opened."""
    opened = 0
    while not stop.is_set():
        writer = await _open(host, port, source)
        if writer is None:
            await asyncio.sleep(0.05)
            continue
        opened += 1
        with contextlib.suppress(OSError):
            writer.write(payload)
        while not stop.is_set() and not writer.is_closing():
            await asyncio.sleep(0.5)
            with contextlib.suppress(OSError):
                writer.write(b"\r\n")  # a write to a cut connection fails: the client notices
        writer.close()
        if not reconnect:
            await stop.wait()
    return opened


async def _served(
    api_url: str,
    token: str,
    stop: asyncio.Event,
    request: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]],
) -> list[tuple[float, int]]:
    """An authenticated client's requests while the attack lasts: (milliseconds, status; 0 for
    a connection error)."""
    timings: list[tuple[float, int]] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=30) as client:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                status = (await request(client)).status_code
            except httpx.HTTPError:
                status = 0
            timings.append(((time.perf_counter() - started) * 1000, status))
            await asyncio.sleep(0.05)
    return timings


def _latency(timings: list[tuple[float, int]]) -> dict[str, Any]:
    ms = sorted(t for t, _ in timings)
    if not ms:
        return {"requests": 0}
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return {
        "requests": len(ms),
        "not_200": sum(1 for _, status in timings if status != 200),
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(p99, 1),
        "max_ms": round(ms[-1], 1),
    }


async def cut_by_reason(api_url: str, token: str) -> dict[str, int]:
    """The server's ``ecosign_orch_http_connections_cut_total`` by reason."""
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        text = (await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})).text
    prefix = "ecosign_orch_http_connections_cut_total{reason="
    cut: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            reason, value = line.removeprefix(prefix).split("} ")
            cut[reason.strip('"')] = int(float(value))
    return cut


async def attack(
    api_url: str,
    token: str,
    *,
    connections: int,
    sources: list[str],
    payload: bytes,
    reconnect: bool,
    seconds: float,
) -> dict[str, Any]:
    """``connections`` attackers spread over ``sources`` for ``seconds`` while an authenticated
    client lists jobs; its latency and answers, and what the attackers managed."""
    host, port = api_url.removeprefix("http://").split(":")
    stop = asyncio.Event()
    attackers = [
        asyncio.create_task(
            _attacker(host, int(port), sources[i % len(sources)], payload, reconnect, stop)
        )
        for i in range(connections)
    ]
    await asyncio.sleep(1.0)  # the attack is under way before the client starts (scenario time)
    client = asyncio.create_task(
        _served(api_url, token, stop, lambda c: c.get("/v1/jobs", params={"limit": 5}))
    )
    await asyncio.sleep(seconds)  # how long the attack lasts (scenario time)
    stop.set()
    opened = sum(await asyncio.gather(*attackers))
    return {**_latency(await client), "attacker_connections": opened}


async def reader_floods(api_url: str, token: str, *, seconds: float) -> dict[str, Any]:
    """1,050 clients that pipeline requests and never read (the issue's measurement), then 300
    that reconnect as fast as they are cut."""
    sources = [f"127.0.0.{i}" for i in range(2, 7)]
    slow = await attack(
        api_url, token, connections=1050, sources=sources, payload=PIPELINED,
        reconnect=False, seconds=seconds,
    )  # fmt: skip
    again = await attack(
        api_url, token, connections=300, sources=sources, payload=PIPELINED,
        reconnect=True, seconds=seconds,
    )  # fmt: skip
    return {
        "slow readers": slow,
        "reconnecting readers": again,
        "cut": await cut_by_reason(api_url, token),
    }


def error_lines(log: Path) -> int:
    """Lines a JSON log wrote at level error or above."""
    count = 0
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            if json.loads(line).get("level") in ("error", "critical"):
                count += 1
    return count


async def descriptor_flood(
    env: dict[str, str],
    sandbox_url: str,
    logs: Path,
    token: str,
    admin: Any,
    *,
    flows: int,
    seconds: float,
) -> dict[str, Any]:
    """``serve`` with its embedded worker, held to 1,024 descriptors (``prlimit``), under 3,000
    connections that send nothing and reconnect when cut, from 12 addresses; meanwhile a client
    submits ``flows`` document flows and follows them to their end."""
    import subprocess
    import sys

    from tests.support.api import free_port
    from tests.support.procs import ROOT, stop

    port = free_port()
    log = logs / "serve-fdlimit.log"
    served_env = {
        **env,
        "ECOSIGN_ORCH_DATABASE_URL": f"sqlite:///{logs}/fdlimit.db",
        "EDGE_BASE_URL": sandbox_url,
        "SUPABASE_URL": sandbox_url,
        "ECOSIGN_ORCH_LOG_LEVEL": "INFO",
    }
    command = ["prlimit", "--nofile=1024:1024", sys.executable, "-m", "ecosign_orchestrator"]
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [*command, "serve", "--port", str(port)],
            env=served_env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
    api_url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=api_url, timeout=30) as probe:
            for _ in range(200):
                with contextlib.suppress(httpx.HTTPError):
                    if (await probe.get("/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        docs = [await admin.create_document() for _ in range(flows)]
        host = "127.0.0.1"
        stop_event = asyncio.Event()
        sources = [f"127.0.0.{i}" for i in range(7, 19)]
        attackers = [
            asyncio.create_task(
                _attacker(host, port, sources[i % len(sources)], b"", True, stop_event)
            )
            for i in range(3000)
        ]
        await asyncio.sleep(2.0)  # the flood is on before the client starts (scenario time)
        began = time.monotonic()
        statuses = await _flows_through(api_url, token, docs, deadline=seconds)
        took = time.monotonic() - began
        stop_event.set()
        opened = sum(await asyncio.gather(*attackers))
    finally:
        stop(proc)
    return {
        "flows completed": f"{statuses.count('completed')} of {flows} in {took:.0f} s",
        "completed": statuses.count("completed"),
        "flows": flows,
        "error log lines": error_lines(log),
        "attacker connections": opened,
    }


async def _flows_through(
    api_url: str, token: str, docs: list[str], *, deadline: float
) -> list[str]:
    """Submit a flow per document and follow them to their end (or ``deadline`` seconds)."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=60) as client:
        ids = []
        for doc in docs:
            body = {
                "document_entity_id": doc,
                "actions": {"protect": True},
                "forensic": {"tsa": True},
            }
            for _ in range(100):
                with contextlib.suppress(httpx.HTTPError):
                    answer = await client.post("/v1/document-jobs", json=body)
                    if answer.status_code in (200, 201):
                        ids.append(answer.json()["id"])
                        break
                await asyncio.sleep(0.2)
        statuses = ["queued"] * len(ids)
        end = time.monotonic() + deadline
        while time.monotonic() < end and not all(
            s in ("completed", "failed", "cancelled") for s in statuses
        ):
            await asyncio.sleep(0.5)  # a progress poll, not synchronisation
            for i, job_id in enumerate(ids):
                with contextlib.suppress(httpx.HTTPError):
                    statuses[i] = (await client.get(f"/v1/jobs/{job_id}")).json()["status"]
    return statuses


#: A bounded number of error lines from the descriptor-limited ``serve`` (there were 165,160).
MAX_ERROR_LINES = 10


def _served_row(result: dict[str, Any]) -> str:
    return (
        f"{result['requests']} requests, {result['not_200']} not 200, p50 {result['p50_ms']} ms, "
        f"p99 {result['p99_ms']} ms, max {result['max_ms']} ms"
    )


def report_rows(http: dict[str, Any]) -> list[tuple[str, Any]]:
    """The rows these phases add to the chaos table."""
    readers, fd, frozen = http["readers"], http["descriptors"], http["frozen"]
    return [
        (
            "1,050 clients never reading: authenticated /v1/jobs",
            _served_row(readers["slow readers"]),
        ),
        (
            "300 clients reconnecting as cut: authenticated /v1/jobs",
            _served_row(readers["reconnecting readers"]),
        ),
        ("connections the API cut, by reason", readers["cut"]),
        ("serve at 1,024 descriptors, 3,000 reconnecting: flows", fd["flows completed"]),
        ("serve at 1,024 descriptors: error log lines", fd["error log lines"]),
        (
            "frozen worker (SIGSTOP, cancel, recovery, SIGCONT): calls after waking",
            f"{frozen['calls after waking']} ({frozen['flows']} flows, "
            f"{frozen['calls in flight when frozen']} calls in flight when frozen)",
        ),
    ]


def broken(http: dict[str, Any]) -> list[bool]:
    """Which of these phases' guarantees broke."""
    readers, fd, frozen = http["readers"], http["descriptors"], http["frozen"]
    return [
        readers["slow readers"]["not_200"] != 0,
        readers["reconnecting readers"]["not_200"] != 0,
        fd["completed"] != fd["flows"],
        fd["error log lines"] > MAX_ERROR_LINES,
        frozen["calls after waking"] != 0,
    ]
