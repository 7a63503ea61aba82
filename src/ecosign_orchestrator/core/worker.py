"""The worker: claims jobs, runs processors concurrently, heartbeats leases, recovers the dead.

Shutdown order (as in Procrastinate): stop claiming, let running jobs finish within the grace
period, cancel the rest and release their leases (the attempt is refunded), stop side tasks.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import random
import signal
import time
from collections.abc import Sequence
from typing import Any

from ecosign_orchestrator.core import errors, observe, outcome
from ecosign_orchestrator.core.context import JobContext
from ecosign_orchestrator.core.gates import ClosedCircuits
from ecosign_orchestrator.core.job import Job, JobError
from ecosign_orchestrator.core.leases import LeaseKeeper
from ecosign_orchestrator.core.observe import Instruments, NullInstruments, NullTracer, Tracer
from ecosign_orchestrator.core.queue import JobQueue
from ecosign_orchestrator.core.recording import OutcomeRecorder, prune_finished, recover_leases
from ecosign_orchestrator.core.registry import JobKind, Registry
from ecosign_orchestrator.core.repository.protocol import JobRepository
from ecosign_orchestrator.core.scheduler import run_schedules
from ecosign_orchestrator.core.types import JobId, LeaseToken
from ecosign_orchestrator.core.worker_settings import WorkerSettings, default_worker_id

__all__ = ["Worker", "WorkerSettings", "default_worker_id"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(slots=True)
class _Running:
    job: Job
    ctx: JobContext
    task: asyncio.Task[None] | None = None
    #: Why the worker cancelled the task itself (None: it did not).
    interruption: outcome.Interruption | None = None
    #: The processor has finished and its outcome is being recorded: nothing interrupts that
    #: (the record is fenced by the lease token; a lost lease surfaces as ``LeaseLost``).
    recording: bool = False

    @property
    def token(self) -> LeaseToken:
        """The lease token of this run (a claimed job always holds one)."""
        assert self.job.lease_token is not None
        return self.job.lease_token


class Worker:
    """Runs jobs of the registered kinds from one repository.

    >>> worker = Worker(repository, registry, settings=WorkerSettings(concurrency=4))
    >>> await worker.run()          # until worker.stop() or SIGTERM/SIGINT (run_forever)
    """

    def __init__(
        self,
        repository: JobRepository,
        registry: Registry,
        *,
        settings: WorkerSettings | None = None,
        worker_id: str | None = None,
        kinds: Sequence[str] | None = None,
        rng: random.Random | None = None,
        instruments: Instruments | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.instruments: Instruments = instruments or NullInstruments()
        self.tracer: Tracer = tracer or NullTracer()
        self.repository = repository
        self.registry = registry
        self.settings = settings or WorkerSettings()
        self.worker_id = worker_id or default_worker_id()
        self.kinds = list(kinds) if kinds is not None else registry.names()
        for name in self.kinds:
            registry.get(name)  # unknown kinds fail at start-up, not mid-run
        self._rng = rng or random.Random()
        self._recorder = OutcomeRecorder(self.repository, rng=self._rng, extra=self._extra)
        self._running: dict[JobId, _Running] = {}
        #: How many of ``_running`` have returned and are having their outcome written.
        self._recording = 0
        self._leases = self._lease_keeper()
        #: Closed circuits this worker read recently, shared by its jobs.
        self._circuits = ClosedCircuits()
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()

    def _extra(self, job: Job, action: str, **more: Any) -> dict[str, Any]:
        return {
            "action": action,
            "job_id": job.id,
            "kind": job.kind,
            "attempt": job.attempts,
            "worker_id": self.worker_id,
            **more,
        }

    # -- lifecycle -----------------------------------------------------------------------------

    def _lease_keeper(self) -> LeaseKeeper:
        return LeaseKeeper(
            self.repository,
            lease_seconds=self.settings.lease_seconds,
            every=self.settings.heartbeat_every,
            margin=self.settings.lease_margin,
            on_lost=self._lease_lost,
            on_cancel=self._cancel_requested,
        )

    def stop(self) -> None:
        """Ask the worker to stop: no new claims; running jobs get the grace period."""
        if not self._stopping.is_set():
            logger.info(
                "worker %s stopping (%d jobs running)",
                self.worker_id,
                len(self._running),
                extra={"action": "worker_stopping", "worker_id": self.worker_id},
            )
        self._stopping.set()
        self._wake.set()

    async def run_forever(self) -> None:
        """:meth:`run`, stopping gracefully on SIGINT/SIGTERM."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        try:
            await self.run()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    async def run(self) -> None:
        """Claim and run jobs until :meth:`stop`."""
        logger.info(
            "worker %s started on %s (kinds: %s, concurrency %d)",
            self.worker_id,
            self.repository.backend,
            ", ".join(self.kinds),
            self.settings.concurrency,
            extra={"action": "worker_started", "worker_id": self.worker_id},
        )
        self._leases = self._lease_keeper()  # from the settings as they are now
        side = [
            asyncio.create_task(self._leases.run(), name=f"{self.worker_id}:leases"),
            asyncio.create_task(
                recover_leases(self.repository, self.instruments, self.settings.recovery_seconds),
                name=f"{self.worker_id}:recovery",
            ),
        ]
        schedules = self.registry.schedules() if self.settings.schedules else []
        if schedules:
            ticking = run_schedules(JobQueue(self.repository, self.registry), schedules)
            side.append(asyncio.create_task(ticking, name=f"{self.worker_id}:schedules"))
        if self.settings.retention is not None:
            pruning = prune_finished(
                self.repository, self.settings.retention, self.worker_id, self._rng
            )
            side.append(asyncio.create_task(pruning, name=f"{self.worker_id}:retention"))
        for task in side:
            task.add_done_callback(self._side_task_done)
        try:
            await self._claim_loop()
        finally:
            await self._shutdown()
            for task in side:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)
            logger.info(
                "worker %s stopped",
                self.worker_id,
                extra={"action": "worker_stopped", "worker_id": self.worker_id},
            )

    def _side_task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "side task %s died: %r; stopping the worker",
                task.get_name(),
                task.exception(),
                extra={"action": "side_task_died", "worker_id": self.worker_id},
            )
            self.stop()

    async def _claim_loop(self) -> None:
        idle = self.settings.poll_seconds
        while not self._stopping.is_set():
            free = self._free_slots()
            if free <= 0:
                await self._wait(None)  # every slot busy: a job that returns wakes us
                continue
            claimed: list[Job] = []
            asked = 0
            sent_at = time.monotonic()  # the leases last from the claim's sending on
            try:
                for kinds, room in self._claim_plan(free):
                    batch = min(room, free - len(claimed), self.settings.claim_batch or free)
                    if batch <= 0:
                        break
                    asked += batch
                    claimed += await self.repository.claim(
                        worker_id=self.worker_id,
                        kinds=kinds,
                        limit=batch,
                        lease_seconds=self.settings.lease_seconds,
                        queues=self.settings.queues,
                    )
            except errors.RepositoryError as exc:
                asked = len(claimed) + 1  # as if drained: wait a poll period before retrying
                logger.warning(
                    "claim failed (%s); retrying in %.1fs",
                    exc,
                    idle,
                    extra={"action": "claim_failed", "worker_id": self.worker_id},
                )
            for job in claimed:
                self._start(job, sent_at)
            if self.settings.burst and not claimed and not self._running:
                logger.info(
                    "worker %s: no job ready, stopping (burst)",
                    self.worker_id,
                    extra={"action": "worker_drained", "worker_id": self.worker_id},
                )
                break
            if asked == 0:  # every kind this worker runs is at its cap: wait for one to free
                await self._wait(None)
                continue
            if claimed:
                idle = self.settings.poll_seconds
            if len(claimed) == asked:
                continue  # the store may hold more: claim again as soon as a slot frees
            # Fewer ready jobs than asked for: a freed slot brings no new work, so only the
            # store's wake-up (NOTIFY, an in-process enqueue, the next due time) or the poll
            # ends the wait. Each freed slot used to cost an empty claim and a due-time query.
            # Slots still wake a burst worker (it exits once the last job is done) and a worker
            # whose capped kinds were full (a freed slot of that kind is work to claim).
            await self._wait(idle, slots=self.settings.burst or self._capped_out())
            if not claimed:
                idle = min(idle * 2, self.settings.max_poll_seconds)

    def _free_slots(self) -> int:
        """Slots for new jobs. A job whose processor has returned stops holding one while its
        outcome is written (it keeps its lease until that commits): waiting for a group commit
        is not work, and counting it made the commit's latency the worker's pace. At most
        ``concurrency`` outcomes may be pending, so a slow store still holds claims back."""
        limit = self.settings.concurrency
        executing = len(self._running) - self._recording
        return max(0, min(limit - executing, 2 * limit - len(self._running)))

    def _claim_plan(self, free: int) -> list[tuple[list[str], int]]:
        """What to claim with ``free`` slots: each capped kind up to its room, then every other
        kind with what is left."""
        if free <= 0:
            return []
        caps = self.settings.kind_concurrency
        running = self._executing_by_kind()
        plan = [
            ([kind], min(free, caps[kind] - running[kind]))
            for kind in self.kinds
            if kind in caps and caps[kind] > running[kind]
        ]
        uncapped = [kind for kind in self.kinds if kind not in caps]
        if uncapped:
            plan.append((uncapped, free))
        return plan

    def _capped_out(self) -> bool:
        """Whether a kind with a cap has every one of its slots running."""
        caps = self.settings.kind_concurrency
        if not caps:
            return False
        running = self._executing_by_kind()
        return any(running[kind] >= caps[kind] for kind in self.kinds if kind in caps)

    def _executing_by_kind(self) -> collections.Counter[str]:
        """Jobs whose processor is still running, per kind (what a kind's cap counts)."""
        return collections.Counter(r.job.kind for r in self._running.values() if not r.recording)

    async def _wait(self, timeout: float | None, *, slots: bool = True) -> None:
        """Until a stop, a freed slot (if ``slots``), or (if ``timeout``) new work may be
        ready."""
        waiters: list[asyncio.Future[object]] = [asyncio.ensure_future(self._stopping.wait())]
        if slots:
            waiters.append(asyncio.ensure_future(self._wake.wait()))
        if timeout is not None:
            waiters.append(asyncio.ensure_future(self.repository.wait_for_jobs(timeout)))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        self._wake.clear()

    # -- running jobs --------------------------------------------------------------------------

    def _start(self, job: Job, sent_at: float) -> None:
        ctx = JobContext(
            job,
            self.repository,
            worker_id=self.worker_id,
            progress_interval=self.settings.progress_seconds,
            instruments=self.instruments,
            tracer=self.tracer,
            circuits=self._circuits,
            lease_trusted=lambda: self._leases.trusted(job.id),
        )
        running = _Running(job=job, ctx=ctx)
        previous = self._running.get(job.id)
        if previous is not None and previous.recording:
            # The job's last run here is still finishing, but its outcome committed (else the
            # job could not be claimed again): it no longer counts as a run being recorded.
            previous.recording = False
            self._recording -= 1
        self._running[job.id] = running
        self._leases.hold(job.id, running.token, sent_at=sent_at)
        self.instruments.job_claimed(job.kind)
        with observe.bind(
            job_id=job.id, kind=job.kind, attempt=job.attempts, worker_id=self.worker_id
        ):  # the task copies this context: every log line of the job carries these fields
            running.task = asyncio.create_task(self._process(running), name=f"job:{job.id}")
        logger.info("job %s claimed", job.id, extra=self._extra(job, "job_claimed"))

    async def _process(self, running: _Running) -> None:
        job = running.job
        try:
            kind = self.registry.get(job.kind)
            with self.tracer.run(job.id, job.kind, job.attempts) as trace:
                ended = await self._execute(running, kind)
                error = getattr(ended, "error", None)
                trace.outcome(ended.label, error.message if isinstance(error, JobError) else "")
            running.recording = True
            self._recording += 1
            self._wake.set()  # its slot is free for the next claim
            await asyncio.shield(self._persist(running, kind, ended))
            self.instruments.job_finished(job.kind, ended.label)
        except errors.LeaseLost:
            logger.warning(
                "job %s: lease lost; another worker owns it now",
                job.id,
                extra=self._extra(job, "lease_lost"),
            )
        except errors.RepositoryError:
            logger.exception(
                "job %s: could not record the outcome; the lease will expire and it will run again",
                job.id,
                extra=self._extra(job, "record_failed"),
            )
        except Exception:  # a bug in the engine itself: keep the worker alive, say so loudly
            logger.exception(
                "job %s: unexpected error while finishing the run",
                job.id,
                extra=self._extra(job, "worker_error"),
            )
        finally:
            running.ctx.close()
            # Only this run's: once its outcome committed (a snooze due at once, say), this
            # worker may have claimed the job again; that run's lease and slot stay.
            self._leases.release(job.id, running.token)
            if self._running.get(job.id) is running:
                del self._running[job.id]
            if running.recording:
                self._recording -= 1
            self._wake.set()

    async def _execute(self, running: _Running, kind: JobKind) -> outcome.Outcome:
        job, ctx = running.job, running.ctx
        timeout = job.timeout or kind.timeout
        try:
            async with asyncio.timeout(timeout):
                result = await kind.processor(ctx)
            return outcome.Completed.checked(result)
        except asyncio.CancelledError:
            if running.interruption is None:
                raise
            return running.interruption
        except errors.Snooze as snooze:
            return outcome.Snoozed(snooze.delay, snooze.reason, snooze.deadline)
        except TimeoutError:
            error = JobError(
                type="JobTimeout", message=f"run exceeded its {timeout}s timeout", transient=True
            )
            return outcome.Retryable(error)
        except errors.TransientError as exc:
            return outcome.Retryable(
                JobError.from_exception(exc), retry_after=exc.retry_after, delay=exc.delay
            )
        except errors.FatalError as exc:
            return outcome.Failed(JobError.from_exception(exc))
        except errors.LeaseLost:
            raise
        except errors.RepositoryError as exc:
            # The store failed under the processor (a gate, a read): the run is retried, the
            # job's budget decides; a store outage is never the job's fatal error.
            return outcome.Retryable(
                dataclasses.replace(JobError.from_exception(exc), transient=True)
            )
        except Exception as exc:
            logger.exception(
                "job %s: unexpected %s",
                job.id,
                type(exc).__name__,
                extra=self._extra(job, "job_crashed"),
            )
            return outcome.Failed(JobError.from_exception(exc))

    async def _persist(self, running: _Running, kind: JobKind, ended: outcome.Outcome) -> None:
        """Record the outcome, retrying while the store is unreachable (never run it twice)."""
        delay, waited = 0.1, 0.0
        while True:
            try:
                await self._record(running, kind, ended)
                return
            except errors.RepositoryError as exc:
                if waited >= self.settings.record_retry_seconds:
                    raise
                logger.warning(
                    "job %s: store unreachable (%s); keeping the outcome, retrying in %.1fs",
                    running.job.id,
                    exc,
                    delay,
                    extra=self._extra(running.job, "record_retry"),
                )
                await asyncio.sleep(delay)
                waited += delay
                delay = min(delay * 2, 5.0)

    async def _record(self, running: _Running, kind: JobKind, ended: outcome.Outcome) -> None:
        if isinstance(ended, outcome.LeaseLost):
            raise errors.LeaseLost(running.job.id)
        if isinstance(ended, outcome.Completed):
            # The last step save rides in the completion's transaction: a flow's end is one.
            await running.ctx.write_progress()
            async with running.ctx.last_save() as steps:
                await self._recorder.record(running.job, running.token, kind, ended, steps=steps)
            return
        await running.ctx.flush()
        await self._recorder.record(running.job, running.token, kind, ended)

    # -- side tasks ----------------------------------------------------------------------------

    def _lease_lost(self, job_id: JobId, reason: str) -> None:
        """The lease keeper lost (or gave up) a lease: stop that job's run, record nothing."""
        running = self._running.get(job_id)
        if running is None or running.task is None or running.task.done():
            return
        if running.recording:
            # The outcome is being written (a renewal that raced with it no longer finds the
            # job running): that fenced write decides, and says so if the lease was lost.
            logger.debug("job %s: %s while recording its outcome", job_id, reason)
            return
        logger.warning(
            "job %s: %s", job_id, reason, extra=self._extra(running.job, "lease_given_up")
        )
        self._interrupt(running, outcome.LeaseLost())

    def _cancel_requested(self, job_id: JobId) -> None:
        """A user asked to cancel a running job: its processor is stopped."""
        running = self._running.get(job_id)
        if running is None or running.ctx.cancelled.is_set():
            return
        running.ctx.cancelled.set()
        self._interrupt(running, outcome.CancelledByUser())

    def _interrupt(self, running: _Running, why: outcome.Interruption) -> None:
        if running.recording and not isinstance(why, outcome.Released):
            return  # too late to stop it: the outcome's own fenced write decides
        if running.interruption is None and running.task is not None:
            running.interruption = why
            running.task.cancel()

    async def _shutdown(self) -> None:
        tasks = [r.task for r in self._running.values() if r.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.settings.shutdown_grace_seconds)
            for running in list(self._running.values()):
                if running.task in pending:
                    self._interrupt(running, outcome.Released())
            if pending:
                await asyncio.wait(pending)
