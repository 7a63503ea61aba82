"""/readyz proves the job store can commit, not only that it answers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import psycopg
import pytest
from pydantic import SecretStr

from ecosign_orchestrator.core.repository.postgres import PostgresRepository
from ecosign_orchestrator.service.api import create_app
from ecosign_orchestrator.service.settings import Settings
from ecosign_orchestrator.service.wiring import document_migrations
from tests.support.api import serve_in_thread
from tests.support.pgcluster import PostgresCluster

pytestmark = pytest.mark.postgres
TOKEN = "readiness-test-token-0a9b8c7d"


def _set_read_only(cluster: PostgresCluster, on: bool) -> None:
    """The whole server refuses writes from the next statement on (as after a failover to a
    read-only node, or when an operator fences it); this test process owns its cluster."""
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        if on:
            conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        else:
            conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
        conn.execute("SELECT pg_reload_conf()")


@pytest.fixture
async def api(pg_cluster: PostgresCluster) -> AsyncIterator[httpx.AsyncClient]:
    url = pg_cluster.create_database(f"ready_{uuid.uuid4().hex[:8]}")
    async with PostgresRepository(url, migrations=document_migrations()) as repo:
        await repo.migrate()
    settings = Settings(database_url=SecretStr(url), api_tokens=[SecretStr(TOKEN)])
    with serve_in_thread(create_app(settings)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            yield client


async def _wait_ready(client: httpx.AsyncClient, expected: int) -> httpx.Response:
    """The server applies a reload between statements: wait (bounded) for it to show."""
    async with asyncio.timeout(10):
        while (answer := await client.get("/readyz")).status_code != expected:
            await asyncio.sleep(0.05)
    return answer


async def test_readyz_is_503_while_the_store_refuses_writes_and_200_again_after(
    api: httpx.AsyncClient, pg_cluster: PostgresCluster
) -> None:
    assert (await api.get("/readyz")).json() == {"status": "ok", "detail": ""}
    _set_read_only(pg_cluster, True)
    try:
        refused = await _wait_ready(api, 503)
        body = refused.json()
        assert body["status"] == "unavailable"
        assert body["detail"].startswith("the job store does not accept writes")
        listed = await api.get("/v1/jobs", headers={"Authorization": f"Bearer {TOKEN}"})
        assert listed.status_code == 200, "reads still work: only a write probe tells"
    finally:
        _set_read_only(pg_cluster, False)
    assert (await _wait_ready(api, 200)).json()["status"] == "ok"
