"""A function that echoes the secrets it was sent leaks them nowhere: not in the store, not in any
answer a read-only token can get, not in the console, not in the logs (issue 19 §4).

``serve`` runs as a real process (debug logging, JSON) against its own sandbox, whose
``notify-artifact-ready`` demands a cron secret and whose functions repeat every request header,
``Authorization`` and ``x-cron-secret`` included, in their error text.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecosign_orchestrator import sandbox
from tests.support.api import serve_process
from tests.support.flows import SANDBOX_KEY, SandboxAdmin
from tests.support.procs import cli_env, eventually

CRON_SECRET = "cron-secret-echoed-5d7a1f0c93"
WRITE = "echo-write-token-2b8e4c61"
READ = "echo-read-token-9f03d7a2"
#: What must never be seen: the service key and the header secret (the tokens are the API's own).
SECRETS = (SANDBOX_KEY, CRON_SECRET)


@pytest.fixture
def echoing_sandbox() -> Iterator[str]:
    timing = sandbox.AnchorTiming(polygon=0.3, bitcoin=0.6)
    app = sandbox.create_app(SANDBOX_KEY, cron_secret=CRON_SECRET, timing=timing)
    with sandbox.SandboxServer(app) as server:
        yield server.url


@pytest.fixture
def served(echoing_sandbox: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    env = cli_env(
        f"sqlite:///{tmp_path}/jobs.db",
        {
            "EDGE_BASE_URL": echoing_sandbox,
            "SUPABASE_URL": echoing_sandbox,
            "ECOSIGN_ORCH_SERVICE_KEY": SANDBOX_KEY,
            "ECOSIGN_ORCH_STEP_HEADERS": json.dumps(
                {"notify_artifact_ready": {"x-cron-secret": CRON_SECRET}}
            ),
            "ECOSIGN_ORCH_API_TOKENS": WRITE,
            "ECOSIGN_ORCH_API_READ_TOKENS": READ,
            "ECOSIGN_ORCH_BACKOFF_SCALE": "0.002",
            "ECOSIGN_ORCH_CONFIRMATION_SCALE": "0.001",
            "ECOSIGN_ORCH_POLL_SECONDS": "0.05",
            "ECOSIGN_ORCH_LOG_LEVEL": "DEBUG",
            "ECOSIGN_ORCH_LOG_FORMAT": "json",
            "ECOSIGN_ORCH_CALL_LOG_REQUEST_BODIES": "true",
        },
    )
    log = tmp_path / "serve.log"
    with serve_process(env, log) as url:
        yield {"url": url, "log": log, "db": tmp_path / "jobs.db"}


def _store_text(db: Path) -> str:
    """Every row of every table of the job store, as text."""
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = [repr(row) for table in tables for row in conn.execute(f'SELECT * FROM "{table}"')]
    assert tables and rows
    return "\n".join(rows)


async def test_echoed_secrets_reach_no_store_answer_page_or_log(
    served: dict[str, Any], echoing_sandbox: str
) -> None:
    url = served["url"]
    admin = SandboxAdmin(echoing_sandbox)
    doc = await admin.create_document()
    echo = {"echo_headers": True}
    await admin.set_faults(
        {
            # a transient echo first (retried: step events, the call log), then a fatal one
            "build-artifact": {**echo, "fail_next": 1, "statuses": [503]},
            "notify-artifact-ready": {**echo, "rate": 1.0, "statuses": [400]},
        }
    )
    writer = {"Authorization": f"Bearer {WRITE}"}
    reader = {"Authorization": f"Bearer {READ}"}
    async with (
        httpx.AsyncClient(base_url=url, headers=writer, timeout=30) as client,
        httpx.AsyncClient(base_url=url, headers=reader, timeout=30) as read_only,
    ):
        body = {"document_entity_id": doc, "actions": {"protect": True}}
        job_id = (await client.post("/v1/document-jobs", json=body)).json()["id"]

        async def failed() -> bool:
            return (await read_only.get(f"/v1/jobs/{job_id}")).json()["status"] == "failed"

        await eventually(failed, timeout=60, what="the flow to fail at notify")
        answers = [
            await read_only.get(path)
            for path in (
                f"/v1/jobs/{job_id}",
                f"/v1/jobs/{job_id}/events",
                f"/v1/jobs/{job_id}/calls",
                "/v1/jobs",
                "/v1/jobs?status=failed&step=notify_artifact_ready",
                "/v1/failures",
                "/v1/overview",
                "/metrics",
                "/ui",
                f"/ui/flows/{job_id}",
            )
        ]
        async with read_only.stream(
            "GET", "/v1/events/stream", params={"job_id": job_id}
        ) as stream:
            streamed = [line async for line in stream.aiter_lines()]
    ledger = (await admin.ledger(doc))["calls"]
    await admin.aclose()
    assert [c["status"] for c in ledger if c["function"] == "notify-artifact-ready"] == [400]
    assert all(a.status_code == 200 for a in answers), [(a.url, a.status_code) for a in answers]
    job = answers[0].json()
    assert "request headers" in job["last_error"]["message"]  # the echo arrived, redacted
    assert "[redacted]" in job["last_error"]["message"]
    seen = {
        "store": _store_text(served["db"]),
        "answers": "\n".join(a.text for a in answers) + "\n".join(streamed),
        "log": served["log"].read_text(),
    }
    for where, text in seen.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret[:6]}... leaked into the {where}"
