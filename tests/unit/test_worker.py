"""Worker behaviour, in process, on the in-memory repository."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable

import pytest

from ecosign_orchestrator.core import (
    FatalError,
    JobContext,
    JobQueue,
    JobStatus,
    Registry,
    RetryPolicy,
    Snooze,
    TransientError,
    Worker,
    WorkerSettings,
)
from ecosign_orchestrator.core.job import NewJob, StepStatus
from ecosign_orchestrator.core.repository import MemoryRepository
from ecosign_orchestrator.core.types import JSONValue
from tests.support.waiting import wait_job, wait_status

FAST = RetryPolicy(max_attempts=3, base_seconds=0.001, cap_seconds=0.01)


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
async def start(
    memory_repository: MemoryRepository, registry: Registry
) -> AsyncIterator[Callable[..., Worker]]:
    workers: list[tuple[Worker, asyncio.Task[None]]] = []

    def _start(**settings: object) -> Worker:
        options = {"poll_seconds": 0.01, "max_poll_seconds": 0.05, "lease_seconds": 5, **settings}
        worker = Worker(
            memory_repository,
            registry,
            settings=WorkerSettings(**options),  # type: ignore[arg-type]
            rng=random.Random(0),
        )
        workers.append((worker, asyncio.create_task(worker.run())))
        return worker

    yield _start
    for worker, task in workers:
        worker.stop()
        async with asyncio.timeout(10):
            await task


async def test_transient_errors_retry_with_backoff_until_success(
    memory_repository: MemoryRepository, registry: Registry, start: Callable[..., Worker]
) -> None:
    @registry.processor("flaky", retry=FAST)
    async def flaky(ctx: JobContext) -> JSONValue:
        if ctx.attempt < 3:
            raise TransientError("503", retry_after=0.001)
        return {"attempt": ctx.attempt}

    job_id = (await JobQueue(memory_repository, registry).enqueue("flaky")).job.id
    start()
    job = await wait_status(memory_repository, job_id, JobStatus.COMPLETED)
    assert job.attempts == 3 and job.result == {"attempt": 3}
    types = [e.type.value for e in await memory_repository.events(job_id=job_id)]
    assert types == [
        "job_queued",
        "job_started",
        "job_retrying",
        "job_started",
        "job_retrying",
        "job_started",
        "job_completed",
    ]


async def test_attempts_exhausted_fails_the_job(
    memory_repository: MemoryRepository, registry: Registry, start: Callable[..., Worker]
) -> None:
    @registry.processor("down", retry=FAST)
    async def down(ctx: JobContext) -> JSONValue:
        raise TransientError("still down")

    job_id = (await JobQueue(memory_repository, registry).enqueue("down")).job.id
    start()
    job = await wait_status(memory_repository, job_id, JobStatus.FAILED)
    assert job.attempts == 3
    assert job.last_error is not None and job.last_error.transient
    assert "attempts exhausted: 3/3" in job.last_error.message


@pytest.mark.parametrize(
    ("exc", "type_name"),
    [(FatalError("bad input"), "FatalError"), (ZeroDivisionError("boom"), "ZeroDivisionError")],
)
async def test_fatal_and_unexpected_errors_fail_at_once(
    memory_repository: MemoryRepository,
    registry: Registry,
    start: Callable[..., Worker],
    exc: Exception,
    type_name: str,
) -> None:
    @registry.processor("bad", retry=FAST)
    async def bad(ctx: JobContext) -> JSONValue:
        raise exc

    job_id = (await JobQueue(memory_repository, registry).enqueue("bad")).job.id
    start()
    job = await wait_status(memory_repository, job_id, JobStatus.FAILED)
    assert job.attempts == 1
    assert job.last_error is not None
    assert (job.last_error.type, job.last_error.message) == (type_name, str(exc))
    assert not job.last_error.transient
    assert "Traceback" not in job.last_error.message


async def test_snooze_runs_again_without_spending_attempts(
    memory_repository: MemoryRepository, registry: Registry, start: Callable[..., Worker]
) -> None:
    runs: list[int] = []

    @registry.processor("waiter", retry=RetryPolicy(max_attempts=1))
    async def waiter(ctx: JobContext) -> JSONValue:
        runs.append(ctx.attempt)
        if len(runs) < 5:
            raise Snooze(0, "waiting for confirmation")
        return len(runs)

    job_id = (await JobQueue(memory_repository, registry).enqueue("waiter")).job.id
    start()
    job = await wait_status(memory_repository, job_id, JobStatus.COMPLETED)
    assert runs == [1, 1, 1, 1, 1] and job.attempts == 1 and job.result == 5


async def test_timeout_counts_as_a_transient_failure(
    memory_repository: MemoryRepository, registry: Registry, start: Callable[..., Worker]
) -> None:
    @registry.processor("slow", retry=RetryPolicy(max_attempts=2, base_seconds=0.001), timeout=0.05)
    async def slow(ctx: JobContext) -> JSONValue:
        if ctx.attempt == 1:
            await asyncio.Event().wait()
        return "ok"

    job_id = (await JobQueue(memory_repository, registry).enqueue("slow")).job.id
    start()
    job = await wait_status(memory_repository, job_id, JobStatus.COMPLETED)
    events = await memory_repository.events(job_id=job_id)
    retry = next(e for e in events if e.type.value == "job_retrying")
    assert retry.data["error"]["type"] == "JobTimeout"  # type: ignore[index]
    assert job.attempts == 2


async def test_cancelling_a_running_job_stops_its_processor(
    memory_repository: MemoryRepository, registry: Registry, start: Callable[..., Worker]
) -> None:
    cleaned = asyncio.Event()

    @registry.processor("long", retry=FAST)
    async def long(ctx: JobContext) -> JSONValue:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.set()
        return None

    job_id = (await JobQueue(memory_repository, registry).enqueue("long")).job.id
    start(heartbeat_seconds=0.02)
    await wait_status(memory_repository, job_id, JobStatus.RUNNING)
    await memory_repository.cancel(job_id)
    job = await wait_status(memory_repository, job_id, JobStatus.CANCELLED)
    assert cleaned.is_set() and job.lease_token is None


async def test_steps_and_progress_are_recorded_through_the_context(
    memory_repository: MemoryRepository, registry: Registry, start: Callable[..., Worker]
) -> None:
    @registry.processor("stepped", retry=FAST)
    async def stepped(ctx: JobContext) -> JSONValue:
        await ctx.plan_steps(["one", "two", "three"])
        await ctx.step_started("one")
        await ctx.step_succeeded("one", "done", {"x": 1})
        await ctx.step_skipped("two", "already satisfied")
        await ctx.progress(0.9, "almost")
        return None

    job_id = (await JobQueue(memory_repository, registry).enqueue("stepped")).job.id
    start()
    job = await wait_status(memory_repository, job_id, JobStatus.COMPLETED)
    steps = {s.name: s for s in job.steps}
    assert [s.name for s in job.steps] == ["one", "two", "three"]
    assert steps["one"].status is StepStatus.SUCCEEDED and steps["one"].attempts == 1
    assert steps["one"].started_at is not None and steps["one"].finished_at is not None
    assert steps["one"].data == {"x": 1}
    assert steps["two"].status is StepStatus.SKIPPED and steps["two"].attempts == 0
    assert steps["three"].status is StepStatus.PENDING
    assert job.progress.fraction == 1.0 and job.progress.message == "almost"
    events = await memory_repository.events(job_id=job_id)
    assert [(e.type.value, e.data.get("step")) for e in events] == [
        ("job_queued", None),
        ("job_started", None),
        ("step_started", "one"),
        ("step_succeeded", "one"),
        ("step_skipped", "two"),
        ("job_completed", None),
    ], "planning emits nothing; each step change one event, between start and end"
    assert events[4].data == {"step": "two", "attempt": 0, "message": "already satisfied"}


async def test_graceful_stop_releases_jobs_that_outlive_the_grace_period(
    memory_repository: MemoryRepository, registry: Registry
) -> None:
    @registry.processor("forever", retry=FAST)
    async def forever(ctx: JobContext) -> JSONValue:
        await asyncio.Event().wait()
        return None

    queue = JobQueue(memory_repository, registry)
    forever_id = (await queue.enqueue("forever")).job.id
    worker = Worker(
        memory_repository,
        registry,
        settings=WorkerSettings(poll_seconds=0.01, shutdown_grace_seconds=0.05),
    )
    task = asyncio.create_task(worker.run())
    await wait_status(memory_repository, forever_id, JobStatus.RUNNING)
    worker.stop()
    async with asyncio.timeout(5):
        await task
    job = await memory_repository.get(forever_id)
    assert job.status is JobStatus.QUEUED and job.attempts == 0
    last = (await memory_repository.events(job_id=forever_id))[-1]
    assert last.data["reason"] == "released"


async def test_progress_writes_are_throttled(
    memory_repository: MemoryRepository, registry: Registry, start: Callable[..., Worker]
) -> None:
    writes: list[float | None] = []
    original = memory_repository.save_progress

    async def counting(job_id, token, progress):  # type: ignore[no-untyped-def]
        writes.append(progress.fraction)
        await original(job_id, token, progress)

    memory_repository.save_progress = counting  # type: ignore[method-assign]

    @registry.processor("chatty", retry=FAST)
    async def chatty(ctx: JobContext) -> JSONValue:
        for i in range(1000):
            await ctx.progress(i / 1000)
        return None

    job_id = (await JobQueue(memory_repository, registry).enqueue("chatty")).job.id
    start()
    await wait_job(memory_repository, job_id, lambda j: j.status is JobStatus.COMPLETED)
    assert 1 <= len(writes) <= 5  # first write, then the final flush
    assert writes[-1] == 0.999


async def test_workers_prune_finished_jobs_past_their_retention_and_keep_the_rest(
    memory_repository: MemoryRepository, registry: Registry, start: Callable[..., Worker]
) -> None:
    from datetime import timedelta

    from ecosign_orchestrator.core import RetentionPolicy, errors

    async def noop(ctx: JobContext) -> JSONValue:
        return None

    async def boom(ctx: JobContext) -> JSONValue:
        raise FatalError("no")

    registry.register("noop", noop)
    registry.register("boom", boom)
    policy = RetentionPolicy(
        keep={JobStatus.COMPLETED: timedelta(0), JobStatus.FAILED: None}, every_seconds=0.01
    )
    start(retention=policy)
    queue = JobQueue(memory_repository, registry)
    done = (await queue.submit(NewJob(kind="noop"))).job.id
    failed = (await queue.submit(NewJob(kind="boom"))).job.id
    await wait_status(memory_repository, failed, JobStatus.FAILED)
    async with asyncio.timeout(5):
        while done in memory_repository.jobs:
            await asyncio.sleep(0.01)  # a condition wait: deletion emits no event
    with pytest.raises(errors.JobNotFound):
        await memory_repository.get(done)
    assert await memory_repository.events(job_id=done) == []
    assert (await memory_repository.get(failed)).status is JobStatus.FAILED, "kept forever"


async def test_a_capped_kind_never_takes_more_than_its_slots_and_others_keep_flowing(
    memory_repository: MemoryRepository, registry: Registry, start: Callable[..., Worker]
) -> None:
    release = asyncio.Event()
    running = 0
    peak = 0

    @registry.processor("heavy", retry=FAST)
    async def heavy(ctx: JobContext) -> JSONValue:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1
        return None

    @registry.processor("light", retry=FAST)
    async def light(ctx: JobContext) -> JSONValue:
        return None

    queue = JobQueue(memory_repository, registry)
    heavies = [(await queue.enqueue("heavy")).job.id for _ in range(4)]
    lights = [(await queue.enqueue("light")).job.id for _ in range(3)]
    start(concurrency=4, kind_concurrency={"heavy": 1})
    for job_id in lights:  # the capped kind holds one slot; the others are free for these
        await wait_status(memory_repository, job_id, JobStatus.COMPLETED)
    assert peak == 1
    assert [(await memory_repository.get(j)).status for j in heavies].count(JobStatus.RUNNING) == 1
    release.set()
    for job_id in heavies:
        await wait_status(memory_repository, job_id, JobStatus.COMPLETED)
    assert peak == 1


async def test_a_store_error_under_the_processor_is_retried_not_fatal(
    memory_repository: MemoryRepository, registry: Registry, start: Callable[..., Worker]
) -> None:
    from ecosign_orchestrator.core import errors

    runs = 0

    @registry.processor("gated", retry=FAST)
    async def gated(ctx: JobContext) -> JSONValue:
        nonlocal runs
        runs += 1
        if runs == 1:  # e.g. a circuit check while the database restarts
            raise errors.RepositoryError("postgresql: AdminShutdown: terminating connection")
        return "ok"

    job_id = (await JobQueue(memory_repository, registry).enqueue("gated")).job.id
    start()
    job = await wait_status(memory_repository, job_id, JobStatus.COMPLETED, JobStatus.FAILED)
    assert job.status is JobStatus.COMPLETED and runs == 2


async def test_a_job_whose_outcome_is_being_written_frees_its_slot_up_to_a_bound(
    memory_repository: MemoryRepository, registry: Registry, start: Callable[..., Worker]
) -> None:
    """Waiting for the store to commit an outcome is not work: the slot takes the next job.
    At most ``concurrency`` outcomes may be pending, so a slow store still holds claims back."""
    commit, two_pending = asyncio.Event(), asyncio.Event()
    pending: list[str] = []
    original = memory_repository.complete

    async def slow_complete(job_id, token, result, *, steps=None):  # type: ignore[no-untyped-def]
        pending.append(job_id)
        if len(pending) == 2:
            two_pending.set()
        await commit.wait()
        return await original(job_id, token, result, steps=steps)

    memory_repository.complete = slow_complete  # type: ignore[method-assign]
    started: list[str] = []

    @registry.processor("quick", retry=FAST)
    async def quick(ctx: JobContext) -> JSONValue:
        started.append(ctx.job.id)
        return None

    queue = JobQueue(memory_repository, registry)
    ids = [(await queue.enqueue("quick")).job.id for _ in range(3)]
    worker = start(concurrency=1)
    async with asyncio.timeout(5):
        await two_pending.wait()  # the second ran while the first's outcome was pending
    assert started == ids[:2]
    assert worker._free_slots() == 0, "bound: one pending outcome per slot"
    assert (await memory_repository.get(ids[2])).status is JobStatus.QUEUED
    commit.set()
    for job_id in ids:
        await wait_status(memory_repository, job_id, JobStatus.COMPLETED)
    assert started == ids


async def test_a_freed_slot_does_not_make_an_idle_worker_claim_again(
    memory_repository: MemoryRepository, registry: Registry, start: Callable[..., Worker]
) -> None:
    """Once a claim found fewer jobs than it asked for, only the store's wake-up (here an
    enqueue) or the poll makes the worker claim again: each finished job used to cost an empty
    claim (and a due-time query)."""
    claims: list[int] = []
    original = memory_repository.claim

    async def counting_claim(**options):  # type: ignore[no-untyped-def]
        claimed = await original(**options)
        claims.append(len(claimed))
        return claimed

    memory_repository.claim = counting_claim  # type: ignore[method-assign]

    @registry.processor("quick", retry=FAST)
    async def quick(ctx: JobContext) -> JSONValue:
        return None

    queue = JobQueue(memory_repository, registry)
    start(concurrency=4, poll_seconds=60, max_poll_seconds=60)  # no poll within the test
    for _ in range(3):
        job_id = (await queue.enqueue("quick")).job.id
        await wait_status(memory_repository, job_id, JobStatus.COMPLETED)
    assert claims[-3:] == [1, 1, 1] and claims.count(0) <= 1, claims  # 1: the start's claim


async def test_a_job_claimed_again_while_its_last_run_finishes_keeps_its_lease(
    memory_repository: MemoryRepository, registry: Registry, start: Callable[..., Worker]
) -> None:
    """A snooze due at once commits, its answer is slow to come back (as over a network), and
    the worker claims the job again meanwhile: the first run's end must not release the second
    run's lease (it was then renewed by no one, expired under a live worker and ran again)."""
    second_started, first_ended = asyncio.Event(), asyncio.Event()
    first: list[asyncio.Task[None]] = []
    runs = 0

    @registry.processor("k")
    async def check(ctx: JobContext) -> JSONValue:
        nonlocal runs
        runs += 1
        if not first:
            task = asyncio.current_task()
            assert task is not None
            first.append(task)  # the first run's task: done once its end is handled
            raise Snooze(0.0, "a later check")
        second_started.set()
        await first_ended.wait()
        ctx.ensure_lease()  # LeaseLost if the first run's end dropped this run's lease
        return "checked"

    wait = memory_repository.wait

    async def slow_answer(*args: object, **kwargs: object) -> None:
        await wait(*args, **kwargs)  # type: ignore[arg-type]
        await second_started.wait()  # committed; the worker claims the job again meanwhile

    memory_repository.wait = slow_answer  # type: ignore[method-assign]
    start()
    job = (await JobQueue(memory_repository, registry).submit(NewJob(kind="k"))).job
    async with asyncio.timeout(10):
        await second_started.wait()
        await first[0]  # the first run has ended, bookkeeping included
        first_ended.set()
        done = await wait_status(memory_repository, job.id, JobStatus.COMPLETED)
    assert done.result == "checked"
    assert runs == 2, "the second run kept its lease: nothing ran a third time"
    reasons = [e.data.get("reason") for e in await memory_repository.events(job_id=job.id)]
    assert "lease_expired" not in reasons
