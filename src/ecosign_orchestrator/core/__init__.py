"""The agnostic job engine: jobs, statuses, events, retry policy, processors, queue, workers.

It knows nothing of FFmpeg or EcoSign; processors for those live in sibling packages.
"""

from __future__ import annotations

from ecosign_orchestrator.core.context import JobContext
from ecosign_orchestrator.core.errors import (
    FatalError,
    JobNotFound,
    OrchestratorError,
    Snooze,
    TransientError,
)
from ecosign_orchestrator.core.events import Event, EventBus, EventType
from ecosign_orchestrator.core.job import (
    EnqueueResult,
    Job,
    JobError,
    NewJob,
    StepRecord,
    StepStatus,
)
from ecosign_orchestrator.core.processor import Processor
from ecosign_orchestrator.core.queue import JobQueue
from ecosign_orchestrator.core.registry import Registry
from ecosign_orchestrator.core.repository import JobRepository, repository_from_url
from ecosign_orchestrator.core.retention import RetentionPolicy
from ecosign_orchestrator.core.retry import RetryPolicy
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.core.worker import Worker, WorkerSettings

__all__ = [
    "EnqueueResult",
    "Event",
    "EventBus",
    "EventType",
    "FatalError",
    "Job",
    "JobContext",
    "JobError",
    "JobNotFound",
    "JobQueue",
    "JobRepository",
    "JobStatus",
    "NewJob",
    "OrchestratorError",
    "Processor",
    "Registry",
    "RetentionPolicy",
    "RetryPolicy",
    "Snooze",
    "StepRecord",
    "StepStatus",
    "TransientError",
    "Worker",
    "WorkerSettings",
    "repository_from_url",
]
