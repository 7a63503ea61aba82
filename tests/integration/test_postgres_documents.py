"""Jobs and events written to PostgreSQL as JSON documents read back exactly as they were."""

from __future__ import annotations

import asyncio

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


async def test_concurrent_step_saves_share_one_commit_and_each_stays_fenced(
    pg_repository: PostgresRepository,
) -> None:
    """Step saves of many running jobs made together are written in one transaction (rows one
    transaction wrote share its xmin); a save whose lease is lost fails alone, storing nothing."""
    from ecosign_orchestrator.core import errors
    from ecosign_orchestrator.core.events import EventType
    from ecosign_orchestrator.core.job import StepRecord, StepStatus, utcnow
    from ecosign_orchestrator.core.transitions import EventDraft
    from ecosign_orchestrator.core.types import LeaseToken

    repo = pg_repository
    await repo.enqueue_many([(NewJob(kind="k"), 1) for _ in range(30)])
    jobs = await repo.claim(worker_id="w", kinds=["k"], limit=30, lease_seconds=60)
    assert len(jobs) == 30
    step = StepRecord(name="s", status=StepStatus.RUNNING, attempts=1)

    async def save(index: int) -> object:
        job = jobs[index]
        token = LeaseToken("lost") if index == 7 else job.lease_token
        assert token is not None
        draft = EventDraft(
            job_id=job.id, type=EventType.STEP_STARTED, at=utcnow(), attempt=1, data={"n": index}
        )
        try:
            return await repo.save_steps(job.id, token, [step], [draft])
        except errors.LeaseLost as exc:
            return exc

    answers = await asyncio.gather(*(save(i) for i in range(30)))
    assert isinstance(answers[7], errors.LeaseLost)
    for index, answer in enumerate(answers):
        if index != 7:
            assert isinstance(answer, list) and answer[0].data == {"n": index}
    saved = [j.id for i, j in enumerate(jobs) if i != 7]
    async with repo._connection() as conn:
        cursor = await conn.execute(
            "SELECT count(DISTINCT xmin::text) AS commits, count(*) AS n "
            f'FROM "{repo.schema}".jobs '
            "WHERE id = ANY(%(ids)s) AND steps <> '[]'::jsonb",
            {"ids": saved},
        )
        row = await cursor.fetchone()
    assert row is not None and row["n"] == 29
    assert row["commits"] <= 2  # the first save goes alone; the rest share the next commit
    assert (await repo.get(jobs[7].id)).steps == ()
    assert [e.type for e in await repo.events(job_id=jobs[7].id)] == [
        EventType.JOB_QUEUED,
        EventType.JOB_STARTED,
    ]
