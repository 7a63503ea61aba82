"""Bad enqueue requests are refused with the field and the reason, and write nothing."""

from __future__ import annotations

import math
from typing import Any

import pytest

from ecosign_orchestrator.core import JobContext, JobQueue, Registry, errors
from ecosign_orchestrator.core.job import RetryOverride
from ecosign_orchestrator.core.repository import MemoryRepository
from ecosign_orchestrator.core.types import JSONValue


@pytest.fixture
def queue(memory_repository: MemoryRepository) -> JobQueue:
    registry = Registry()

    async def ok(ctx: JobContext) -> JSONValue:
        return None

    registry.register("ok", ok)
    return JobQueue(memory_repository, registry)


@pytest.mark.parametrize(
    ("payload", "options", "field"),
    [
        ([1, 2], {}, "payload"),
        ({"x": math.nan}, {}, "payload"),
        ({"x": {1, 2}}, {}, "payload"),
        ({1: "non-string key"}, {}, "payload"),
        ({}, {"delay": -1}, "delay"),
        ({}, {"delay": math.inf}, "delay"),
        ({}, {"timeout": 0}, "timeout"),
        ({}, {"max_attempts": 0}, "max_attempts"),
        ({}, {"dedupe_key": ""}, "dedupe_key"),
        ({}, {"queue": ""}, "queue"),
        ({}, {"priority": 1.5}, "priority"),
        ({}, {"retry": RetryOverride(base_seconds=-1)}, "retry.base_seconds"),
    ],
)
async def test_invalid_requests_name_the_field_and_write_nothing(
    queue: JobQueue, memory_repository: MemoryRepository, payload: Any, options: Any, field: str
) -> None:
    with pytest.raises(errors.InvalidJob) as info:
        await queue.enqueue("ok", payload, **options)
    assert info.value.field == field
    assert memory_repository.jobs == {} and memory_repository.event_log == []


async def test_unknown_kind_lists_the_known_ones(
    queue: JobQueue, memory_repository: MemoryRepository
) -> None:
    with pytest.raises(errors.UnknownJobKind, match="known kinds: ok"):
        await queue.enqueue("nope", {})
    assert memory_repository.jobs == {}


async def test_kind_validator_runs_at_enqueue(memory_repository: MemoryRepository) -> None:
    registry = Registry()

    def validate(payload: dict[str, JSONValue]) -> dict[str, JSONValue]:
        if "path" not in payload:
            raise errors.InvalidJob("payload.path", "is required")
        return payload

    async def proc(ctx: JobContext) -> JSONValue:
        return None

    registry.register("v", proc, validate=validate)
    with pytest.raises(errors.InvalidJob, match=r"payload\.path: is required"):
        await JobQueue(memory_repository, registry).enqueue("v", {})
    assert memory_repository.jobs == {}
