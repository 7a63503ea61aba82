"""Jobs and events written to PostgreSQL as JSON documents read back exactly as they were."""

from __future__ import annotations

import pytest

from ecosign_orchestrator.core.job import NewJob, RetryOverride
from ecosign_orchestrator.core.repository.postgres import PostgresRepository

pytestmark = pytest.mark.postgres

RICH = NewJob(
    kind="k",
    payload={"text": 'ñandú "quoted" \\ 🚀', "nested": [1, 2.5, None, {"deep": True}], "n": None},
    queue="media",
    priority=7,
    delay=3600.0,
    retry=RetryOverride(max_attempts=9, base_seconds=0.25),
    timeout=12.5,
)


async def test_a_job_reads_back_as_it_was_written_one_by_one_and_in_a_batch(
    pg_repository: PostgresRepository,
) -> None:
    repo = pg_repository
    one = (await repo.enqueue(RICH, max_attempts=4)).job
    batch = [r.job for r in await repo.enqueue_many([(RICH, 4), (NewJob(kind="plain"), 1)])]
    for written in [one, *batch]:
        assert await repo.get(written.id) == written
    events = await repo.events(limit=10)
    assert [e.type.value for e in events] == ["job_queued"] * 3
    assert [e.job_id for e in events] == [one.id, batch[0].id, batch[1].id]  # ids in input order


async def test_json_null_and_sql_null_stay_apart(pg_repository: PostgresRepository) -> None:
    """A job's empty ``result`` is the jsonb value null, its absent ``last_error`` SQL NULL,
    whichever path wrote it (as the column-per-parameter writes stored them)."""
    repo = pg_repository
    ids = [(await repo.enqueue(NewJob(kind="k"), max_attempts=1)).job.id]
    ids += [r.job.id for r in await repo.enqueue_many([(NewJob(kind="k"), 1)])]
    async with repo._connection() as conn:
        cursor = await conn.execute(
            f"SELECT id, result IS NULL AS r_sql, result = 'null'::jsonb AS r_json, "
            f"last_error IS NULL AS e_sql, dedupe_key IS NULL AS d_sql, "
            f"progress_fraction IS NULL AS p_sql, steps = '[]'::jsonb AS s_empty "
            f'FROM "{repo.schema}".jobs ORDER BY id'
        )
        rows = await cursor.fetchall()
    assert [r["id"] for r in rows] == sorted(ids)
    for row in rows:
        assert (row["r_sql"], row["r_json"], row["e_sql"]) == (False, True, True)
        assert row["d_sql"] and row["p_sql"] and row["s_empty"]
