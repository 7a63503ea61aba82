"""A plan before a flow (issue 22 §7): what a DocumentJob would do against the document's state,
from the API and the CLI, writing nothing."""

from __future__ import annotations

import json
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

READ = "plan-read-token-6a1f"
WITNESS = "ab" * 32


@pytest.fixture
async def planning(sandbox_url: str, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    settings = flow_settings(
        sandbox_url,
        database_url=SecretStr(f"sqlite:///{tmp_path}/jobs.db"),
        api_read_tokens=[SecretStr(READ)],
        api_tokens=[SecretStr("plan-write-token-0c9d")],
    )
    admin = SandboxAdmin(sandbox_url)
    await admin.reset()
    with serve_in_thread(create_app(settings)) as url:
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {READ}"}, timeout=30
        ) as client:
            yield {"admin": admin, "client": client, "sandbox": sandbox_url, "dir": tmp_path}
    await admin.aclose()


async def _witness_and_tsa(admin: SandboxAdmin, sandbox: str) -> str:
    """A document whose witness and TSA exist (the TSA by EcoSign's own run-tsa), nothing else."""
    doc = await admin.create_document()
    await admin.set_witness(doc, WITNESS, f"witness/{doc}.pdf")
    async with httpx.AsyncClient(base_url=sandbox, timeout=10) as edge:
        answer = await edge.post(
            "/functions/v1/run-tsa",
            headers={"Authorization": f"Bearer {SANDBOX_KEY}", "apikey": SANDBOX_KEY},
            json={"document_entity_id": doc, "witness_hash": WITNESS},
        )
        assert answer.status_code == 200, answer.text
    return doc


def _by_step(plan: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {s["step"]: (s["action"], s["reason"]) for s in plan["steps"]}


async def test_a_plan_skips_what_the_state_shows_done_and_writes_nothing(
    planning: dict[str, Any],
) -> None:
    admin: SandboxAdmin = planning["admin"]
    client: httpx.AsyncClient = planning["client"]
    doc = await _witness_and_tsa(admin, planning["sandbox"])
    ledger_before = await admin.ledger(doc)
    body = {"document_entity_id": doc, "actions": {"nda": True}, "forensic": {"tsa": True}}
    answer = await client.post("/v1/document-jobs:plan", json=body)
    assert answer.status_code == 200, answer.text
    plan = answer.json()
    steps = _by_step(plan)
    assert steps["create_witness"] == ("skipped", "already done: witness present")
    assert steps["append_tsa"] == ("skipped", "already done: TSA confirmed for the witness")
    required = {name for name, (action, _) in steps.items() if action == "required"}
    skipped_by_intent = {
        n for n, (a, why) in steps.items() if why == "not requested by this intent"
    }
    assert required | skipped_by_intent | {"create_witness", "append_tsa"} == set(steps)
    assert {"encrypt_source", "build_artifact", "notify_artifact_ready"} <= required
    assert plan["witness_hash"] == WITNESS and plan["joins"] is None
    # Nothing written: no job, no call to any function, no REST write (the plan reads state).
    assert (await client.get("/v1/jobs")).json()["jobs"] == []
    ledger_after = await admin.ledger(doc)
    reads_before = ledger_before.pop("rest_requests")
    reads_after = ledger_after.pop("rest_requests")
    assert ledger_after == ledger_before
    assert reads_after.get("PATCH") == reads_before.get("PATCH")
    assert reads_after["GET"] > reads_before.get("GET", 0)

    env = cli_env(
        f"sqlite:///{planning['dir']}/jobs.db",
        {
            "EDGE_BASE_URL": planning["sandbox"],
            "SUPABASE_URL": planning["sandbox"],
            "ECOSIGN_ORCH_SERVICE_KEY": SANDBOX_KEY,
        },
    )
    args = ["plan", "--document", doc, "--nda", "--tsa"]
    shown = cli(*args, env={**env, "COLUMNS": "100"})
    assert shown.returncode == 0, shown.stderr
    assert "already done: witness present" in shown.stdout
    assert "would start a new flow" in shown.stdout
    assert json.loads(cli(*args, "--json", env=env).stdout)["steps"] == plan["steps"]
    assert json.loads(cli("jobs", "list", "--json", env=env).stdout)["jobs"] == []


async def test_a_plan_names_the_flow_a_submission_would_return_and_refuses_what_it_would(
    planning: dict[str, Any],
) -> None:
    admin: SandboxAdmin = planning["admin"]
    client: httpx.AsyncClient = planning["client"]
    doc = await admin.create_document()
    body = {"document_entity_id": doc, "actions": {"protect": True}}
    writer = {"Authorization": "Bearer plan-write-token-0c9d"}
    flow = (await client.post("/v1/document-jobs", json=body, headers=writer)).json()
    planned = (await client.post("/v1/document-jobs:plan", json=body)).json()
    assert planned["joins"]["id"] == flow["id"]  # active or completed: a repeat returns it

    missing = {**body, "document_entity_id": "0b6c8a5e-5d3f-4f5e-9a41-2f4b8f1a9c10"}
    refused = await client.post("/v1/document-jobs:plan", json=missing)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "document_entity_id"
    bad = {**body, "metadata": {"witness_hash": "cd" * 32}}
    refused = await client.post("/v1/document-jobs:plan", json=bad)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "metadata.witness_hash"
