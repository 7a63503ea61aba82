"""The event stream (``/v1/events/stream``, Server-Sent Events) and the tickets a browser opens it
with."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from ecosign_orchestrator.core.lookup import resolve_job_id
from ecosign_orchestrator.core.repository import JobRepository
from ecosign_orchestrator.core.tail import tail
from ecosign_orchestrator.core.types import JobId
from ecosign_orchestrator.service.api.auth import StreamTickets, stream_reader
from ecosign_orchestrator.service.api.errors import ApiError
from ecosign_orchestrator.service.api.limits import StrictJSONRoute
from ecosign_orchestrator.service.api.routes import AUTH_RESPONSES, READ, Repo
from ecosign_orchestrator.service.api.schemas import EventOut, Problem, TicketOut

stream_router = APIRouter(prefix="/v1", route_class=StrictJSONRoute)


@stream_router.post(
    "/stream-tickets",
    dependencies=READ,
    responses={**AUTH_RESPONSES},
    summary="A short-lived ticket that opens the event stream without a bearer token",
)
async def stream_ticket(request: Request) -> TicketOut:
    """For browsers: ``EventSource`` cannot send an ``Authorization`` header, so the console
    asks for a ticket with its token and opens ``/v1/events/stream?ticket=...``. A ticket reads
    the event stream only, for ``expires_in`` seconds."""
    tickets: StreamTickets = request.app.state.tickets
    return TicketOut(ticket=tickets.issue(), expires_in=tickets.ttl_seconds)


@stream_router.get(
    "/events/stream",
    dependencies=[Depends(stream_reader)],
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"},
        204: {
            "description": "The job has ended and no event follows the resume point: nothing "
            "more will come (a browser's EventSource stops reconnecting)"
        },
        400: {"model": Problem, "description": "Last-Event-ID is not an event id"},
        404: {"model": Problem, "description": "No such job (job_id)"},
        **AUTH_RESPONSES,
    },
    summary="Every event as Server-Sent Events, resumable with Last-Event-ID",
)
async def event_stream(
    repo: Repo,
    job_id: Annotated[
        str | None, Query(max_length=64, description="Only this job's events")
    ] = None,
    after: Annotated[
        int | None, Query(ge=0, le=2**62, description="Start after this event id")
    ] = None,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=32, description="Resume point")
    ] = None,
) -> Response:
    """``id`` is the event id, ``event`` its type, ``data`` the event as JSON. A job's stream
    ends after the job's terminal event, and one resumed at or after it answers 204 at once;
    the stream of all events does not end."""
    start = after if after is not None else _cursor(last_event_id)
    full_id = None
    if job_id is not None:
        full_id = await resolve_job_id(repo, job_id)
        job = await repo.get(full_id)  # 404 now, not an endless empty stream
        if job.status.is_terminal and not await repo.events(
            after_id=start, job_id=full_id, limit=1
        ):
            # Resumed past the end (a browser's EventSource reconnects with the terminal
            # event's id): without this it would hold a connection forever, waiting.
            return Response(status_code=204)
    # SSE framing and keep-alive pings by sse-starlette; proxies are told not to buffer.
    return EventSourceResponse(
        _sse(repo, start, full_id), ping=15, sep="\n", headers={"X-Accel-Buffering": "no"}
    )


#: The largest event id a client may send (the ``after`` parameter's bound too).
MAX_EVENT_ID = 2**62


def _cursor(value: str | None) -> int:
    """``Last-Event-ID`` as an event id: digits only, within range (else 400, not a replay of
    everything)."""
    if not value:
        return 0
    if not value.isascii() or not value.isdigit() or int(value) > MAX_EVENT_ID:
        raise ApiError(400, f"Last-Event-ID must be an event id (0 to {MAX_EVENT_ID}): {value!r}")
    return int(value)


async def _sse(
    repo: JobRepository, after: int, job_id: JobId | None
) -> AsyncIterator[ServerSentEvent]:
    """The core tail as SSE events (``id`` = event id, ``event`` = type, ``data`` = the event);
    the response stops the stream when the client goes away."""
    yield ServerSentEvent(comment="stream open")
    async for event in tail(repo, job_id=job_id, after=after, until_end=job_id is not None):
        if event is None:
            continue
        data = json.dumps(EventOut.of(event).model_dump(mode="json"), separators=(",", ":"))
        yield ServerSentEvent(data=data, event=event.type.value, id=str(event.id))
