"""Keeping a worker's leases: all renewed at once, and given up before they can expire.

A lease is the promise that no other worker starts the job. Two rules keep it under any load:

- **One renewal for all.** Every period, one ``renew_leases`` call renews every lease the worker
  holds (one statement; on PostgreSQL on its own connection), so renewals never queue behind the
  jobs' own work, however many jobs run.
- **Stop before expiry.** A lease is known to last ``lease_seconds`` from the moment its last
  successful renewal (or the claim) was *sent*. If it cannot be renewed by ``margin`` seconds
  before that, the worker stops the job itself: by the time any other worker may recover it,
  this one has let go.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.repository.protocol import JobRepository
from ecosign_orchestrator.core.types import JobId, LeaseToken

logger = logging.getLogger(__name__)


@dataclasses.dataclass(slots=True)
class _Lease:
    token: LeaseToken
    #: Monotonic time after which this worker no longer trusts the lease (expiry minus margin).
    trusted_until: float


class LeaseKeeper:
    """Renews a worker's leases and tells it when one is lost or a cancel was requested."""

    def __init__(
        self,
        repository: JobRepository,
        *,
        lease_seconds: float,
        every: float,
        margin: float,
        on_lost: Callable[[JobId, str], None],
        on_cancel: Callable[[JobId], None],
    ) -> None:
        if not 0 < margin < lease_seconds:
            raise errors.ConfigurationError("the lease margin must be within (0, lease_seconds)")
        self.repository = repository
        self.lease_seconds = lease_seconds
        self.every = every
        self.margin = margin
        self._on_lost = on_lost
        self._on_cancel = on_cancel
        self._held: dict[JobId, _Lease] = {}

    def hold(self, job_id: JobId, token: LeaseToken, *, sent_at: float) -> None:
        """Keep the lease a claim sent at ``sent_at`` (monotonic) obtained."""
        self._held[job_id] = _Lease(token, sent_at + self.lease_seconds - self.margin)

    def trusted(self, job_id: JobId) -> bool:
        """Whether this worker may still act for the job: its lease is held and, on the
        monotonic clock, not past the moment it is given up. Read right before an outside
        call, it stops a worker that was frozen (SIGSTOP, a VM pause, a swap storm) past its
        lease from calling anything, even before its own overdue check has run."""
        lease = self._held.get(job_id)
        return lease is not None and time.monotonic() < lease.trusted_until

    def release(self, job_id: JobId, token: LeaseToken) -> None:
        """Stop keeping the lease ``token`` of a job (that run is over). A newer lease of the
        same job, taken by a claim while the earlier run was still finishing, is kept."""
        lease = self._held.get(job_id)
        if lease is not None and lease.token == token:
            del self._held[job_id]

    async def run(self) -> None:
        """Renew every period; give up overdue leases as soon as they are overdue."""
        last = time.monotonic()
        while True:
            due = last + self.every
            earliest = min((lease.trusted_until for lease in self._held.values()), default=due)
            await asyncio.sleep(max(min(due, earliest) - time.monotonic(), 0.005))
            if time.monotonic() >= due:
                last = time.monotonic()
                await self.renew()
            self.give_up_overdue()

    async def renew(self) -> None:
        """Renew every held lease in one call (bounded by the period, so a hung store cannot
        stop the overdue check)."""
        held = list(self._held.items())
        if not held:
            return
        sent = time.monotonic()
        try:
            async with asyncio.timeout(self.every):
                answer = await self.repository.renew_leases(
                    [(job_id, lease.token) for job_id, lease in held], self.lease_seconds
                )
        except (errors.RepositoryError, TimeoutError) as exc:
            logger.warning(
                "could not renew %d lease(s): %s",
                len(held),
                exc or "timed out",
                extra={"action": "renew_failed"},
            )
            return
        for job_id, lease in held:
            if self._held.get(job_id) is not lease:
                continue  # released (or claimed anew) while the renewal was in flight
            if job_id not in answer:
                self._held.pop(job_id)
                self._on_lost(job_id, "the store no longer shows this worker's lease")
                continue
            lease.trusted_until = sent + self.lease_seconds - self.margin
            if answer[job_id]:
                self._on_cancel(job_id)

    def give_up_overdue(self) -> None:
        """Stop trusting leases that could not be renewed in time."""
        now = time.monotonic()
        for job_id, lease in list(self._held.items()):
            if now >= lease.trusted_until:
                self._held.pop(job_id)
                self._on_lost(
                    job_id,
                    f"its lease could not be renewed; stopping {self.margin:.1f}s before it "
                    "expires, before another worker may take it",
                )
