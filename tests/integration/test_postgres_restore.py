"""The event stream survives a dump and restore into a server whose transaction count is lower
(a backup restored elsewhere, a move to another Supabase project): every event once, in commit
order, for a reader from 0 and for one resuming from its last id (issue 23 §1)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import psycopg
import pytest

from ecosign_orchestrator.core.job import NewJob
from ecosign_orchestrator.core.repository.postgres import PostgresRepository
from tests.support.pgcluster import PostgresCluster, start_cluster

pytestmark = pytest.mark.postgres

SCHEMA = "restored"


def _xid(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint"
        ).fetchone()
        assert row is not None
        return int(row[0])


def _burn_transactions(url: str, count: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(count):
            conn.execute("SELECT pg_current_xact_id()")


@pytest.fixture
def target() -> Iterator[PostgresCluster]:
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.destroy()


async def _write_events(repo: PostgresRepository, n: int) -> None:
    for i in range(n):
        await repo.enqueue(NewJob(kind="demo.noop", payload={"i": i}), max_attempts=1)


async def _read_all(repo: PostgresRepository, after: int) -> list[int]:
    ids: list[int] = []
    while True:
        batch = await repo.events(after_id=after, limit=3)  # small pages: the cursor is used
        if not batch:
            return ids
        ids += [e.id for e in batch]
        after = batch[-1].id


async def test_a_restored_stream_keeps_every_event_in_order(
    pg_cluster: PostgresCluster, target: PostgresCluster
) -> None:
    source_url = pg_cluster.url()
    # the events are written by transactions the fresh target's count is far below
    _burn_transactions(source_url, max(0, _xid(target.url()) + 2000 - _xid(source_url)))
    assert _xid(source_url) > _xid(target.url()) + 1000
    async with PostgresRepository(source_url, schema=SCHEMA) as source:
        await source.migrate()
        await _write_events(source, 10)
        before = await _read_all(source, 0)
    dump = subprocess.run(
        [str(pg_cluster.bindir / "pg_dump"), "--no-owner", "-n", SCHEMA, source_url],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    subprocess.run(
        [str(target.bindir / "psql"), "-v", "ON_ERROR_STOP=1", "-q", target.url()],
        input=dump,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    async with PostgresRepository(target.url(), schema=SCHEMA) as restored:
        assert await _read_all(restored, 0) == before  # the old log, whole, as it was
        await _write_events(restored, 10)
        resumed = await _read_all(restored, before[-1])
        from_zero = await _read_all(restored, 0)
        eras = await _eras(target.url())
    assert len(before) == 10 and len(resumed) == 10  # a reader resuming gets the 10 new ones
    assert from_zero == before + resumed  # a reader from 0 gets all 20, old then new, once
    assert resumed == sorted(resumed) and resumed[0] > before[-1]
    assert eras == [0, 1]  # the restored server began a new era of the stream


async def _eras(url: str) -> list[int]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cursor = await conn.execute(f"SELECT era FROM {SCHEMA}.stream_eras ORDER BY era")
        return [row[0] for row in await cursor.fetchall()]


async def test_a_healthy_server_stays_in_its_era(pg_repository: PostgresRepository) -> None:
    await _write_events(pg_repository, 3)
    await pg_repository.migrate()  # migrate and every open check the era: nothing to do
    await _write_events(pg_repository, 3)
    events = await pg_repository.events(after_id=0, limit=100)
    assert [e.id for e in events] == sorted(e.id for e in events) and len(events) == 6
