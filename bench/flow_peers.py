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

from ecosign_orchestrator.ecosign.steps import CANONICAL_ORDER, DEFAULT_FUNCTIONS

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
KEY = "bench-sandbox-service-key"
TICK = os.sysconf("SC_CLK_TCK")
EDGE_FUNCTIONS = [DEFAULT_FUNCTIONS[step] for step in CANONICAL_ORDER]


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
                "SELECT xact_commit + xact_rollback, tup_inserted + tup_updated + tup_deleted, "
                "pg_current_xact_id()::text::bigint "
                "FROM pg_stat_database WHERE datname = current_database()"
            )
        ).fetchone()
    assert row is not None
    # Transaction ids count the transactions that wrote (cluster-wide; nothing else runs).
    return {"transactions": int(row[0]), "rows": int(row[1]), "xids": int(row[2])}


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
    reads = ledger["rest_requests"].get("GET", 0)
    rest = sum(ledger["rest_requests"].values())
    notify = [c for c in calls if c["function"] == "notify-artifact-ready"]
    keys = [c["idempotency_key"] for c in calls if c["function"] in EDGE_FUNCTIONS[:3]]
    result = {
        "seconds": seconds,
        "flows_per_second": flows / seconds,
        "cpu_ms_per_flow": 1000 * used / flows,
        "rss_mib": rss,
        "edge_calls_per_flow": len(calls) / flows,
        "state_reads_per_flow": reads / flows,
        "http_requests_per_flow": (len(calls) + rest) / flows,
        "notify_calls_per_flow": len(notify) / flows,
        "steps_run_twice": len(keys) - len(set(keys)),
        "lease_recoveries": recovered,
    }
    if before is not None and after is not None:
        # The producer's batch is 1 transaction; each progress poll of this script is 1 more.
        transactions = after["transactions"] - before["transactions"] - polls - 1
        result["transactions_per_flow"] = transactions / flows
        # The producer's batch wrote one; each pg_stats call takes one id.
        result["write_transactions_per_flow"] = (after["xids"] - before["xids"] - 2) / flows
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


@contextlib.contextmanager
def busy_core() -> Iterator[None]:
    """A second process keeping one core busy for the duration (the loaded-machine run)."""
    proc = subprocess.Popen([PYTHON, "-c", "while True: pass"])
    try:
        yield
    finally:
        proc.kill()
        proc.wait(30)


class Runner:
    """Runs one measure of one system on a fresh database."""

    def __init__(self, cluster: Any, url: str, tmp: str) -> None:
        self.cluster, self.url, self.tmp = cluster, url, tmp
        self.costs: list[dict[str, float]] = []
        self.inflight_checks: list[dict[str, float]] = []

    def database(self, backend: str, name: str) -> str:
        if backend == "pg":
            return str(self.cluster.create_database(name))
        return f"sqlite:///{self.tmp}/{name}.db"

    async def flows(self, system: str, backend: str, flows: int, name: str) -> dict[str, float]:
        database = self.database(backend, name)
        if system == "dbos":
            return dbos(database, flows, 0.0)
        found = await ours(database, self.url, flows, 100, 0.0)
        if backend == "pg":
            self.costs.append(found)
        return found

    async def inflight(self, system: str, flows: int, name: str) -> dict[str, float]:
        database = self.database("pg", name)
        if system == "dbos":
            return dbos(database, flows, 0.05)
        found = await ours(database, self.url, flows, flows, 0.05)
        self.inflight_checks.append(found)
        return found


async def run(
    cluster: Any, args: argparse.Namespace
) -> tuple[dict[str, dict[str, list[float]]], dict[str, float]]:
    """Every flow measure ``args.rounds`` times, alternating the order of the systems; then
    ``args.loaded_rounds`` of them with a second process keeping one core busy (keys
    ``loaded_*``). The guarantees checked at 1,000 in flight are kept for every round."""
    out: dict[str, dict[str, list[float]]] = {"ours": {}, "dbos": {}}
    with sandbox() as url, tempfile.TemporaryDirectory() as tmp:
        runner = Runner(cluster, url, tmp)
        plan = [("", n) for n in range(args.rounds)]
        plan += [("loaded_", n) for n in range(args.loaded_rounds)]
        for prefix, round_no in plan:
            order = ("ours", "dbos") if round_no % 2 == 0 else ("dbos", "ours")
            load = busy_core() if prefix else contextlib.nullcontext()
            with load:
                for system in order:
                    record = out[system]
                    for backend in ("pg", "sqlite"):
                        name = f"flows_{prefix}{system}_{backend}_{round_no}"
                        print(f"  {prefix}round {round_no + 1}: {system} on {backend}", flush=True)
                        found = await runner.flows(system, backend, args.flows, name)
                        record.setdefault(prefix + backend, []).append(found["flows_per_second"])
                        if backend == "pg":
                            record.setdefault(prefix + "pg_cpu_ms", []).append(
                                found["cpu_ms_per_flow"]
                            )
                    what = f"{args.inflight} in flight, 50 ms steps"
                    print(f"  {prefix}round {round_no + 1}: {what}: {system}", flush=True)
                    name = f"inflight_{prefix}{system}_{round_no}"
                    found = await runner.inflight(system, args.inflight, name)
                    record.setdefault(prefix + "inflight_seconds", []).append(found["seconds"])
                    record.setdefault(prefix + "inflight_rss_mib", []).append(found["rss_mib"])
    checks = runner.inflight_checks
    out["ours"]["inflight_notify_per_flow"] = [c["notify_calls_per_flow"] for c in checks]
    out["ours"]["inflight_steps_run_twice"] = [c["steps_run_twice"] for c in checks]
    out["ours"]["inflight_lease_recoveries"] = [c["lease_recoveries"] for c in checks]
    keys = (
        "transactions_per_flow",
        "write_transactions_per_flow",
        "rows_written_per_flow",
        "edge_calls_per_flow",
        "state_reads_per_flow",
        "http_requests_per_flow",
    )
    return out, {k: statistics.median(c[k] for c in runner.costs) for k in keys}
