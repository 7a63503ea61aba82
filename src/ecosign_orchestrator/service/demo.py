"""``make demo``: real end-to-end document flows on the embedded defaults.

Starts the sandbox (a real HTTP server on loopback), creates documents, submits DocumentJobs with
different intents (one whose Edge Function fails transiently a few times, one that fails fatally),
runs a worker in this process on the SQLite default, and shows each flow's steps live until every
flow is terminal. Confirmation delays and backoffs are scaled down so it ends in well under a
minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sys
from typing import Any

import httpx
from pydantic import SecretStr
from rich.console import Console

from ecosign_orchestrator import ecosign, sandbox
from ecosign_orchestrator.core.types import JobId
from ecosign_orchestrator.core.worker import WorkerSettings
from ecosign_orchestrator.service import flow_view, render, wiring
from ecosign_orchestrator.service.settings import Settings
from ecosign_orchestrator.service.tables import terminal_width

SANDBOX_KEY = "demo-sandbox-service-key"

#: (label, actions, forensic, sandbox faults for this document)
SCENARIOS: list[tuple[str, dict[str, bool], dict[str, bool], dict[str, Any]]] = [
    ("protect only", {"protect": True}, {}, {}),
    (
        "protect + TSA + Polygon + Bitcoin",
        {"protect": True},
        {"tsa": True, "polygon": True, "bitcoin": True},
        {},
    ),
    ("owner signature + TSA", {"sign_owner": True}, {"tsa": True}, {}),
    ("workflow signatures + Polygon", {"sign_workflow": True}, {"polygon": True}, {}),
    ("NDA", {"nda": True}, {}, {}),
    (
        "protect + TSA, run-tsa fails 3 times (503, Retry-After)",
        {"protect": True},
        {"tsa": True},
        {"run-tsa": {"fail_next": 3, "statuses": [503], "retry_after": 0.5}},
    ),
    (
        "protect, build-artifact answers a fatal 400",
        {"protect": True},
        {},
        {
            "build-artifact": {
                "fail_next": 1,
                "statuses": [400],
                "body": {"success": False, "error": "missing_witness_pdf", "retryable": False},
            }
        },
    ),
]


#: The demo's own job store: a worker left running on the default database never takes its jobs.
DEMO_DATABASE_URL = "sqlite:///./.ecosign-orchestrator/demo.db"


def sandbox_settings(base: Settings, url: str, key: str) -> Settings:
    """The user's settings with the sandbox wired in and every delay scaled down."""
    return base.model_copy(
        update={
            "edge_base_url": url,
            "supabase_url": url,
            "service_key": SecretStr(key),
            "backoff_scale": 0.1,
            "confirmation_scale": 1 / 600,  # Polygon polls after 0.5-6 s, Bitcoin after 1.5-36 s
            "edge_timeout_scale": 0.2,
        }
    )


async def _create_documents(url: str, count: int) -> list[str]:
    headers = {"Authorization": f"Bearer {SANDBOX_KEY}"}
    async with httpx.AsyncClient(base_url=url, headers=headers) as client:
        ids = []
        for _ in range(count):
            response = await client.post("/admin/documents", json={})
            response.raise_for_status()
            ids.append(response.json()["id"])
        return ids


async def _install_faults(url: str, faults: dict[str, Any]) -> None:
    if not faults:
        return
    headers = {"Authorization": f"Bearer {SANDBOX_KEY}"}
    async with httpx.AsyncClient(base_url=url, headers=headers) as client:
        response = await client.put("/admin/faults", json=faults)
        response.raise_for_status()


async def run_document_demo(
    settings: Settings, *, live: bool, console: Console | None = None
) -> int:
    """The EcoSign demo; returns 0 when every flow ended as expected."""
    console = console or Console()
    timing = sandbox.AnchorTiming(polygon=0.4, bitcoin=1.0)  # seen at the first polls
    server = sandbox.SandboxServer(sandbox.create_app(SANDBOX_KEY, timing=timing))
    await asyncio.to_thread(server.start)
    try:
        return await _run(
            sandbox_settings(settings, server.url, SANDBOX_KEY),
            server.url,
            live=live,
            console=console,
        )
    finally:
        await asyncio.to_thread(server.stop)


async def _run(settings: Settings, url: str, *, live: bool, console: Console) -> int:
    console.print(
        f"[bold]EcoSign orchestrator demo[/] · sandbox {url} · jobs in {settings.database_location}"
    )
    documents = await _create_documents(url, len(SCENARIOS))
    faults: dict[str, Any] = {}
    for doc_id, (_, _, _, scenario_faults) in zip(documents, SCENARIOS, strict=True):
        for function, fault in scenario_faults.items():
            faults[function] = {**fault, "documents": [doc_id]}
    await _install_faults(url, faults)
    async with wiring.runtime(settings) as rt, wiring.open_repository(settings) as repository:
        queue = wiring.build_queue(repository, rt.registry)
        ids: list[JobId] = []
        for doc_id, (label, actions, forensic, _) in zip(documents, SCENARIOS, strict=True):
            intent = ecosign.DocumentJob.model_validate(
                {
                    "document_entity_id": doc_id,
                    "actions": actions,
                    "forensic": forensic,
                    "metadata": {"demo": label},
                }
            )
            ids.append((await queue.submit(ecosign.flow_request(intent))).job.id)
        worker = wiring.build_worker(settings, repository, rt, kinds=[ecosign.KIND])
        worker.settings = dataclasses.replace(
            worker.settings, poll_seconds=0.05, max_poll_seconds=0.2
        )
        task = asyncio.create_task(worker.run(), name="demo-worker")
        try:
            jobs = await flow_view.follow_flows(repository, ids, live=live, console=console)
        finally:
            worker.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    console.print(flow_view.summary_table(jobs, width=console.width))
    database = f"--database-url sqlite:///{settings.database_location}"
    console.print(
        "Look next (source .venv/bin/activate first):\n"
        f"  ecosign-orchestrator {database} jobs show {jobs[1].id[-12:]}\n"
        f"  ecosign-orchestrator {database} events {jobs[5].id[-12:]}   # the retries\n"
        "  ecosign-orchestrator dev        # sandbox + API + worker, to try your own flows",
        highlight=False,
        soft_wrap=True,
    )
    expected = ["completed"] * (len(SCENARIOS) - 1) + ["failed"]
    return 0 if [j.status.value for j in jobs] == expected else 1


async def run_core_demo(settings: Settings, *, live: bool, console: Console | None = None) -> int:
    """A few core jobs (progress, a retried one, a failing one), without the EcoSign flow."""
    console = console or Console()
    kinds = [
        ("demo.sleep", {"seconds": 1.5, "steps": 6}),
        ("demo.flaky", {"failures": 2}),
        ("demo.fail", {"reason": "the input file is corrupt (simulated)"}),
        ("demo.noop", {}),
    ]
    async with wiring.runtime(settings) as rt, wiring.open_repository(settings) as repository:
        queue = wiring.build_queue(repository, rt.registry)
        ids = [(await queue.enqueue(kind, payload)).job.id for kind, payload in kinds]
        worker = wiring.build_worker(settings, repository, rt, kinds=[k for k, _ in kinds])
        worker.settings = WorkerSettings(concurrency=4, poll_seconds=0.05, max_poll_seconds=0.2)
        task = asyncio.create_task(worker.run())
        try:
            jobs = await flow_view.follow_flows(repository, ids, live=live, console=console)
        finally:
            worker.stop()
            await task
    console.print(render.jobs_table(jobs, title="Summary", width=console.width))
    return 0


async def run_demo(settings: Settings, *, live: bool, core: bool = False) -> int:
    """The demo entry point (logs stay quiet so the live view is readable)."""
    logging.getLogger().setLevel(logging.WARNING)
    settings = settings.model_copy(update={"database_url": SecretStr(DEMO_DATABASE_URL)})
    console = Console(width=terminal_width(sys.stdout, piped=160))
    if core:
        return await run_core_demo(settings, live=live, console=console)
    return await run_document_demo(settings, live=live, console=console)
