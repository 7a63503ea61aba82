"""Document-flow test harness: a real sandbox over HTTP, a real repository, an in-process worker."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from ecosign_orchestrator import ecosign, sandbox
from ecosign_orchestrator.core import Job, JobQueue, Worker, WorkerSettings
from ecosign_orchestrator.core.repository import JobRepository, SqliteRepository
from ecosign_orchestrator.core.types import JobId
from ecosign_orchestrator.service import wiring
from ecosign_orchestrator.service.settings import Settings
from tests.support.waiting import wait_job

SANDBOX_KEY = "test-sandbox-service-key"


class SandboxAdmin:
    """The sandbox's admin API."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {SANDBOX_KEY}"}, timeout=10
        )

    async def create_document(self, **fields: Any) -> str:
        response = await self.client.post("/admin/documents", json=fields)
        response.raise_for_status()
        return str(response.json()["id"])

    async def document(self, doc_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/admin/documents/{doc_id}")
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    async def ledger(self, doc_id: str | None = None) -> dict[str, Any]:
        params = {"document_entity_id": doc_id} if doc_id else {}
        response = await self.client.get("/admin/ledger", params=params)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    async def set_witness(self, doc_id: str, witness_hash: str, path: str) -> None:
        """Make a witness version current, as EcoSign's client does: a REST ``PATCH`` with the
        service key setting the witness columns and appending it to ``witness_history``."""
        history = (await self.document(doc_id)).get("witness_history") or []
        entry = {"hash": witness_hash, "mime_type": "application/pdf", "storage_path": path}
        response = await self.client.patch(
            "/rest/v1/document_entities",
            params={"id": f"eq.{doc_id}"},
            headers={"apikey": SANDBOX_KEY},
            json={
                "witness_current_hash": witness_hash,
                "witness_hash": witness_hash,
                "witness_current_storage_path": path,
                "witness_history": [*history, {**entry, "status": "generated"}],
            },
        )
        response.raise_for_status()

    async def add_request(self, doc_id: str, **options: Any) -> None:
        """Record one more protection request in the document's ledger (a signature stage):
        ``signature_flow=True, anchor_stage="final", step_index=2, witness_hash=...``."""
        response = await self.client.post(f"/admin/documents/{doc_id}/requests", json=options)
        response.raise_for_status()

    async def set_faults(self, faults: dict[str, Any]) -> None:
        response = await self.client.put("/admin/faults", json=faults)
        response.raise_for_status()

    async def set_timing(self, **timing: float | None) -> None:
        response = await self.client.put("/admin/timing", json=timing)
        response.raise_for_status()

    async def reset(self) -> None:
        (await self.client.post("/admin/reset")).raise_for_status()
        await self.set_timing(polygon=0.3, bitcoin=0.6)

    async def aclose(self) -> None:
        await self.client.aclose()


def flow_settings(url: str, **overrides: Any) -> Settings:
    """Settings pointing at the sandbox with every delay scaled down for tests."""
    values: dict[str, Any] = {
        "edge_base_url": url,
        "supabase_url": url,
        "service_key": SecretStr(SANDBOX_KEY),
        "backoff_scale": 0.002,  # TSA base 5 s -> 10 ms
        "confirmation_scale": 0.001,  # Polygon polls every 0.3-3.6 s, deadline 3.6 s
        "edge_timeout_scale": 0.2,
    }
    values.update(overrides)
    return Settings(**values)


@dataclasses.dataclass
class FlowHarness:
    """A repository, a runtime and a sandbox, for one test."""

    settings: Settings
    repository: JobRepository
    runtime: wiring.Runtime
    admin: SandboxAdmin

    @property
    def queue(self) -> JobQueue:
        return wiring.build_queue(self.repository, self.runtime.registry)

    async def submit(
        self,
        doc_id: str,
        actions: dict[str, bool],
        forensic: dict[str, bool] | None = None,
        **extra: Any,
    ) -> JobId:
        intent = ecosign.DocumentJob.model_validate(
            {"document_entity_id": doc_id, "actions": actions, "forensic": forensic or {}, **extra}
        )
        return (await self.queue.submit(ecosign.flow_request(intent))).job.id

    @contextlib.asynccontextmanager
    async def worker(
        self, concurrency: int = 8, kinds: Sequence[str] = (ecosign.KIND,)
    ) -> AsyncIterator[Worker]:
        worker = wiring.build_worker(
            self.settings, self.repository, self.runtime, kinds=list(kinds)
        )
        worker.settings = WorkerSettings(
            concurrency=concurrency, poll_seconds=0.01, max_poll_seconds=0.05, lease_seconds=10
        )
        task = asyncio.create_task(worker.run())
        try:
            yield worker
        finally:
            worker.stop()
            async with asyncio.timeout(15):
                await task

    async def run_to_end(self, ids: Sequence[JobId], timeout: float = 30) -> list[Job]:
        async with self.worker():
            return [
                await wait_job(self.repository, i, lambda j: j.status.is_terminal, timeout=timeout)
                for i in ids
            ]


@contextlib.contextmanager
def sandbox_server() -> Any:
    timing = sandbox.AnchorTiming(polygon=0.3, bitcoin=0.6)
    server = sandbox.SandboxServer(sandbox.create_app(SANDBOX_KEY, timing=timing))
    with server:
        yield server


@contextlib.asynccontextmanager
async def harness(url: str, tmp_path: Path, **overrides: Any) -> AsyncIterator[FlowHarness]:
    settings = flow_settings(url, **overrides)
    admin = SandboxAdmin(url)
    await admin.reset()
    repository = SqliteRepository(tmp_path / "jobs.db")
    async with repository, wiring.runtime(settings) as rt:
        await repository.migrate()
        try:
            yield FlowHarness(settings=settings, repository=repository, runtime=rt, admin=admin)
        finally:
            await admin.aclose()
