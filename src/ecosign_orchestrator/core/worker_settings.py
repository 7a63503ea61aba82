"""How one worker is tuned: concurrency, leases, polling, shutdown."""

from __future__ import annotations

import dataclasses
import os
import socket
import uuid
from collections.abc import Mapping

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.retention import RetentionPolicy


def default_worker_id() -> str:
    """A worker id unique per process instance: host, pid and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


#: The longest lease a worker takes (a day).
MAX_LEASE_SECONDS = 86_400.0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSettings:
    """Tuning of one worker."""

    concurrency: int = 10
    #: A lease lasts this long without a heartbeat; a dead worker's jobs return after it.
    lease_seconds: float = 30.0
    #: Heartbeat period: all leases are renewed in one call this often (default: a third of
    #: the lease).
    heartbeat_seconds: float | None = None
    #: A job whose lease could not be renewed is stopped this long before the lease expires
    #: (default: a quarter of the lease, at most 10 s).
    lease_margin_seconds: float | None = None
    #: Idle polling starts at ``poll_seconds`` and doubles up to ``max_poll_seconds``.
    poll_seconds: float = 0.2
    max_poll_seconds: float = 2.0
    #: How often to look for expired leases.
    recovery_seconds: float = 5.0
    #: Minimum seconds between two progress writes of one job (reports in between are merged).
    progress_seconds: float = 0.5
    #: How long running jobs may finish after a stop request before they are released.
    shutdown_grace_seconds: float = 30.0
    #: How many jobs one claim may take (default: the free slots).
    claim_batch: int | None = None
    #: How long to keep trying to record a finished job's outcome while the store is unreachable
    #: (the result is kept in memory meanwhile; after this the lease expires and it runs again).
    record_retry_seconds: float = 300.0
    #: Only jobs of these queues (None: every queue).
    queues: tuple[str, ...] | None = None
    #: At most this many jobs of a kind at once on this worker (e.g. ``{"ffmpeg.transcode": 2}``
    #: so a burst of transcodes cannot take every slot of a mixed worker).
    kind_concurrency: Mapping[str, int] = dataclasses.field(default_factory=dict)
    #: Stop by itself once no job is ready and none is running (scripts, batch runs, tests).
    burst: bool = False
    #: Check the registry's schedules and submit their due ticks (any number of workers may:
    #: the store keeps one job per tick).
    schedules: bool = True
    #: Delete finished jobs once old enough, a bounded pass every ``retention.every_seconds``
    #: (the first at a random moment of that period, so a fleet's workers spread out).
    retention: RetentionPolicy | None = None

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise errors.ConfigurationError("concurrency must be at least 1")
        for name in ("lease_seconds", "poll_seconds"):
            if not 0 < getattr(self, name) <= MAX_LEASE_SECONDS:
                raise errors.ConfigurationError(f"{name} must be positive and at most a day")
        # A lease renewed too rarely, or given up before its first renewal, breaks "nothing
        # starts twice while its worker lives" (a live worker would lose its own jobs).
        if not 0 < self.heartbeat_every <= self.lease_seconds / 2:
            raise errors.ConfigurationError("heartbeat_seconds must be at most half the lease")
        if not 0 < self.lease_margin < self.lease_seconds - self.heartbeat_every:
            raise errors.ConfigurationError(
                "lease_margin_seconds must be less than the lease minus the heartbeat"
            )
        if self.shutdown_grace_seconds < 0:
            raise errors.ConfigurationError("shutdown_grace_seconds must not be negative")
        for kind, cap in self.kind_concurrency.items():
            if cap < 1:
                raise errors.ConfigurationError(f"kind_concurrency[{kind}] must be at least 1")

    @property
    def heartbeat_every(self) -> float:
        """Effective heartbeat period."""
        return self.heartbeat_seconds or self.lease_seconds / 3

    @property
    def lease_margin(self) -> float:
        """Effective margin before expiry at which an unrenewed lease is given up."""
        return self.lease_margin_seconds or min(self.lease_seconds / 4, 10.0)
