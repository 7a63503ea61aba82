"""What a submission is refused for before any flow exists, and what a person is told when a
retry or a cancel cannot be done (issue 19 §2, §7): over real HTTP, and through the CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from ecosign_orchestrator.service.api import create_app
from tests.support.api import serve_in_thread
from tests.support.flows import SANDBOX_KEY, SandboxAdmin, flow_settings
from tests.support.procs import cli, cli_env

WRITE = "admission-write-token-6a2f"
MISSING = "7d0c1b36-3a57-4c2a-9a57-2f9a4f1f0042"


@pytest.fixture
async def api(sandbox_url: str, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    settings = flow_settings(
        sandbox_url,
        database_url=SecretStr(f"sqlite:///{tmp_path}/jobs.db"),
        api_tokens=[SecretStr(WRITE)],
    )
    admin = SandboxAdmin(sandbox_url)
    await admin.reset()
    with serve_in_thread(create_app(settings)) as url:
        headers = {"Authorization": f"Bearer {WRITE}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
            yield {"client": client, "admin": admin}
    await admin.aclose()


def _fields(answer: httpx.Response) -> list[str]:
    return [e["field"] for e in answer.json()["errors"]]


async def _jobs(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = (await client.get("/v1/jobs")).json()["jobs"]
    return jobs


async def test_a_document_ecosign_does_not_have_is_refused_at_submission(
    api: dict[str, Any],
) -> None:
    client: httpx.AsyncClient = api["client"]
    body = {"document_entity_id": MISSING, "actions": {"protect": True}}
    answer = await client.post("/v1/document-jobs", json=body)
    assert answer.status_code == 422, answer.text
    assert _fields(answer) == ["document_entity_id"]
    assert "no such document" in answer.json()["errors"][0]["reason"]
    doc = await api["admin"].create_document()
    batch = {"jobs": [{**body, "document_entity_id": doc}, body]}
    refused = await client.post("/v1/document-jobs:batch", json=batch)
    assert refused.status_code == 422 and _fields(refused) == ["jobs.1.document_entity_id"]
    assert await _jobs(client) == []  # nothing written, not even the batch's good item


async def test_a_witness_hash_the_document_never_had_is_refused(api: dict[str, Any]) -> None:
    client: httpx.AsyncClient = api["client"]
    doc = await api["admin"].create_document()
    witness = "ab" * 32
    await api["admin"].set_witness(doc, witness, f"{doc}/v1.pdf")
    stage = {"document_entity_id": doc, "actions": {"sign_workflow": True}}
    made_up = await client.post(
        "/v1/document-jobs",
        json={**stage, "metadata": {"anchor_stage": "initial", "witness_hash": "cd" * 32}},
    )
    assert made_up.status_code == 422 and _fields(made_up) == ["metadata.witness_hash"]
    # EcoSign writes the source hash there before a witness exists: never a hash to sign
    source = (await api["admin"].document(doc))["source_hash"]
    as_source = await client.post(
        "/v1/document-jobs", json={**stage, "metadata": {"witness_hash": source}}
    )
    assert as_source.status_code == 422 and _fields(as_source) == ["metadata.witness_hash"]
    known = await client.post(
        "/v1/document-jobs",
        json={**stage, "metadata": {"anchor_stage": "initial", "witness_hash": witness}},
    )
    assert known.status_code == 201, known.text


async def test_retry_and_cancel_of_an_ended_flow_say_so_in_words(api: dict[str, Any]) -> None:
    client: httpx.AsyncClient = api["client"]
    doc = await api["admin"].create_document()
    body = {"document_entity_id": doc, "actions": {"protect": True}}
    job_id = (await client.post("/v1/document-jobs", json=body)).json()["id"]
    async with client.stream("GET", "/v1/events/stream", params={"job_id": job_id}) as stream:
        async for _ in stream.aiter_lines():
            pass  # the stream ends after the flow's terminal event
    retried = await client.post(f"/v1/jobs/{job_id}/retry")
    assert retried.status_code == 409
    assert retried.json()["detail"] == (
        f"job {job_id}: already completed: there is nothing to retry"
    )
    cancelled = await client.post(f"/v1/jobs/{job_id}/cancel")
    assert cancelled.status_code == 409
    assert "already completed: an ended job cannot be cancelled" in cancelled.json()["detail"]
    assert "transition" not in retried.text + cancelled.text


def test_the_cli_refuses_a_missing_document_with_exit_2(sandbox_url: str, tmp_path: Path) -> None:
    env = cli_env(
        f"sqlite:///{tmp_path}/jobs.db",
        {
            "EDGE_BASE_URL": sandbox_url,
            "SUPABASE_URL": sandbox_url,
            "ECOSIGN_ORCH_SERVICE_KEY": SANDBOX_KEY,
        },
    )
    result = cli("submit", "--document", MISSING, "--protect", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "document_entity_id: no such document in EcoSign" in result.stderr
    listed = cli("jobs", "list", "--json", env=env)
    assert listed.returncode == 0 and '"id"' not in listed.stdout


async def test_a_job_stream_resumed_after_its_end_ends_at_once(api: dict[str, Any]) -> None:
    """A browser's EventSource reconnects with the terminal event's id: it is told (204) that
    nothing more will come, instead of holding a connection forever."""
    client: httpx.AsyncClient = api["client"]
    doc = await api["admin"].create_document()
    body = {"document_entity_id": doc, "actions": {"protect": True}}
    job_id = (await client.post("/v1/document-jobs", json=body)).json()["id"]
    ids = []
    async with client.stream("GET", "/v1/events/stream", params={"job_id": job_id}) as stream:
        async for line in stream.aiter_lines():
            if line.startswith("id: "):
                ids.append(int(line.removeprefix("id: ")))
    last = ids[-1]  # the terminal event's
    resumed = await client.get(
        f"/v1/events/stream?job_id={job_id}", headers={"Last-Event-ID": str(last)}
    )
    assert resumed.status_code == 204
    after = await client.get("/v1/events/stream", params={"job_id": job_id, "after": last + 5})
    assert after.status_code == 204
    async with client.stream(
        "GET", "/v1/events/stream", params={"job_id": job_id, "after": ids[-2]}
    ) as stream:  # resumed before the end: the rest, then the stream ends
        rest = [line async for line in stream.aiter_lines() if line.startswith("id: ")]
    assert rest == [f"id: {last}"]
