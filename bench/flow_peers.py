"""7-step flows: ours (a worker process, the sandbox over real HTTP) against DBOS Transact.

Ours: one ``ecosign-orchestrator worker`` process runs document flows with every step
(encrypt, witness, TSA, Polygon, Bitcoin, artifact, notify) against the sandbox, a separate
process on loopback whose anchors confirm at once. The flows are committed in one batch while
the worker idles; the clock runs from that commit to the last flow's completion. The worker's CPU
comes from /proc over the same span. DBOS: ``dbos_flows.py`` in its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
KEY = "bench-sandbox-service-key"
TICK = os.sysconf("SC_CLK_TCK")
EDGE_FUNCTIONS = [
    "store-encrypted-custody",
    "create-witness",
    "run-tsa",
    "submit-anchor-polygon",
    "submit-anchor-bitcoin",
    "build-artifact",
    "notify-artifact-ready",
]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def sandbox() -> Iterator[str]:
    port = free_port()
    command = [PYTHON, "-m", "ecosign_orchestrator", "sandbox", "serve", "--port", str(port)]
    command += ["--service-key", KEY, "--polygon-confirm", "0", "--bitcoin-confirm", "0"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


@contextlib.asynccontextmanager
async def admin(url: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/admin/ledger")).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError("sandbox did not start")
            await asyncio.sleep(0.1)
        yield client


def worker_env(database_url: str, sandbox_url: str, concurrency: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOSIGN_ORCH_")}
    env.update(
        {
            "ECOSIGN_ORCH_DATABASE_URL": database_url,
            "ECOSIGN_ORCH_LOG_LEVEL": "WARNING",
            "EDGE_BASE_URL": sandbox_url,
            "SUPABASE_URL": sandbox_url,
            "ECOSIGN_ORCH_SERVICE_KEY": KEY,
            "ECOSIGN_ORCH_WORKER_CONCURRENCY": str(concurrency),
            # Anchors confirm at once in the sandbox; the first poll still waits its (scaled)
            # policy delay, as in production.
            "ECOSIGN_ORCH_CONFIRMATION_SCALE": "0.001",
            "ECOSIGN_ORCH_RETENTION_EVERY_SECONDS": "0",
        }
    )
    return env


async def pg_stats(dsn: str) -> dict[str, int]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SELECT pg_stat_force_next_flush()")
        row = await (
            await conn.execute(
                "SELECT xact_commit + xact_rollback, tup_inserted + tup_updated + tup_deleted "
                "FROM pg_stat_database WHERE datname = current_database()"
            )
        ).fetchone()
    assert row is not None
    return {"transactions": int(row[0]), "rows": int(row[1])}


async def ours(
    database_url: str, sandbox_url: str, flows: int, concurrency: int, step_seconds: float
) -> dict[str, float]:
    """One run of ``flows`` document flows by one worker process."""
    from pydantic import SecretStr

    from ecosign_orchestrator import ecosign
    from ecosign_orchestrator.core.status import JobStatus
    from ecosign_orchestrator.service import wiring
    from ecosign_orchestrator.service.settings import Settings

    settings = Settings(
        database_url=SecretStr(database_url),
        edge_base_url=sandbox_url,
        supabase_url=sandbox_url,
        service_key=SecretStr(KEY),
    )
    async with admin(sandbox_url) as client:
        (await client.post("/admin/reset")).raise_for_status()
        await client.put("/admin/timing", json={"polygon": 0, "bitcoin": 0})
        latency = {"latency": step_seconds, "rate": 0} if step_seconds else None
        await client.put("/admin/faults", json=dict.fromkeys(EDGE_FUNCTIONS, latency))
        docs = [(await client.post("/admin/documents", json={})).json()["id"] for _ in range(flows)]
        intents = [
            ecosign.DocumentJob.model_validate(
                {
                    "document_entity_id": doc,
                    "actions": {"protect": True},
                    "forensic": {"tsa": True, "polygon": True, "bitcoin": True},
                }
            )
            for doc in docs
        ]
        async with (
            wiring.runtime(settings) as rt,
            wiring.open_repository(settings, migrate=True) as repo,
        ):
            queue = wiring.build_queue(repo, rt.registry)
            env = worker_env(database_url, sandbox_url, concurrency)
            proc = subprocess.Popen(
                [PYTHON, "-m", "ecosign_orchestrator", "worker", "--kind", ecosign.KIND],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
            )
            try:
                await asyncio.sleep(2.0)  # the worker connects and idles (not a measurement)
                before = await _stats(database_url)
                cpu = cpu_seconds(proc.pid)
                started = time.perf_counter()
                await queue.submit_many([ecosign.flow_request(i) for i in intents])
                polls = 0
                while (await repo.counts()).get((ecosign.KIND, JobStatus.COMPLETED), 0) < flows:
                    polls += 1
                    await asyncio.sleep(0.05)
                    if time.perf_counter() - started > 600:
                        raise TimeoutError("flows did not finish")
                seconds = time.perf_counter() - started
                used = cpu_seconds(proc.pid) - cpu
                rss = peak_rss_mib(proc.pid)
            finally:
                proc.terminate()
                proc.wait(30)
            after = await _stats(database_url)
            recovered = await _lease_recoveries(repo)
        ledger = (await client.get("/admin/ledger")).json()
    calls = ledger["calls"]
    notify = [c for c in calls if c["function"] == "notify-artifact-ready"]
    keys = [c["idempotency_key"] for c in calls if c["function"] in EDGE_FUNCTIONS[:3]]
    result = {
        "seconds": seconds,
        "flows_per_second": flows / seconds,
        "cpu_ms_per_flow": 1000 * used / flows,
        "rss_mib": rss,
        "edge_calls_per_flow": len(calls) / flows,
        "notify_calls_per_flow": len(notify) / flows,
        "steps_run_twice": len(keys) - len(set(keys)),
        "lease_recoveries": recovered,
    }
    if before is not None and after is not None:
        # The producer's batch is 1 transaction; each progress poll of this script is 1 more.
        transactions = after["transactions"] - before["transactions"] - polls - 1
        result["transactions_per_flow"] = transactions / flows
        result["rows_written_per_flow"] = (after["rows"] - before["rows"]) / flows
    return result


async def _lease_recoveries(repo: Any) -> int:
    """Runs taken back from a worker whose lease expired (events read in pages). With no worker
    killed, each one would be a run started again under a live worker."""
    count, after = 0, 0
    while page := await repo.events(after_id=after, limit=10_000):
        count += sum(e.data.get("reason") == "lease_expired" for e in page)
        after = page[-1].id
    return count


async def _stats(database_url: str) -> dict[str, int] | None:
    if not database_url.startswith("postgresql"):
        return None
    return await pg_stats(database_url)


def dbos(url: str, flows: int, step_seconds: float) -> dict[str, float]:
    command = [PYTHON, str(ROOT / "bench" / "dbos_flows.py"), url, str(flows), str(step_seconds)]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    found = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        "seconds": found["seconds"],
        "flows_per_second": flows / found["seconds"],
        "cpu_ms_per_flow": 1000 * found["cpu_seconds"] / flows,
        "rss_mib": found["rss_mib"],
    }


async def run(
    cluster: Any, args: argparse.Namespace
) -> tuple[dict[str, dict[str, list[float]]], dict[str, float]]:
    """Every flow measure, ``args.rounds`` times (the in-flight run once: it is the longest)."""
    out: dict[str, dict[str, list[float]]] = {"ours": {}, "dbos": {}}
    costs: list[dict[str, float]] = []
    with sandbox() as url, tempfile.TemporaryDirectory() as tmp:
        for round_no in range(args.rounds):
            for system in ("ours", "dbos") if round_no % 2 == 0 else ("dbos", "ours"):
                for backend in ("pg", "sqlite"):
                    name = f"flows_{system}_{backend}_{round_no}"
                    if backend == "pg":
                        database = cluster.create_database(name)
                    else:
                        database = f"sqlite:///{tmp}/{name}.db"
                    print(f"  round {round_no + 1}: {system} on {backend}", flush=True)
                    if system == "ours":
                        found = await ours(database, url, args.flows, 100, 0.0)
                        if backend == "pg":
                            costs.append(found)
                    else:
                        found = dbos(database, args.flows, 0.0)
                    record = out[system]
                    record.setdefault(backend, []).append(found["flows_per_second"])
                    if backend == "pg":
                        record.setdefault("pg_cpu_ms", []).append(found["cpu_ms_per_flow"])
        for system in ("ours", "dbos"):
            print(f"  {args.inflight} in flight, 50 ms steps: {system}", flush=True)
            database = cluster.create_database(f"inflight_{system}")
            if system == "ours":
                found = await ours(database, url, args.inflight, args.inflight, 0.05)
                out["ours"]["inflight_notify_per_flow"] = [found["notify_calls_per_flow"]]
                out["ours"]["inflight_steps_run_twice"] = [found["steps_run_twice"]]
                out["ours"]["inflight_lease_recoveries"] = [found["lease_recoveries"]]
            else:
                found = dbos(database, args.inflight, 0.05)
            out[system]["inflight_seconds"] = [found["seconds"]]
            out[system]["inflight_rss_mib"] = [found["rss_mib"]]
    keys = ("transactions_per_flow", "rows_written_per_flow", "edge_calls_per_flow")
    return out, {k: statistics.median(c[k] for c in costs) for k in keys}
