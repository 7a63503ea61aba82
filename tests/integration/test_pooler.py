"""Through Supabase's pooler (PgBouncer from Debian stands in for Supavisor): the API and a
worker process, each connected through PgBouncer in transaction mode, then in session mode, run 100
document flows to ``completed``; the enqueue-to-start latency of each mode is recorded.

Transaction mode gives each transaction whichever server connection is free, so nothing may
outlive one: prepared statements are off (the URL's ``pooler`` option, or port 6543) and idle
workers poll instead of LISTEN. The repository contract runs through both modes as well
(``tests/contract``, backends ``pgbouncer-transaction`` and ``pgbouncer-session``)."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.repository import postgres_pooler
from tests.support.api import serve_process
from tests.support.flows import SANDBOX_KEY, SandboxAdmin
from tests.support.pgbouncer import PgBouncer
from tests.support.procs import ROOT, cli, cli_env, eventually, start_cli, stop

pytestmark = pytest.mark.postgres

TOKEN = "pooler-write-token-3f9a1c77"
FLOWS = 100


def test_the_pooler_option_is_read_and_removed_and_port_6543_means_transaction_mode() -> None:
    chosen = postgres_pooler.parse("postgresql://u:p%3F@h:5432/db?pooler=transaction&sslmode=off")
    assert chosen.transaction_mode and chosen.prepare_threshold is None
    assert chosen.url == "postgresql://u:p%3F@h:5432/db?sslmode=off"  # libpq never sees it
    supabase = postgres_pooler.parse("postgresql://u:p@aws-0.pooler.supabase.com:6543/postgres")
    assert supabase.pooler == "transaction"
    direct = postgres_pooler.parse("postgresql://u:p@h:6543/db?pooler=session")
    assert direct.pooler == "session" and direct.prepare_threshold == 5
    assert postgres_pooler.parse("postgresql://u:p@h/db").pooler == "none"
    with pytest.raises(errors.ConfigurationError, match="pooler='statement'"):
        postgres_pooler.parse("postgresql://h/db?pooler=statement")


def test_without_the_option_prepared_statements_break_in_transaction_mode(
    pgbouncers: Callable[[str], PgBouncer],
) -> None:
    """What the option prevents: psycopg prepares a query run five times on a connection, and
    the next transaction meets a server connection that never saw it."""
    bouncer = pgbouncers("transaction")
    failures = 0
    with (
        psycopg.connect(bouncer.url(), autocommit=True) as a,
        psycopg.connect(bouncer.url(), autocommit=True) as b,
    ):
        for _ in range(20):
            for conn in (a, b):
                try:
                    conn.execute("SELECT %s::int", (1,)).fetchone()
                except psycopg.errors.Error:
                    failures += 1
    assert failures > 0
    clean = postgres_pooler.parse(bouncer.url(pooler="transaction"))
    with (
        psycopg.connect(clean.url, autocommit=True, prepare_threshold=None) as a,
        psycopg.connect(clean.url, autocommit=True, prepare_threshold=None) as b,
    ):
        for _ in range(20):
            for conn in (a, b):
                assert conn.execute("SELECT %s::int", (1,)).fetchone() == (1,)


def _at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["at"])


async def _hundred_flows_then_latencies(
    client: httpx.AsyncClient, admin: SandboxAdmin
) -> list[float]:
    """Run ``FLOWS`` document flows to ``completed``, then measure enqueue-to-start (ms) of
    ten more, each submitted once the last one started (the workers idle)."""
    ids = []
    for _ in range(FLOWS):
        doc = await admin.create_document()
        body = {"document_entity_id": doc, "actions": {"protect": True}}
        body["forensic"] = {"tsa": True}
        created = await client.post("/v1/document-jobs", json=body)
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])

    async def all_done() -> bool:
        overview = (await client.get("/v1/overview")).json()
        return int(overview["statuses"]["completed"]) == FLOWS

    await eventually(all_done, timeout=120, interval=0.2, what=f"{FLOWS} completed")

    # Enqueue-to-start with idle workers: one flow at a time, each once the last started.
    latencies = []
    for _ in range(10):
        doc = await admin.create_document()
        created = await client.post(
            "/v1/document-jobs",
            json={"document_entity_id": doc, "actions": {"protect": True}},
        )
        job_id = created.json()["id"]

        async def started(job_id: str = job_id) -> bool:
            job = (await client.get(f"/v1/jobs/{job_id}")).json()
            return bool(job["status"] != "queued")

        await eventually(started, timeout=10, interval=0.02, what="started")
        events = (await client.get(f"/v1/jobs/{job_id}/events")).json()
        queued = next(e for e in events if e["type"] == "job_queued")
        begun = next(e for e in events if e["type"] == "job_started")
        latencies.append((_at(begun) - _at(queued)).total_seconds() * 1000)
    statuses = {(await client.get(f"/v1/jobs/{i}")).json()["status"] for i in ids}
    assert statuses == {"completed"}
    return latencies


@pytest.mark.parametrize("mode", ["transaction", "session"])
async def test_a_hundred_flows_complete_through_pgbouncer(
    mode: str,
    pgbouncers: Callable[[str], PgBouncer],
    sandbox_url: str,
    pg_schema: str,
    tmp_path: Path,
) -> None:
    bouncer = pgbouncers(mode)
    # Transaction mode needs nothing in the URL: detection by port is for Supabase's 6543,
    # so here the option says it.
    url = bouncer.url(pooler=mode) if mode == "transaction" else bouncer.url()
    env = cli_env(
        url,
        {
            "ECOSIGN_ORCH_DATABASE_SCHEMA": pg_schema,
            "EDGE_BASE_URL": sandbox_url,
            "SUPABASE_URL": sandbox_url,
            "ECOSIGN_ORCH_SERVICE_KEY": SANDBOX_KEY,
            "ECOSIGN_ORCH_API_TOKENS": TOKEN,
            "ECOSIGN_ORCH_BACKOFF_SCALE": "0.002",
            "ECOSIGN_ORCH_CONFIRMATION_SCALE": "0.001",
            "ECOSIGN_ORCH_LOG_LEVEL": "WARNING",
            "ECOSIGN_ORCH_DATABASE_POOL_SIZE": "5",
        },
    )
    migrated = cli("db", "migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    admin = SandboxAdmin(sandbox_url)
    await admin.reset()
    worker = start_cli(
        env, "worker", "--kind", "ecosign.document", "--concurrency", "20", log=tmp_path / "w.log"
    )
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        # The API runs no worker: every flow crosses processes, so a start waits on the
        # wake-up the mode allows (NOTIFY in session mode, the poll in transaction mode).
        with serve_process(env, tmp_path / "serve.log", "--no-worker") as base:
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
                latencies = await _hundred_flows_then_latencies(client, admin)
    finally:
        stopped = stop(worker)
        await admin.aclose()
    assert stopped == 0
    for log in ("serve.log", "w.log"):
        text = (tmp_path / log).read_text()
        assert "prepared statement" not in text and "Traceback" not in text, text[-3000:]
    figures = {
        "mode": mode,
        "flows": FLOWS,
        "enqueue_to_start_ms": {
            "p50": round(statistics.median(latencies), 1),
            "max": round(max(latencies), 1),
        },
    }
    out = ROOT / "test-artifacts"
    out.mkdir(exist_ok=True)
    (out / f"pooler-{mode}.json").write_text(json.dumps(figures, indent=2) + "\n")
    if mode == "transaction":  # polled, never more than one poll period plus a claim
        assert max(latencies) < 1000 * postgres_pooler.POLL_SECONDS + 500, figures
