"""``serve`` as a real process against the sandbox: a CTA's flow over HTTP and SSE, CLI parity
through ``--api-url``, and no secret in any log line or answer (debug logging on)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.api import serve_process
from tests.support.flows import SANDBOX_KEY, SandboxAdmin
from tests.support.procs import cli, cli_env

WRITE = "serve-write-token-7c1e55aa"
READ = "serve-read-token-0b9d23ff"
SECRETS = (SANDBOX_KEY, WRITE, READ)


@pytest.fixture
def served(sandbox_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    env = cli_env(
        f"sqlite:///{tmp_path}/jobs.db",
        {
            "EDGE_BASE_URL": sandbox_url,
            "SUPABASE_URL": sandbox_url,
            "ECOSIGN_ORCH_SERVICE_KEY": SANDBOX_KEY,
            "ECOSIGN_ORCH_API_TOKENS": WRITE,
            "ECOSIGN_ORCH_API_READ_TOKENS": READ,
            "ECOSIGN_ORCH_BACKOFF_SCALE": "0.002",
            "ECOSIGN_ORCH_CONFIRMATION_SCALE": "0.001",
            "ECOSIGN_ORCH_POLL_SECONDS": "0.05",
            "ECOSIGN_ORCH_LOG_LEVEL": "DEBUG",
            "ECOSIGN_ORCH_LOG_FORMAT": "json",
        },
    )
    log = tmp_path / "serve.log"
    with serve_process(env, log) as url:
        yield {"url": url, "env": env, "log": log}


async def test_a_cta_flow_over_http_and_sse_then_the_cli_against_the_api(
    served: dict[str, Any], sandbox_url: str
) -> None:
    url = served["url"]
    admin = SandboxAdmin(sandbox_url)
    await admin.reset()
    doc = await admin.create_document()
    seen: list[str] = []  # every byte the API answered, for the leak check
    headers = {"Authorization": f"Bearer {WRITE}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        body = {
            "document_entity_id": doc,
            "actions": {"protect": True},
            "forensic": {"tsa": True, "bitcoin": True},
        }
        created = await client.post(
            "/v1/document-jobs", json=body, headers={"Idempotency-Key": "e2e-1"}
        )
        assert created.status_code == 201, created.text
        seen.append(created.text)
        job_id = created.json()["id"]
        types: list[str] = []
        async with client.stream("GET", "/v1/events/stream", params={"job_id": job_id}) as stream:
            async for line in stream.aiter_lines():
                seen.append(line)
                if line.startswith("event: "):
                    types.append(line.removeprefix("event: "))
                    if types[-1] in ("job_completed", "job_failed"):
                        break
        assert types[0] == "job_queued" and types[-1] == "job_completed"
        final = await client.get(f"/v1/jobs/{job_id}")
        seen.append(final.text)
        job = final.json()
        assert [s["name"] for s in job["steps"]] == [
            "encrypt_source",
            "create_witness",
            "append_tsa",
            "anchor_polygon",
            "anchor_bitcoin",
            "build_artifact",
            "notify_artifact_ready",
        ]
        assert [s["status"] for s in job["steps"]] == [
            "succeeded",
            "succeeded",
            "succeeded",
            "skipped",
            "succeeded",
            "succeeded",
            "succeeded",
        ]
        for response in (
            await client.get("/v1/jobs/missing"),
            await client.get("/v1/jobs", headers={"Authorization": "Bearer wrong"}),
            await client.post(
                "/v1/document-jobs", content=b"{", headers={"Content-Type": "application/json"}
            ),
            await client.get("/metrics"),
            await client.get("/openapi.json"),
        ):
            seen.append(response.text)
    await admin.aclose()

    remote = {**served["env"], "ECOSIGN_ORCH_API_URL": url, "ECOSIGN_ORCH_API_TOKEN": READ}
    status = cli("status", job_id, "--json", env=remote)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["status"] == "completed"
    events = cli("events", job_id, "--follow", "--json", env=remote, timeout=60)
    assert events.returncode == 0, events.stderr
    assert json.loads(events.stdout.strip().splitlines()[-1])["type"] == "job_completed"
    listing = cli("jobs", "list", "--document", doc, "--json", env=remote)
    assert [j["id"] for j in json.loads(listing.stdout)["jobs"]] == [job_id]
    refused = cli("retry", job_id, env=remote)  # a read-only token cannot act
    assert refused.returncode == 2 and "403" in refused.stderr
    missing = cli("status", "no-such-job", env=remote)
    assert missing.returncode == 2 and "404" in missing.stderr
    writer = {**remote, "ECOSIGN_ORCH_API_TOKEN": WRITE}
    conflict = cli("cancel", job_id, env=writer)
    assert conflict.returncode == 2 and "409" in conflict.stderr
    for result in (status, events, listing, refused, missing, conflict):
        seen.extend([result.stdout, result.stderr])

    log = served["log"].read_text()
    assert '"level": "debug"' in log and "edge_call" in log  # debug logging really was on
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    job_lines = [
        entry
        for entry in lines
        if entry.get("job_id") == job_id and entry.get("action") == "edge_call"
    ]
    assert job_lines and all(
        entry.get("document_id") == doc and entry.get("step") for entry in job_lines
    )
    assert all("attempt" in entry for entry in job_lines)
    for secret in SECRETS:
        assert secret not in log, "a secret reached the log"
        assert all(secret not in text for text in seen), "a secret reached an answer or the CLI"
