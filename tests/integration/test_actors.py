"""Who did what: tokens carry names, and retries and cancels record them (issue 22 §5)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from ecosign_orchestrator.core.job import NewJob, utcnow
from ecosign_orchestrator.core.repository import MemoryRepository
from ecosign_orchestrator.service.api import create_app
from ecosign_orchestrator.service.settings import Settings
from tests.support.api import serve_in_thread
from tests.support.flows import SandboxAdmin, flow_settings
from tests.support.procs import cli, cli_env

ALICE = "alice-secret-token-7f3a9c"
LEGACY = "legacy-token-without-a-name-5b2e"
VIEWER = "viewer-secret-token-c41d"


@pytest.fixture
async def named(sandbox_url: str, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    settings = flow_settings(
        sandbox_url,
        database_url=SecretStr(f"sqlite:///{tmp_path}/jobs.db"),
        api_tokens=[SecretStr(f"ops-alice:{ALICE}"), SecretStr(LEGACY)],
        api_read_tokens=[SecretStr(f"viewer:{VIEWER}")],
    )
    admin = SandboxAdmin(sandbox_url)
    await admin.reset()
    with serve_in_thread(create_app(settings)) as url:
        clients = {
            name: httpx.AsyncClient(
                base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            for name, token in (("alice", ALICE), ("legacy", LEGACY), ("viewer", VIEWER))
        }
        try:
            yield {"admin": admin, "url": url, "db": tmp_path / "jobs.db", **clients}
        finally:
            for client in clients.values():
                await client.aclose()
    await admin.aclose()


async def _failed_flow(named: dict[str, Any]) -> str:
    admin: SandboxAdmin = named["admin"]
    doc = await admin.create_document()
    await admin.set_faults({"build-artifact": {"rate": 1.0, "statuses": [400], "documents": [doc]}})
    body = {"document_entity_id": doc, "actions": {"protect": True}}
    flow: str = (await named["alice"].post("/v1/document-jobs", json=body)).json()["id"]
    async with named["alice"].stream("GET", "/v1/events/stream", params={"job_id": flow}) as stream:
        async for line in stream.aiter_lines():
            if line.startswith("event: job_failed"):
                break
    return flow


async def test_a_retry_names_the_token_that_made_it(named: dict[str, Any]) -> None:
    flow = await _failed_flow(named)
    denied = await named["viewer"].post(f"/v1/jobs/{flow}/retry")
    assert denied.status_code == 403 and "viewer is read-only" in denied.text

    retried = await named["alice"].post(f"/v1/jobs/{flow}/retry")
    assert retried.status_code == 200, retried.text
    events = (await named["viewer"].get(f"/v1/jobs/{flow}/events")).json()
    manual = [e for e in events if e["data"].get("reason") == "manual_retry"]
    assert [e["data"]["actor"] for e in manual] == ["ops-alice"]


async def test_bulk_and_cancel_record_the_actor_and_an_unnamed_token_is_named_by_its_hash(
    named: dict[str, Any],
) -> None:
    flow = await _failed_flow(named)
    body = {"status": ["failed"], "dry_run": False}
    done = (await named["legacy"].post("/v1/jobs:retry", json=body)).json()
    assert done["done"] == 1 and done["selected"][0]["id"] == flow, done
    unnamed = "token-" + hashlib.sha256(LEGACY.encode()).hexdigest()[:8]
    events = (await named["alice"].get(f"/v1/jobs/{flow}/events")).json()
    assert [e["data"]["actor"] for e in events if "actor" in e["data"]] == [unnamed]

    # A flow due in an hour is cancelled at once: job_cancelled names the token.
    doc = await named["admin"].create_document()
    body = {"document_entity_id": doc, "actions": {"protect": True}}
    later = (
        await named["alice"].post(
            "/v1/document-jobs",
            json=body,
            params={"not_before": (utcnow() + timedelta(hours=1)).isoformat()},
        )
    ).json()["id"]
    cancelled = await named["alice"].post(f"/v1/jobs/{later}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    events += (await named["alice"].get(f"/v1/jobs/{later}/events")).json()
    assert events[-1]["type"] == "job_cancelled" and events[-1]["data"]["actor"] == "ops-alice"
    text = str(events)
    assert LEGACY not in text and ALICE not in text


async def test_a_cancel_request_to_a_running_job_is_an_event_naming_the_actor() -> None:
    repo = MemoryRepository()
    job = (await repo.enqueue(NewJob(kind="k"), max_attempts=3)).job
    await repo.claim(worker_id="w", kinds=["k"], limit=1, lease_seconds=30)
    asked = await repo.cancel(job.id, actor="ops-alice")
    assert asked.status.value == "running" and asked.cancel_requested
    await repo.cancel(job.id, actor="ops-bob")  # asked once is enough: no second event
    events = await repo.events(job_id=job.id)
    requests = [e for e in events if e.type.value == "job_cancel_requested"]
    assert [(e.data["actor"], e.data["worker"]) for e in requests] == [("ops-alice", "w")]


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("ops alice:S3CRETX", "entry 1: a token's name"),
        ("ops:S3CRETX:admin", "entry 1 (ops): the scope must be read or write"),
        ("a:S3CRETX:c:d", "entry 1: expected name:token"),
        ("ops: S3CRETX", "entry 1 (ops): the token is empty or has spaces"),
    ],
)
def test_a_bad_token_entry_names_its_position_and_never_its_secret(entry: str, says: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(api_tokens=[SecretStr(entry)])
    assert says in str(raised.value) and "S3CRETX" not in str(raised.value)
    with pytest.raises(ValidationError, match="read tokens cannot have scope write"):
        Settings(api_read_tokens=[SecretStr("viewer:abc:write")])


def test_config_show_lists_token_names_and_the_cli_acts_as_the_local_user(tmp_path: Path) -> None:
    tokens = f"ops-alice:{ALICE},{LEGACY},viewer:{VIEWER}:read"
    env = cli_env(f"sqlite:///{tmp_path}/jobs.db", {"ECOSIGN_ORCH_API_TOKENS": tokens})
    shown = cli("config", "show", env=env)
    assert shown.returncode == 0, shown.stderr
    listed = json.loads(shown.stdout)["api_tokens"]
    unnamed = "token-" + hashlib.sha256(LEGACY.encode()).hexdigest()[:8]
    assert [t.split(":")[0] for t in listed] == [
        "ops-alice (write)",
        f"{unnamed} (write)",
        "viewer (read)",
    ]
    assert ALICE not in shown.stdout and LEGACY not in shown.stdout

    enqueued = cli("jobs", "enqueue", "test.effect", "--delay", "3600", "--json", env=env)
    job_id = json.loads(enqueued.stdout)["job"]["id"]
    cancelled = cli("cancel", job_id[-12:], "--json", env=env)
    assert cancelled.returncode == 0, cancelled.stderr
    last = json.loads(cli("events", job_id, "--json", env=env).stdout)[-1]
    assert last["type"] == "job_cancelled" and last["data"]["actor"].startswith("cli:")
