"""``make chaos`` phase: a worker frozen (SIGSTOP) while its flows wait on Edge calls, the flows
cancelled and recovered by another worker, then the frozen one continued (SIGCONT): it must call
nothing more (the sandbox's ledger)."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from ecosign_orchestrator.ecosign.steps import DEFAULT_FUNCTIONS
from tests.support.procs import start_cli, stop

FUNCTIONS = tuple(DEFAULT_FUNCTIONS.values())


async def _statuses(client: httpx.AsyncClient, ids: list[str]) -> list[dict[str, Any]]:
    return [(await client.get(f"/v1/jobs/{job_id}")).json() for job_id in ids]


def _calling_tsa(job: dict[str, Any]) -> bool:
    return any(s["name"] == "append_tsa" and s["status"] == "running" for s in job["steps"])


async def _until(
    client: httpx.AsyncClient, ids: list[str], condition: Any, *, timeout: float
) -> None:
    async with asyncio.timeout(timeout):
        while not all(condition(job) for job in await _statuses(client, ids)):
            await asyncio.sleep(0.2)  # a progress poll, not synchronisation


async def frozen_worker(
    env: dict[str, str], logs: Path, api: httpx.AsyncClient, admin: Any, *, flows: int
) -> dict[str, Any]:
    """The phase; what the woken worker called (nothing, when the guarantee holds)."""
    docs = [await admin.create_document() for _ in range(flows)]
    # No other faults now: every flow reaches run-tsa together and waits there 5 s (the worker
    # gives a call its full 30 s timeout here, unlike the fleet's scaled ones).
    quiet = {name: None for name in FUNCTIONS}
    await admin.set_faults({**quiet, "run-tsa": {"latency": 5.0, "documents": docs}})
    env = {**env, "ECOSIGN_ORCH_EDGE_TIMEOUT_SCALE": "1"}
    frozen = start_cli(
        env, "worker", "--kind", "ecosign.document", "--concurrency", str(flows),
        log=logs / "frozen-worker.log",
    )  # fmt: skip
    helper = None
    try:
        ids = []
        for doc in docs:
            body = {
                "document_entity_id": doc,
                "actions": {"protect": True},
                "forensic": {"tsa": True},
            }
            ids.append((await api.post("/v1/document-jobs", json=body)).json()["id"])
        await _until(api, ids, _calling_tsa, timeout=60)
        os.kill(frozen.pid, signal.SIGSTOP)
        for job_id in ids:
            await api.post(f"/v1/jobs/{job_id}/cancel")
        helper = start_cli(
            env, "worker", "--kind", "ecosign.document", log=logs / "frozen-helper.log"
        )
        await _until(api, ids, lambda job: job["status"] == "cancelled", timeout=60)
        woken = datetime.now(UTC)
        os.kill(frozen.pid, signal.SIGCONT)
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
        stop(frozen)  # a graceful stop: whatever it would call after waking, it calls before
        if helper is not None:
            stop(helper)
    calls = [c for c in (await admin.ledger())["calls"] if c["document_entity_id"] in docs]
    after = [c["function"] for c in calls if datetime.fromisoformat(c["at"]) > woken]
    return {
        "flows": flows,
        "calls in flight when frozen": sum(c["function"] == "run-tsa" for c in calls),
        "calls after waking": len(after),
    }
