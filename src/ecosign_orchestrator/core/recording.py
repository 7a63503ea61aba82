"""What a worker writes when a run ends, and the loops every worker runs beside its jobs.

``OutcomeRecorder`` turns a run's outcome into the fenced repository write (completed, waiting,
cancelled, released, retrying with backoff, or failed once its attempts are spent) and logs it.
``recover_leases`` and ``prune_finished`` are the side loops: lease recovery and retention.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Callable
from typing import Any

from ecosign_orchestrator.core import errors, outcome
from ecosign_orchestrator.core.job import Job
from ecosign_orchestrator.core.observe import Instruments
from ecosign_orchestrator.core.registry import JobKind
from ecosign_orchestrator.core.repository.protocol import JobRepository, StepSave
from ecosign_orchestrator.core.retention import RetentionPolicy, prune_by_policy
from ecosign_orchestrator.core.types import LeaseToken

logger = logging.getLogger(__name__)


class OutcomeRecorder:
    """Writes runs' outcomes to ``repository``; ``extra`` gives each log line its fields."""

    def __init__(
        self,
        repository: JobRepository,
        *,
        rng: random.Random,
        extra: Callable[..., dict[str, Any]],
    ) -> None:
        self.repository = repository
        self.rng = rng
        self.extra = extra

    async def record(
        self,
        job: Job,
        token: LeaseToken,
        kind: JobKind,
        ended: outcome.Outcome,
        *,
        steps: StepSave | None = None,
    ) -> None:
        """Write ``ended`` for ``job``'s run (fenced by ``token``) and log it; a completion
        carries ``steps``, the run's last step save."""
        repo = self.repository
        match ended:
            case outcome.Completed(result=result):
                await repo.complete(job.id, token, result, steps=steps)
                logger.info("job %s completed", job.id, extra=self.extra(job, "job_completed"))
            case outcome.Snoozed(delay=delay, message=message, deadline=deadline):
                reason = message or "a later check"
                await repo.wait(job.id, token, delay=delay, reason=reason, deadline=deadline)
                logger.info(
                    "job %s waits %.1fs: %s",
                    job.id,
                    delay,
                    message,
                    extra=self.extra(job, "job_snoozed"),
                )
            case outcome.CancelledByUser():
                await repo.acknowledge_cancel(job.id, token)
                logger.info("job %s cancelled", job.id, extra=self.extra(job, "job_cancelled"))
            case outcome.Released():
                await repo.requeue(job.id, token, delay=0, reason="released")
                logger.info(
                    "job %s released at shutdown", job.id, extra=self.extra(job, "job_released")
                )
            case outcome.Retryable():
                await self._retry_or_fail(job, token, kind, ended)
            case outcome.Failed(error=error):
                await repo.fail(job.id, token, error)
                logger.info(
                    "job %s failed: %s: %s",
                    job.id,
                    error.type,
                    error.message,
                    extra=self.extra(job, "job_failed"),
                )

    async def _retry_or_fail(
        self, job: Job, token: LeaseToken, kind: JobKind, ended: outcome.Retryable
    ) -> None:
        if job.attempts >= job.max_attempts:
            error = dataclasses.replace(
                ended.error,
                message=f"{ended.error.message} "
                f"(attempts exhausted: {job.attempts}/{job.max_attempts})",
            )
            await self.repository.fail(job.id, token, error)
            logger.info(
                "job %s failed after %d attempts",
                job.id,
                job.attempts,
                extra=self.extra(job, "job_failed"),
            )
            return
        if ended.delay is not None:
            delay = max(ended.delay, ended.retry_after or 0.0)
        else:
            policy = kind.retry.with_override(job.retry)
            delay = policy.delay(job.attempts, retry_after=ended.retry_after, rng=self.rng)
        await self.repository.schedule_retry(job.id, token, ended.error, delay)
        logger.info(
            "job %s retrying in %.2fs: %s",
            job.id,
            delay,
            ended.error.message,
            extra=self.extra(job, "job_retrying", delay=delay),
        )


async def recover_leases(
    repository: JobRepository, instruments: Instruments, every_seconds: float
) -> None:
    """Forever: return jobs whose lease expired (their worker died) to the queue."""
    while True:
        try:
            recovered = await repository.recover_expired()
            if recovered:
                instruments.leases_recovered(len(recovered))
        except errors.RepositoryError as exc:
            logger.warning("lease recovery failed: %s", exc, extra={"action": "recovery_failed"})
        await asyncio.sleep(every_seconds)


async def prune_finished(
    repository: JobRepository, policy: RetentionPolicy, worker_id: str, rng: random.Random
) -> None:
    """Forever: delete finished jobs past their retention, in small batches (the first pass at
    a random point of the period, so a fleet's workers do not prune in step)."""
    await asyncio.sleep(rng.uniform(0, policy.every_seconds))
    while True:
        try:
            pruned = await prune_by_policy(repository, policy)
        except errors.RepositoryError as exc:
            logger.warning("pruning failed: %s", exc, extra={"action": "prune_failed"})
        else:
            if any(pruned.values()):
                logger.info(
                    "pruned %d finished jobs",
                    sum(pruned.values()),
                    extra={
                        "action": "pruned",
                        "worker_id": worker_id,
                        "pruned": {s.value: n for s, n in pruned.items()},
                    },
                )
        await asyncio.sleep(policy.every_seconds)
