"""The in-process event bus: who listens, and what a subscriber gets."""

from __future__ import annotations

from datetime import UTC, datetime

from ecosign_orchestrator.core.events import Event, EventBus, EventType
from ecosign_orchestrator.core.types import JobId


def _event(event_id: int) -> Event:
    at = datetime(2026, 12, 3, tzinfo=UTC)
    return Event(
        id=event_id, job_id=JobId("j" * 8), type=EventType.JOB_QUEUED, at=at, attempt=0, data={}
    )


async def test_the_bus_says_whether_anyone_listens_and_delivers_to_those_who_do() -> None:
    bus = EventBus()
    assert not bus.listened
    bus.publish([_event(1)])  # nobody listens: nothing kept for a later subscriber
    async with bus.subscribe() as events:
        assert bus.listened
        bus.publish([_event(2), _event(3)])
        assert [(await events.next(timeout=1)).id for _ in range(2)] == [2, 3]
    assert not bus.listened
