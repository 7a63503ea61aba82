"""One contract for every JobRepository backend, parametrised in conftest (PostgreSQL too)."""

from __future__ import annotations

import asyncio

import pytest

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.events import EventType
from ecosign_orchestrator.core.job import JobError, NewJob, Progress, StepRecord, StepStatus
from ecosign_orchestrator.core.repository import JobRepository
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.core.types import JobId, LeaseToken

KINDS = ["k"]


def new(**kw: object) -> NewJob:
    return NewJob(kind="k", **kw)  # type: ignore[arg-type]


async def enqueue(repo: JobRepository, **kw: object) -> JobId:
    return (await repo.enqueue(new(**kw), max_attempts=3)).job.id


async def claim_one(repo: JobRepository, lease: float = 30.0, worker: str = "w1"):  # type: ignore[no-untyped-def]
    jobs = await repo.claim(worker_id=worker, kinds=KINDS, limit=1, lease_seconds=lease)
    assert len(jobs) == 1
    return jobs[0]


async def event_types(repo: JobRepository, job_id: JobId) -> list[str]:
    return [e.type.value for e in await repo.events(job_id=job_id)]


async def test_enqueue_then_get_round_trips_every_field(repository: JobRepository) -> None:
    payload = {"text": "ñandú ✓", "n": 1.5, "nested": {"list": [1, None, True]}}
    result = await repository.enqueue(
        new(payload=payload, queue="q1", priority=7, dedupe_key="d"), max_attempts=4
    )
    assert result.created
    job = await repository.get(result.job.id)
    assert job == result.job
    assert (job.status, job.attempts, job.max_attempts, job.priority) == (JobStatus.QUEUED, 0, 4, 7)
    assert job.payload == payload
    assert await event_types(repository, job.id) == ["job_queued"]


async def test_unknown_id_raises_job_not_found(repository: JobRepository) -> None:
    with pytest.raises(errors.JobNotFound):
        await repository.get(JobId("nope"))
    with pytest.raises(errors.JobNotFound):
        await repository.cancel(JobId("nope"))


async def test_dedupe_returns_the_active_job_and_frees_the_key_when_terminal(
    repository: JobRepository,
) -> None:
    first = await repository.enqueue(new(dedupe_key="doc-1"), max_attempts=3)
    again = await repository.enqueue(new(dedupe_key="doc-1"), max_attempts=3)
    assert first.created and not again.created
    assert again.job.id == first.job.id
    assert len(await repository.list_jobs()) == 1
    job = await claim_one(repository)
    assert job.lease_token is not None
    await repository.complete(job.id, job.lease_token, None)
    third = await repository.enqueue(new(dedupe_key="doc-1"), max_attempts=3)
    assert third.created and third.job.id != first.job.id


async def test_concurrent_enqueues_with_one_key_create_one_job(repository: JobRepository) -> None:
    results = await asyncio.gather(
        *(repository.enqueue(new(dedupe_key="same"), max_attempts=3) for _ in range(20))
    )
    assert sum(r.created for r in results) == 1
    assert len({r.job.id for r in results}) == 1


async def test_claim_orders_by_priority_then_due_time_and_skips_future_jobs(
    repository: JobRepository,
) -> None:
    low = await enqueue(repository, priority=0)
    high = await enqueue(repository, priority=5)
    await enqueue(repository, delay=3600)
    await repository.enqueue(NewJob(kind="other"), max_attempts=1)
    jobs = await repository.claim(worker_id="w", kinds=KINDS, limit=10, lease_seconds=30)
    assert [j.id for j in jobs] == [high, low]
    assert all(j.status is JobStatus.RUNNING and j.attempts == 1 for j in jobs)
    assert await repository.claim(worker_id="w", kinds=KINDS, limit=10, lease_seconds=30) == []


async def test_claim_respects_the_limit_and_each_job_goes_to_one_claimer(
    repository: JobRepository,
) -> None:
    for _ in range(10):
        await enqueue(repository)
    batches = await asyncio.gather(
        *(
            repository.claim(worker_id=f"w{i}", kinds=KINDS, limit=3, lease_seconds=30)
            for i in range(5)
        )
    )
    claimed = [j.id for batch in batches for j in batch]
    assert all(len(batch) <= 3 for batch in batches)
    assert len(claimed) == len(set(claimed)) == 10


async def test_fenced_writes_refuse_a_stale_token(repository: JobRepository) -> None:
    await enqueue(repository)
    job = await claim_one(repository)
    stale = LeaseToken("not-the-token")
    for call in (
        repository.complete(job.id, stale, None),
        repository.fail(job.id, stale, JobError(type="E", message="m", transient=False)),
        repository.heartbeat(job.id, stale, 30),
        repository.save_progress(job.id, stale, Progress(fraction=0.5)),
        repository.requeue(job.id, stale, delay=0, reason="x"),
    ):
        with pytest.raises(errors.LeaseLost):
            await call
    assert (await repository.get(job.id)).status is JobStatus.RUNNING


async def test_complete_records_result_and_events_and_is_final(repository: JobRepository) -> None:
    job_id = await enqueue(repository)
    job = await claim_one(repository)
    assert job.lease_token is not None
    assert await repository.complete(job.id, job.lease_token, {"ok": True}) is None
    done = await repository.get(job.id)
    assert done.status is JobStatus.COMPLETED and done.result == {"ok": True}
    assert done.lease_token is None and done.finished_at is not None
    assert await event_types(repository, job_id) == ["job_queued", "job_started", "job_completed"]
    with pytest.raises(errors.IllegalTransition):
        await repository.retry(job_id)
    with pytest.raises(errors.IllegalTransition):
        await repository.cancel(job_id)
    assert await repository.claim(worker_id="w", kinds=KINDS, limit=5, lease_seconds=30) == []


async def test_schedule_retry_waits_in_retrying_then_runs_again(repository: JobRepository) -> None:
    job_id = await enqueue(repository)
    job = await claim_one(repository)
    assert job.lease_token is not None
    error = JobError(type="TransientError", message="503", transient=True)
    retrying = await repository.schedule_retry(job.id, job.lease_token, error, 3600)
    assert retrying.status is JobStatus.RETRYING and retrying.last_error == error
    assert await repository.claim(worker_id="w", kinds=KINDS, limit=1, lease_seconds=30) == []
    job2 = await repository.enqueue(new(), max_attempts=3)
    second = await claim_one(repository)
    assert second.id == job2.job.id  # the retrying one is not due
    events = await repository.events(job_id=job_id)
    assert events[-1].type is EventType.JOB_RETRYING
    assert events[-1].data["delay"] == 3600


async def test_retry_with_zero_delay_is_claimable_with_attempts_counted(
    repository: JobRepository,
) -> None:
    await enqueue(repository)
    job = await claim_one(repository)
    assert job.lease_token is not None
    error = JobError(type="T", message="m", transient=True)
    await repository.schedule_retry(job.id, job.lease_token, error, 0)
    again = await claim_one(repository)
    assert again.id == job.id and again.attempts == 2
    assert again.lease_token != job.lease_token


async def test_requeue_refunds_the_attempt(repository: JobRepository) -> None:
    await enqueue(repository)
    job = await claim_one(repository)
    assert job.lease_token is not None
    snoozed = await repository.requeue(
        job.id, job.lease_token, delay=0, reason="snoozed", message="m"
    )
    assert snoozed.status is JobStatus.QUEUED and snoozed.attempts == 0
    events = await repository.events(job_id=job.id)
    assert events[-1].data["reason"] == "snoozed"


async def test_a_wait_is_a_status_of_its_own_written_once_however_often_it_is_checked(
    repository: JobRepository,
) -> None:
    from datetime import timedelta

    from ecosign_orchestrator.core.job import utcnow

    await enqueue(repository)
    job = await claim_one(repository)
    assert job.lease_token is not None
    waiting_step = StepRecord(
        name="anchor", status=StepStatus.WAITING, data={"next_poll_at": "2099-01-01T00:00:00+00:00"}
    )
    await repository.save_steps(job.id, job.lease_token, [waiting_step], [], [])
    deadline = utcnow() + timedelta(hours=72)
    first = await repository.wait(
        job.id, job.lease_token, delay=0, reason="confirmation", deadline=deadline
    )
    assert first.status is JobStatus.WAITING and first.attempts == 0
    assert first.waiting is not None and first.waiting.reason == "confirmation"
    assert first.waiting.deadline == deadline
    stored = await repository.get(job.id)
    assert stored.waiting == first.waiting  # stored, not only returned
    assert [j.id for j in await repository.list_jobs(statuses=[JobStatus.WAITING])] == [job.id]
    assert (await repository.counts())[("k", JobStatus.WAITING)] == 1
    events = len(await repository.events(job_id=job.id))
    for _ in range(3):  # three checks that find nothing new
        check = await claim_one(repository)
        assert check.id == job.id and check.lease_token is not None
        again = await repository.wait(job.id, check.lease_token, delay=0, reason="confirmation")
        assert again.waiting is not None and again.waiting.since == first.waiting.since
    logged = await repository.events(job_id=job.id)
    assert logged[events:] == []  # a check that finds nothing new writes nothing
    # ... and a check that moves on writes as any run does: here, the completion.
    check = await claim_one(repository)
    assert check.lease_token is not None and check.waiting is not None
    await repository.complete(job.id, check.lease_token, None)
    logged = await repository.events(job_id=job.id)
    assert [e.type for e in logged[events:]] == [EventType.JOB_COMPLETED]
    done = await repository.get(job.id)
    assert done.status is JobStatus.COMPLETED and done.waiting is None
    # A waiting job cancelled between checks stops waiting at once.
    await enqueue(repository)
    other = await claim_one(repository)
    assert other.lease_token is not None
    await repository.save_steps(other.id, other.lease_token, [waiting_step], [], [])
    await repository.wait(other.id, other.lease_token, delay=3600, reason="confirmation")
    job = other
    cancelled = await repository.cancel(job.id)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.waiting is None
    [step] = cancelled.steps
    assert step.status is StepStatus.PENDING and "next_poll_at" not in step.data
    assert "cancelled" in step.message


async def test_expired_lease_is_recovered_keeping_attempts(repository: JobRepository) -> None:
    await enqueue(repository)
    job = await claim_one(repository, lease=0)
    assert await repository.recover_expired() == [job.id]
    recovered = await repository.get(job.id)
    assert recovered.status is JobStatus.QUEUED and recovered.attempts == 1
    assert recovered.lease_owner is None
    assert job.lease_token is not None
    with pytest.raises(errors.LeaseLost):
        await repository.complete(job.id, job.lease_token, None)
    again = await claim_one(repository, worker="w2")
    assert again.attempts == 2
    events = await repository.events(job_id=job.id)
    assert [e.type.value for e in events] == [
        "job_queued",
        "job_started",
        "job_queued",
        "job_started",
    ]
    assert events[2].data == {"reason": "lease_expired", "worker": "w1"}


async def test_live_lease_is_not_recovered(repository: JobRepository) -> None:
    await enqueue(repository)
    await claim_one(repository, lease=3600)
    assert await repository.recover_expired() == []


async def test_expired_lease_on_last_attempt_fails_the_job(repository: JobRepository) -> None:
    await repository.enqueue(new(), max_attempts=1)
    job = await claim_one(repository, lease=0)
    await repository.recover_expired()
    failed = await repository.get(job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.last_error is not None and failed.last_error.type == "LeaseExpired"


async def test_heartbeat_extends_the_lease(repository: JobRepository) -> None:
    await enqueue(repository)
    job = await claim_one(repository, lease=0)
    assert job.lease_token is not None
    assert await repository.heartbeat(job.id, job.lease_token, 3600) is False
    assert await repository.recover_expired() == []


async def test_cancel_waiting_job_ends_it_and_running_job_gets_a_request(
    repository: JobRepository,
) -> None:
    waiting = await enqueue(repository, delay=3600)
    cancelled = await repository.cancel(waiting)
    assert cancelled.status is JobStatus.CANCELLED
    running_id = await enqueue(repository)
    job = await claim_one(repository)
    assert job.id == running_id and job.lease_token is not None
    requested = await repository.cancel(running_id)
    assert requested.status is JobStatus.RUNNING and requested.cancel_requested
    assert await repository.heartbeat(job.id, job.lease_token, 30) is True
    done = await repository.acknowledge_cancel(job.id, job.lease_token)
    assert done.status is JobStatus.CANCELLED
    assert (await repository.events(job_id=running_id))[-1].type is EventType.JOB_CANCELLED


async def test_manual_retry_of_failed_job_resets_attempts(repository: JobRepository) -> None:
    job_id = await enqueue(repository)
    job = await claim_one(repository)
    assert job.lease_token is not None
    await repository.fail(
        job.id, job.lease_token, JobError(type="F", message="bad", transient=False)
    )
    retried = await repository.retry(job_id)
    assert retried.status is JobStatus.QUEUED and retried.attempts == 0
    assert (await repository.events(job_id=job_id))[-1].data["reason"] == "manual_retry"
    with pytest.raises(errors.IllegalTransition):
        await repository.retry(job_id)  # queued cannot be "retried"


async def test_progress_and_steps_are_stored(repository: JobRepository) -> None:
    await enqueue(repository)
    job = await claim_one(repository)
    assert job.lease_token is not None
    await repository.save_progress(job.id, job.lease_token, Progress(fraction=0.25, message="a"))
    step = StepRecord(name="s1", status=StepStatus.SUCCEEDED, attempts=2, message="ok")
    await repository.save_steps(job.id, job.lease_token, [step])
    stored = await repository.get(job.id)
    assert stored.progress == Progress(fraction=0.25, message="a")
    assert stored.steps == (step,)


async def test_list_filters_and_paginates_newest_first(repository: JobRepository) -> None:
    ids = [await enqueue(repository) for _ in range(5)]
    await repository.enqueue(NewJob(kind="other"), max_attempts=1)
    page1 = await repository.list_jobs(kinds=["k"], limit=2)
    page2 = await repository.list_jobs(kinds=["k"], limit=2, before=page1[-1].id)
    page3 = await repository.list_jobs(kinds=["k"], limit=2, before=page2[-1].id)
    assert [j.id for j in page1 + page2 + page3] == list(reversed(ids))
    assert len(await repository.list_jobs(statuses=[JobStatus.QUEUED])) == 6
    assert await repository.list_jobs(statuses=[JobStatus.FAILED]) == []
    counts = await repository.counts()
    assert counts[("k", JobStatus.QUEUED)] == 5 and counts[("other", JobStatus.QUEUED)] == 1


async def test_events_resume_after_an_id(repository: JobRepository) -> None:
    for _ in range(3):
        await enqueue(repository)
    events = await repository.events()
    assert [e.id for e in events] == sorted(e.id for e in events)
    tail = await repository.events(after_id=events[0].id)
    assert [e.id for e in tail] == [e.id for e in events[1:]]
    assert await repository.events(after_id=events[-1].id) == []


async def test_bus_delivers_committed_events(repository: JobRepository) -> None:
    async with repository.bus.subscribe() as stream:
        job_id = await enqueue(repository)
        first = await anext(stream)
    assert first.job_id == job_id and first.type is EventType.JOB_QUEUED


async def test_migrate_is_idempotent(repository: JobRepository) -> None:
    assert await repository.migrate() == []
    assert await repository.schema_ready()


async def test_enqueue_many_is_one_batch_and_honours_dedupe_keys(repository: JobRepository) -> None:
    existing = await enqueue(repository, dedupe_key="taken")
    batch = [(new(payload={"i": i}), 3) for i in range(50)] + [(new(dedupe_key="taken"), 3)]
    results = await repository.enqueue_many(batch)
    assert [r.created for r in results] == [True] * 50 + [False]
    assert results[-1].job.id == existing
    assert len(await repository.list_jobs(limit=100)) == 51
    assert len(await repository.events(limit=1000)) == 51
    # keyless jobs go in bulk, keyed ones one by one: the answers keep the batch's order and
    # every created job has its job_queued event with the right id
    mixed = [(new(payload={"n": 0}), 3), (new(dedupe_key="fresh"), 3), (new(payload={"n": 2}), 3)]
    answers = await repository.enqueue_many(mixed)
    assert [r.job.payload for r in answers] == [{"n": 0}, {}, {"n": 2}]
    assert [r.job.dedupe_key for r in answers] == [None, "fresh", None]
    for answer in answers:
        assert await event_types(repository, answer.job.id) == ["job_queued"]
        assert await repository.get(answer.job.id) == answer.job


async def test_idempotency_key_returns_the_same_job_whatever_its_status(
    repository: JobRepository,
) -> None:
    first = await repository.enqueue(new(idempotency_key="k1", fingerprint="f"), max_attempts=3)
    job = await claim_one(repository)
    assert job.lease_token is not None
    await repository.complete(job.id, job.lease_token, None)
    again = await repository.enqueue(new(idempotency_key="k1", fingerprint="f"), max_attempts=3)
    assert first.created and not again.created and again.job.id == first.job.id
    assert again.job.status is JobStatus.COMPLETED
    with pytest.raises(errors.IdempotencyConflict) as info:
        await repository.enqueue(new(idempotency_key="k1", fingerprint="other"), max_attempts=3)
    assert info.value.job_id == first.job.id
    assert len(await repository.list_jobs()) == 1


async def test_concurrent_enqueues_with_one_idempotency_key_create_one_job(
    repository: JobRepository,
) -> None:
    results = await asyncio.gather(
        *(
            repository.enqueue(new(idempotency_key="same", fingerprint="f"), max_attempts=3)
            for _ in range(10)
        )
    )
    assert sum(r.created for r in results) == 1 and len({r.job.id for r in results}) == 1


async def test_dedupe_prefix_selects_by_key_prefix_with_wildcards_escaped(
    repository: JobRepository,
) -> None:
    a = await enqueue(repository, dedupe_key="doc:1:x")
    b = await enqueue(repository, dedupe_key="doc:1:y")
    await enqueue(repository, dedupe_key="doc:10:x")
    await enqueue(repository, dedupe_key="doc%1:z")
    found = await repository.list_jobs(dedupe_prefix="doc:1:")
    assert {j.id for j in found} == {a, b}
    assert await repository.list_jobs(dedupe_prefix="doc_") == []
    assert len(await repository.list_jobs(dedupe_prefix="doc%")) == 1


async def test_manual_retry_is_refused_while_a_newer_job_holds_the_dedupe_key(
    repository: JobRepository,
) -> None:
    old = await enqueue(repository, dedupe_key="flow")
    job = await claim_one(repository)
    assert job.lease_token is not None
    await repository.fail(job.id, job.lease_token, JobError(type="F", message="x", transient=False))
    newer = await enqueue(repository, dedupe_key="flow")
    with pytest.raises(errors.DuplicateJob) as info:
        await repository.retry(old)
    assert info.value.holder == newer
    assert (await repository.get(old)).status is JobStatus.FAILED


async def test_reuse_completed_returns_the_completed_job_but_never_a_failed_one(
    repository: JobRepository,
) -> None:
    first = await repository.enqueue(new(dedupe_key="flow", reuse_completed=True), max_attempts=1)
    job = await claim_one(repository)
    assert job.lease_token is not None
    await repository.complete(job.id, job.lease_token, {"done": True})
    again = await repository.enqueue(new(dedupe_key="flow", reuse_completed=True), max_attempts=1)
    assert not again.created and again.job.id == first.job.id
    plain = await repository.enqueue(new(dedupe_key="flow"), max_attempts=1)
    assert plain.created  # without reuse_completed, a completed job frees its key
    other = await claim_one(repository)
    assert other.lease_token is not None
    await repository.fail(
        other.id, other.lease_token, JobError(type="X", message="x", transient=False)
    )
    # The newest holder failed: a repeat that reuses completed work still gets the completed one.
    third = await repository.enqueue(new(dedupe_key="flow", reuse_completed=True), max_attempts=1)
    assert not third.created and third.job.id == first.job.id


async def test_a_short_id_matches_by_prefix_or_suffix_and_reports_ambiguity(
    repository: JobRepository,
) -> None:
    one = await enqueue(repository)
    two = await enqueue(repository)
    assert await repository.ids_matching(one[-12:]) == [one]
    assert await repository.ids_matching(two[-8:].upper()) == [two]
    both = await repository.ids_matching(one[:8])  # the timestamp prefix: both jobs share it
    assert sorted(both) == sorted([one, two])
    assert await repository.ids_matching("0" * 12) == []
    with pytest.raises(errors.InvalidJob):
        await repository.ids_matching("abc")
    with pytest.raises(errors.InvalidJob):
        await repository.ids_matching("%%%%%%%%%")


async def test_step_and_progress_writes_keep_a_concurrent_cancel_and_are_fenced(
    repository: JobRepository,
) -> None:
    job_id = await enqueue(repository)
    job = await claim_one(repository)
    assert job.lease_token is not None
    await repository.cancel(job_id)  # a user's cancel lands while the worker is running the job
    await repository.save_steps(
        job_id, job.lease_token, [StepRecord(name="a", status=StepStatus.RUNNING, attempts=1)]
    )
    await repository.save_progress(job_id, job.lease_token, Progress(fraction=0.5, message="half"))
    stored = await repository.get(job_id)
    assert stored.cancel_requested, "a step or progress write must not undo a cancel request"
    assert stored.steps[0].name == "a" and stored.progress == Progress(fraction=0.5, message="half")
    assert await repository.heartbeat(job_id, job.lease_token, 30.0) is True
    with pytest.raises(errors.LeaseLost):
        await repository.save_steps(job_id, LeaseToken("not-the-token"), [])
    with pytest.raises(errors.JobNotFound):
        await repository.save_progress(JobId("0" * 36), job.lease_token, Progress())


async def test_last_event_id_is_where_a_tail_from_now_starts(repository: JobRepository) -> None:
    assert await repository.last_event_id() == 0
    job_id = await enqueue(repository)
    events = await repository.events(job_id=job_id)
    assert await repository.last_event_id() == events[-1].id


async def test_a_completed_job_shows_no_earlier_transient_error(repository: JobRepository) -> None:
    job_id = await enqueue(repository)
    job = await claim_one(repository)
    assert job.lease_token is not None
    error = JobError(type="TransientError", message="503", transient=True)
    await repository.schedule_retry(job.id, job.lease_token, error, 0)
    again = await claim_one(repository)
    assert again.lease_token is not None and again.last_error == error
    await repository.complete(job_id, again.lease_token, {"ok": True})
    assert (await repository.get(job_id)).last_error is None
    assert "job_retrying" in await event_types(repository, job_id)  # the history is kept


async def test_a_cancel_request_survives_lease_recovery(repository: JobRepository) -> None:
    await enqueue(repository)
    job = await claim_one(repository, lease=0)
    cancelling = await repository.cancel(job.id)  # running: only a request its worker obeys
    assert cancelling.status is JobStatus.RUNNING and cancelling.cancel_requested
    assert await repository.recover_expired() == [job.id]  # ...but the worker is gone
    recovered = await repository.get(job.id)
    assert recovered.status is JobStatus.CANCELLED and recovered.finished_at is not None
    assert await repository.claim(worker_id="w2", kinds=KINDS, limit=1, lease_seconds=30) == []
    events = await repository.events(job_id=job.id)
    assert events[-1].type.value == "job_cancelled"
    assert events[-1].data == {"requested": True, "reason": "lease_expired", "worker": "w1"}


async def test_renew_leases_renews_every_held_lease_in_one_call(repository: JobRepository) -> None:
    ids = [await enqueue(repository) for _ in range(3)]
    claimed = await repository.claim(worker_id="w1", kinds=KINDS, limit=3, lease_seconds=0)
    assert sorted(j.id for j in claimed) == sorted(ids)
    leases = [(j.id, j.lease_token) for j in claimed if j.lease_token is not None]
    await repository.cancel(ids[0])  # a cancel request rides on the renewal's answer
    stale = (ids[1], LeaseToken("not-the-token"))
    held = await repository.renew_leases([leases[0], stale, leases[2]], 3600)
    assert held == {leases[0][0]: leases[0][0] == ids[0], leases[2][0]: leases[2][0] == ids[0]}
    assert await repository.recover_expired() == [leases[1][0]]  # only the one not renewed
    assert await repository.renew_leases([], 30) == {}


async def _finish(repo: JobRepository, count: int, *, cancel: bool = False) -> list[JobId]:
    ids = []
    for _ in range(count):
        job_id = await enqueue(repo)
        if cancel:
            await repo.cancel(job_id)
        else:
            job = await claim_one(repo)
            assert job.lease_token is not None
            await repo.complete(job.id, job.lease_token, None)
        ids.append(job_id)
    return ids


async def test_prune_deletes_old_finished_jobs_of_one_status_with_their_events_oldest_first(
    repository: JobRepository,
) -> None:
    from ecosign_orchestrator.core.job import utcnow

    old = await _finish(repository, 3)
    cutoff = utcnow()
    cancelled = await _finish(repository, 1, cancel=True)
    young = await _finish(repository, 1)
    active = await enqueue(repository)
    prunable = await repository.count_prunable(status=JobStatus.COMPLETED, finished_before=cutoff)
    assert prunable == 3
    assert await repository.prune(status=JobStatus.COMPLETED, finished_before=cutoff, limit=2) == 2
    remaining = {j.id for j in await repository.list_jobs(limit=100)}
    assert remaining == {old[2], *cancelled, *young, active}, "the two oldest went first"
    assert await repository.prune(status=JobStatus.COMPLETED, finished_before=cutoff, limit=2) == 1
    assert await repository.events(job_id=old[0]) == []
    assert {e.job_id for e in await repository.events(limit=1000)} == {*cancelled, *young, active}
    assert (
        await repository.count_prunable(status=JobStatus.CANCELLED, finished_before=utcnow()) == 1
    )
    with pytest.raises(errors.InvalidJob, match="status"):
        await repository.prune(status=JobStatus.QUEUED, finished_before=utcnow(), limit=10)
    await repository.probe_write()


async def test_step_events_are_stored_with_the_steps_in_one_fenced_write(
    repository: JobRepository,
) -> None:
    from ecosign_orchestrator.core.job import utcnow
    from ecosign_orchestrator.core.transitions import EventDraft

    await enqueue(repository)
    job = await claim_one(repository)
    assert job.lease_token is not None
    step = StepRecord(name="s", status=StepStatus.SUCCEEDED, attempts=1)
    drafts = [
        EventDraft(
            job_id=job.id, type=kind, at=utcnow(), attempt=1, data={"step": "s", "attempt": 1}
        )
        for kind in (EventType.STEP_STARTED, EventType.STEP_SUCCEEDED)
    ]
    async with repository.bus.subscribe() as bus:
        stored = await repository.save_steps(job.id, job.lease_token, [step], drafts)
        published = [await bus.next(timeout=5) for _ in stored]
    assert [e.type for e in stored] == [EventType.STEP_STARTED, EventType.STEP_SUCCEEDED]
    assert stored == (await repository.events(job_id=job.id))[-2:] == published
    assert stored[0].id < stored[1].id
    assert (await repository.get(job.id)).steps == (step,)
    with pytest.raises(errors.LeaseLost):
        await repository.save_steps(job.id, LeaseToken("not-the-token"), [], drafts)
    assert await event_types(repository, job.id) == [
        "job_queued",
        "job_started",
        "step_started",
        "step_succeeded",
    ], "a refused write stores no event"


async def test_calls_are_logged_with_the_step_save_and_pruned_with_the_job(
    repository: JobRepository,
) -> None:
    from datetime import timedelta

    from ecosign_orchestrator.core.calls import CallRecord
    from ecosign_orchestrator.core.job import utcnow

    job_id = await enqueue(repository)
    job = await claim_one(repository)
    assert job.lease_token is not None
    started = utcnow()
    calls = [
        CallRecord(
            target="run-tsa",
            step="append_tsa",
            attempt=n,
            idempotency_key=f"{job_id}:append_tsa",
            started_at=started + timedelta(seconds=n),
            duration_ms=12.5,
            status=status,
            error=error,
            response_headers={"retry-after": "2"} if status == 503 else {},
            response_body=body,
            truncated=False,
            request={"fields": {"document_entity_id": 38}},
        )
        for n, status, error, body in [
            (1, 503, "service unavailable", '{"error":"busy\x00"}'),
            (2, 200, "", '{"ok":true}'),
        ]
    ]
    step = StepRecord(name="append_tsa", status=StepStatus.SUCCEEDED, attempts=2)
    with pytest.raises(errors.LeaseLost):
        await repository.save_steps(job_id, LeaseToken("not-the-token"), [step], (), calls)
    assert await repository.calls(job_id) == [], "a refused write logs no call"
    await repository.save_steps(job_id, job.lease_token, [step], (), calls)
    logged = await repository.calls(job_id)
    assert [(c.attempt, c.status, c.error) for c in logged] == [
        (1, 503, "service unavailable"),
        (2, 200, ""),
    ]
    assert logged[0].response_body == '{"error":"busy\ufffd"}', "NUL stored as U+FFFD"
    assert logged[0].response_headers == {"retry-after": "2"}
    assert logged[0].started_at == calls[0].started_at and logged[0].duration_ms == 12.5
    assert logged[0].request == {"fields": {"document_entity_id": 38}}
    assert {c.job_id for c in logged} == {job_id} and {c.job_attempt for c in logged} == {1}
    assert logged[0].id < logged[1].id
    await repository.complete(job_id, job.lease_token, None)
    assert (
        await repository.prune(
            status=JobStatus.COMPLETED, finished_before=utcnow() + timedelta(seconds=1), limit=10
        )
        == 1
    )
    assert await repository.calls(job_id) == []


async def test_oldest_active_lists_active_jobs_oldest_first(repository: JobRepository) -> None:
    first, second, third = [await enqueue(repository) for _ in range(3)]
    job = await claim_one(repository)
    assert job.id == first and job.lease_token is not None
    await repository.cancel(second)
    assert [j.id for j in await repository.oldest_active(limit=10)] == [first, third]
    assert [j.id for j in await repository.oldest_active(limit=1)] == [first]


async def test_slots_limit_jobs_in_flight_per_key_and_die_with_their_lease(
    repository: JobRepository,
) -> None:
    for _ in range(3):
        await enqueue(repository)
    a, b, c = await repository.claim(worker_id="w", kinds=KINDS, limit=3, lease_seconds=30)
    assert a.lease_token and b.lease_token and c.lease_token
    assert await repository.acquire_slot("fn", a.id, a.lease_token, 1)
    assert await repository.acquire_slot("fn", a.id, a.lease_token, 1), "a holder may renew"
    assert not await repository.acquire_slot("fn", b.id, b.lease_token, 1)
    assert await repository.acquire_slot("other", b.id, b.lease_token, 1), "keys are apart"
    assert await repository.slots_in_use() == {"fn": 1, "other": 1}
    await repository.release_slot("fn", a.id)
    assert await repository.acquire_slot("fn", b.id, b.lease_token, 1)
    await repository.complete(b.id, b.lease_token, None)  # a finished job holds nothing
    assert await repository.acquire_slot("fn", c.id, c.lease_token, 1)
    assert await repository.slots_in_use() == {"fn": 1}


async def test_a_circuit_opens_after_failures_or_retry_after_and_one_probe_closes_it(
    repository: JobRepository,
) -> None:
    from ecosign_orchestrator.core.gates import CircuitPolicy

    policy = CircuitPolicy(failures=3, cooldown_seconds=0.3, probe_seconds=5)
    assert (await repository.circuit_gate("fn", policy)).go
    assert await repository.circuit_failure("fn", policy, None) == 0
    assert await repository.circuit_failure("fn", policy, None) == 0
    assert (await repository.circuit_gate("fn", policy)).failures == 2
    assert 0 < await repository.circuit_failure("fn", policy, None) <= 0.3, "third: open"
    held = await repository.circuit_gate("fn", policy)
    assert not held.go and 0 < held.wait_seconds <= 0.3
    assert (await repository.circuits())["fn"][0] == 3
    async with asyncio.timeout(5):
        while not (probe := await repository.circuit_gate("fn", policy)).go:
            await asyncio.sleep(held.wait_seconds)  # the cool-down is the thing under test
    assert probe.probe, "the first caller after the cool-down probes"
    other = await repository.circuit_gate("fn", policy)
    assert not other.go and other.wait_seconds <= 1.0, "the others wait for the probe"
    await repository.circuit_success("fn")
    assert (await repository.circuit_gate("fn", policy)).go
    assert await repository.circuits() == {}
    # a rate limit's Retry-After holds everyone for that long, then all go (no probe)
    paused = await repository.circuit_failure("other", policy, 0.2)
    assert paused == pytest.approx(0.2, abs=0.05)
    assert not (await repository.circuit_gate("other", policy)).go
    async with asyncio.timeout(5):
        while not (after := await repository.circuit_gate("other", policy)).go:
            await asyncio.sleep(0.05)  # the pause is the thing under test
    assert not after.probe and (await repository.circuit_gate("other", policy)).go
    off = CircuitPolicy(failures=0)
    assert await repository.circuit_failure("third", off, 2.0) == 0, "a disabled policy"


async def test_a_rate_lets_per_calls_through_each_window_and_says_how_long_to_wait(
    repository: JobRepository,
) -> None:
    assert await repository.take_rate("fn", 2, 0.4) == 0
    assert await repository.take_rate("fn", 2, 0.4) == 0
    wait = await repository.take_rate("fn", 2, 0.4)
    assert 0 < wait <= 0.4, "the third call in the window waits for the oldest to leave it"
    assert await repository.take_rate("other", 2, 0.4) == 0, "keys are apart"
    async with asyncio.timeout(5):
        while (wait := await repository.take_rate("fn", 2, 0.4)) > 0:
            await asyncio.sleep(wait)  # the window is the thing under test
