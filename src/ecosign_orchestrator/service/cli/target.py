"""Where CLI commands act: the local database, or a remote API (``--api-url``).

Both return core values (``Job``, ``Event``), so every command renders the same either way. Job
ids may be short (a unique prefix or suffix of 8+ characters): the local target resolves them
against the database, the API does the same on its side.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.calls import CallRecord
from ecosign_orchestrator.core.events import TERMINAL_EVENTS, Event, EventType
from ecosign_orchestrator.core.job import Job
from ecosign_orchestrator.core.lookup import resolve_job_id
from ecosign_orchestrator.core.queue import JobQueue, schedule_options
from ecosign_orchestrator.core.registry import Registry
from ecosign_orchestrator.core.repository import JobRepository
from ecosign_orchestrator.core.selection import JobFilter, act, failures
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.core.tail import tail
from ecosign_orchestrator.core.types import JobId
from ecosign_orchestrator.service.cli.common import fail, run, state

if TYPE_CHECKING:  # both are imported where they are used: commands that need neither start faster
    import httpx

    from ecosign_orchestrator import ecosign

T = TypeVar("T")


class RemoteError(errors.OrchestratorError):
    """The API refused the request; ``status`` and ``fields`` say why."""

    def __init__(
        self, status: int, detail: str, fields: list[dict[str, str]] | None = None
    ) -> None:
        self.status = status
        self.fields = fields or []
        reasons = "; ".join(f"{f['field']}: {f['reason']}" for f in self.fields)
        super().__init__(f"{detail} ({status})" + (f": {reasons}" if reasons else ""))


class Target(Protocol):
    """What the CLI needs, wherever the jobs are."""

    async def submit(
        self, intent: ecosign.DocumentJob, *, priority: int = 0, not_before: datetime | None = None
    ) -> tuple[Job, bool]:
        """Submit a document flow; ``created`` is False for a repeat."""

    async def get(self, job_id: str) -> Job:
        """One job (a full or short id)."""

    async def plan(self, intent: ecosign.DocumentJob) -> dict[str, Any]:
        """What submitting ``intent`` now would do (``Preview.to_json``); writes nothing."""

    async def list_jobs(
        self,
        *,
        statuses: Sequence[JobStatus] | None,
        kinds: Sequence[str] | None,
        document_id: str | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[Job], str | None]:
        """A page of jobs and the next cursor."""

    async def events(self, job_id: str, after: int) -> list[Event]:
        """A job's events after an id."""

    async def calls(self, job_id: str) -> list[CallRecord]:
        """The job's call log."""

    async def bulk(self, selection: JobFilter, verb: str, *, dry_run: bool) -> dict[str, Any]:
        """Retry or cancel every job ``selection`` names (``BulkResult.to_json``)."""

    async def failures(self, kinds: list[str] | None) -> list[dict[str, Any]]:
        """Failed jobs grouped by kind, step and reason (``FailureGroup.to_json``)."""

    def follow(self, job_id: str, after: int) -> AsyncIterator[Event]:
        """A job's events as they happen, until its terminal event."""

    async def retry(self, job_id: str) -> Job:
        """Retry a failed or cancelled job."""

    async def cancel(self, job_id: str) -> Job:
        """Cancel a job."""


def _local_actor() -> str:
    """``cli:<user>``: who acts on the database directly (the API names its tokens instead)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (some containers)
        return f"cli:uid-{os.getuid()}"


#: The actor recorded for retries and cancels made with the CLI on the database itself.
LOCAL_ACTOR = _local_actor()


class LocalTarget:
    """Acts on the database directly."""

    def __init__(
        self,
        repository: JobRepository,
        queue: JobQueue,
        admission: ecosign.Admission | None = None,
        previewer: ecosign.Previewer | None = None,
    ) -> None:
        self.repository = repository
        self.queue = queue
        self.admission = admission
        self.previewer = previewer

    async def resolve(self, job_id: str) -> JobId:
        """The full id a full or short id names."""
        return await resolve_job_id(self.repository, job_id)

    async def submit(
        self, intent: ecosign.DocumentJob, *, priority: int = 0, not_before: datetime | None = None
    ) -> tuple[Job, bool]:
        from ecosign_orchestrator import ecosign

        rank, delay = schedule_options(priority, not_before)
        request = ecosign.flow_request(intent, priority=rank, delay=delay)
        if self.admission is not None:
            await self.admission.check(intent)
        result = await self.queue.submit(request)
        return result.job, result.created

    async def get(self, job_id: str) -> Job:
        return await self.repository.get(await self.resolve(job_id))

    async def plan(self, intent: ecosign.DocumentJob) -> dict[str, Any]:
        if self.previewer is None:
            raise errors.ConfigurationError(
                "document flows are not configured here: set EDGE_BASE_URL, SUPABASE_URL and "
                "ECOSIGN_ORCH_SERVICE_KEY, or plan through --api-url"
            )
        return (await self.previewer.preview(intent, self.repository)).to_json()

    async def list_jobs(
        self,
        *,
        statuses: Sequence[JobStatus] | None,
        kinds: Sequence[str] | None,
        document_id: str | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[Job], str | None]:
        from ecosign_orchestrator.ecosign import document_prefix

        jobs = await self.repository.list_jobs(
            statuses=statuses,
            kinds=kinds,
            dedupe_prefix=None if document_id is None else document_prefix(document_id),
            before=None if cursor is None else JobId(cursor),
            limit=limit,
        )
        return jobs, jobs[-1].id if len(jobs) == limit else None

    async def events(self, job_id: str, after: int) -> list[Event]:
        job = await self.get(job_id)
        return await self.repository.events(after_id=after, job_id=job.id, limit=10_000)

    async def bulk(self, selection: JobFilter, verb: str, *, dry_run: bool) -> dict[str, Any]:
        result = await act(self.repository, selection, verb, dry_run=dry_run, actor=LOCAL_ACTOR)
        return result.to_json(dry_run=dry_run)

    async def failures(self, kinds: list[str] | None) -> list[dict[str, Any]]:
        return [g.to_json() for g in await failures(self.repository, kinds=kinds)]

    async def calls(self, job_id: str) -> list[CallRecord]:
        return await self.repository.calls(await self.resolve(job_id), limit=10_000)

    async def follow(self, job_id: str, after: int) -> AsyncIterator[Event]:
        job = await self.get(job_id)
        async for event in tail(self.repository, job_id=job.id, after=after, until_end=True):
            if event is not None:
                yield event

    async def retry(self, job_id: str) -> Job:
        return await self.repository.retry(await self.resolve(job_id), actor=LOCAL_ACTOR)

    async def cancel(self, job_id: str) -> Job:
        return await self.repository.cancel(await self.resolve(job_id), actor=LOCAL_ACTOR)


def call_from_json(data: dict[str, Any]) -> CallRecord:
    """An API call-log entry as a core value."""
    return CallRecord(
        id=int(data["id"]),
        job_id=JobId(str(data["job_id"])),
        job_attempt=int(data["job_attempt"]),
        step=str(data["step"]),
        attempt=int(data["attempt"]),
        target=str(data["target"]),
        idempotency_key=data.get("idempotency_key"),
        started_at=datetime.fromisoformat(str(data["started_at"])),
        duration_ms=float(data["duration_ms"]),
        status=data.get("status"),
        error=str(data.get("error", "")),
        response_headers=dict(data.get("response_headers") or {}),
        response_body=str(data.get("response_body", "")),
        truncated=bool(data.get("truncated")),
        request=dict(data.get("request") or {}),
    )


def event_from_json(data: dict[str, Any]) -> Event:
    """An API event as a core value."""
    return Event(
        id=int(data["id"]),
        job_id=JobId(str(data["job_id"])),
        type=EventType(data["type"]),
        at=datetime.fromisoformat(str(data["at"])),
        attempt=int(data["attempt"]),
        data=dict(data.get("data") or {}),
    )


class RemoteTarget:
    """Acts through the HTTP API with a bearer token."""

    def __init__(self, base_url: str, token: str | None, *, timeout: float = 30.0) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self.client = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout)

    async def aclose(self) -> None:
        """Close connections."""
        await self.client.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        import httpx

        try:
            response = await self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise errors.Unavailable(
                f"the API at {self.base_url} is unreachable ({type(exc).__name__}): "
                "check --api-url and that `ecosign-orchestrator serve` is running"
            ) from None
        if response.status_code >= 500:
            raise errors.Unavailable(f"the API at {self.base_url} answered {response.status_code}")
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {}
            detail = body.get("detail") if isinstance(body, dict) else None
            fields = body.get("errors") if isinstance(body, dict) else None
            raise RemoteError(response.status_code, str(detail or response.reason_phrase), fields)
        return response

    async def submit(
        self, intent: ecosign.DocumentJob, *, priority: int = 0, not_before: datetime | None = None
    ) -> tuple[Job, bool]:
        params: dict[str, str | int] = {"priority": priority}
        if not_before is not None:
            params["not_before"] = not_before.isoformat()
        response = await self._request(
            "POST",
            "/v1/document-jobs",
            json=intent.model_dump(mode="json", exclude_none=True),
            params=params,
        )
        return Job.from_json(response.json()), response.status_code == 201

    async def plan(self, intent: ecosign.DocumentJob) -> dict[str, Any]:
        body = intent.model_dump(mode="json", exclude_none=True)
        response = await self._request("POST", "/v1/document-jobs:plan", json=body)
        found: dict[str, Any] = response.json()
        return found

    async def get(self, job_id: str) -> Job:
        return Job.from_json((await self._request("GET", f"/v1/jobs/{job_id}")).json())

    async def list_jobs(
        self,
        *,
        statuses: Sequence[JobStatus] | None,
        kinds: Sequence[str] | None,
        document_id: str | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[Job], str | None]:
        params: list[tuple[str, str | int]] = [("limit", limit)]
        params += [("status", s.value) for s in statuses or ()]
        params += [("kind", k) for k in kinds or ()]
        if document_id:
            params.append(("document_id", document_id))
        if cursor:
            params.append(("cursor", cursor))
        page = (await self._request("GET", "/v1/jobs", params=params)).json()
        return [Job.from_json(j) for j in page["jobs"]], page.get("next_cursor")

    async def events(self, job_id: str, after: int) -> list[Event]:
        response = await self._request("GET", f"/v1/jobs/{job_id}/events", params={"after": after})
        return [event_from_json(e) for e in response.json()]

    async def bulk(self, selection: JobFilter, verb: str, *, dry_run: bool) -> dict[str, Any]:
        body = {
            "status": [s.value for s in selection.statuses],
            "kind": None if selection.kinds is None else list(selection.kinds),
            "step": selection.step,
            "reason": selection.reason,
            "limit": selection.limit,
            "dry_run": dry_run,
        }
        response = await self._request("POST", f"/v1/jobs:{verb}", json=body)
        result: dict[str, Any] = response.json()
        return result

    async def failures(self, kinds: list[str] | None) -> list[dict[str, Any]]:
        params = [("kind", k) for k in kinds or []]
        response = await self._request("GET", "/v1/failures", params=params)
        groups: list[dict[str, Any]] = response.json()
        return groups

    async def calls(self, job_id: str) -> list[CallRecord]:
        response = await self._request("GET", f"/v1/jobs/{job_id}/calls")
        return [call_from_json(c) for c in response.json()]

    async def follow(self, job_id: str, after: int) -> AsyncIterator[Event]:
        import httpx

        job = await self.get(job_id)  # a clear error for an unknown id; the full id for the stream
        params: dict[str, str | int] = {"job_id": job.id, "after": after}
        while True:  # reconnect (resuming from the last id) if the stream drops
            try:
                async with self.client.stream(
                    "GET", "/v1/events/stream", params=params, timeout=None
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise RemoteError(response.status_code, response.text[:200])
                    async for event in _parse_sse(response):
                        params["after"] = event.id
                        yield event
                        if event.type in TERMINAL_EVENTS:
                            return
            except httpx.TransportError:
                await asyncio.sleep(1)

    async def retry(self, job_id: str) -> Job:
        return Job.from_json((await self._request("POST", f"/v1/jobs/{job_id}/retry")).json())

    async def cancel(self, job_id: str) -> Job:
        return Job.from_json((await self._request("POST", f"/v1/jobs/{job_id}/cancel")).json())


async def _parse_sse(response: httpx.Response) -> AsyncIterator[Event]:
    """The events of an SSE response, framed by ``httpx-sse`` (comments and pings skipped)."""
    from httpx_sse import EventSource

    async for message in EventSource(response).aiter_sse():
        if not message.data:
            continue
        with contextlib.suppress(ValueError, KeyError):
            yield event_from_json(json.loads(message.data))


@contextlib.asynccontextmanager
async def open_target(*, registry: bool = False) -> AsyncIterator[Target]:
    """The remote API when ``--api-url`` is set, else the local database (with the job kinds
    loaded only when ``registry`` is needed, i.e. to submit)."""
    settings = state.settings
    if state.remote:
        token = None if settings.api_token is None else settings.api_token.get_secret_value()
        remote = RemoteTarget(state.remote, token)
        try:
            yield remote
        finally:
            await remote.aclose()
        return
    from ecosign_orchestrator.service import wiring

    async with contextlib.AsyncExitStack() as stack:
        job_kinds = Registry()
        admission = previewer = None
        if registry:
            rt = await stack.enter_async_context(wiring.runtime(settings, state.apps))
            job_kinds, admission, previewer = rt.registry, rt.admission, rt.previewer
        repository = await stack.enter_async_context(wiring.open_repository(settings))
        queue = wiring.build_queue(repository, job_kinds)
        yield LocalTarget(repository, queue, admission, previewer)


def run_on_target(action: Callable[[Target], Awaitable[T]], *, registry: bool = False) -> T:
    """Run ``action`` against the chosen target; API refusals (4xx) exit 2 like local ones."""

    async def go() -> T:
        async with open_target(registry=registry) as target:
            return await action(target)

    try:
        return run(go)
    except RemoteError as exc:
        raise fail(str(exc)) from None
