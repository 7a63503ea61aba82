"""The call log: each request a job made to an outside service, one record per attempt, so an
operator can see what the service answered.

A processor reports a call through ``JobContext.record_call``; records are written with the
job's next step record (same transaction), and deleted with the job by retention. What goes in a
record is the caller's choice; the EcoSign processor stores the response body up to a size, the
headers that matter and, for the request, only field names and sizes (never a secret).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from ecosign_orchestrator.core.types import JobId, JSONDict


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CallRecord:
    """One attempt of one outside call."""

    #: The service called (for EcoSign, the Edge Function's name).
    target: str
    #: The job's step the call belongs to ("" when none).
    step: str = ""
    #: The step's attempt number (1-based).
    attempt: int = 1
    idempotency_key: str | None = None
    started_at: datetime
    duration_ms: float
    #: The HTTP status, or None when no answer came (timeout, network error).
    status: int | None
    #: Why it failed, as the caller classified it ("" on success).
    error: str = ""
    #: The answer's headers worth keeping (e.g. ``retry-after``, a request id).
    response_headers: dict[str, str] = dataclasses.field(default_factory=dict)
    #: The answer's body, up to the caller's limit.
    response_body: str = ""
    #: Whether ``response_body`` was cut at that limit.
    truncated: bool = False
    #: What was sent: by default the body's field names and sizes.
    request: JSONDict = dataclasses.field(default_factory=dict)
    #: Set by the store.
    id: int = 0
    job_id: JobId = dataclasses.field(default_factory=lambda: JobId(""))
    #: The job's attempt (run) that made the call; set when recorded.
    job_attempt: int = 0

    def storable(self) -> CallRecord:
        """This record with no NUL character in its text (PostgreSQL's text refuses it)."""
        return dataclasses.replace(
            self,
            error=self.error.replace("\x00", "\ufffd"),
            response_body=self.response_body.replace("\x00", "\ufffd"),
        )

    def to_json(self) -> JSONDict:
        """JSON form for APIs and the CLI."""
        return {
            "id": self.id,
            "job_id": self.job_id,
            "job_attempt": self.job_attempt,
            "step": self.step,
            "attempt": self.attempt,
            "target": self.target,
            "idempotency_key": self.idempotency_key,
            "started_at": self.started_at.isoformat(),
            "duration_ms": round(self.duration_ms, 1),
            "status": self.status,
            "error": self.error,
            "response_headers": dict(self.response_headers),
            "response_body": self.response_body,
            "truncated": self.truncated,
            "request": self.request,
        }
