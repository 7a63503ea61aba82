"""Reading Edge Function and PostgREST answers: one table-driven classification (design §4).

- 204 -> not processed -> transient (never success: a feature-gated function answers 204);
- 2xx with a JSON body -> success (``noop: true`` is success too);
- ``409`` with ``error: precondition_failed:*`` -> re-plan from state (see the processor);
- a boolean ``retryable`` in the body decides transient vs fatal, whatever the status;
- otherwise 408/425/429 and every 5xx (Supabase's 540/544/546 included) -> transient;
- any other 4xx -> fatal.
Network errors and timeouts are transient: a timed-out call may have done its work, which is why
every call carries an idempotency key and every step is safe to repeat.
"""

from __future__ import annotations

import dataclasses
import email.utils
import time
from collections.abc import Mapping
from typing import Any

TRANSIENT_4XX = frozenset({408, 425, 429})
MAX_MESSAGE = 500


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """How to read one answer."""

    ok: bool
    transient: bool = False
    precondition: bool = False
    message: str = ""
    retry_after: float | None = None


class CallError(Exception):
    """A call that did not succeed; ``transient`` says whether retrying may help."""

    def __init__(
        self,
        target: str,
        message: str,
        *,
        status: int | None,
        transient: bool,
        precondition: bool = False,
        retry_after: float | None = None,
    ) -> None:
        label = "network" if status is None else str(status)
        super().__init__(f"{target} -> {label}: {message}")
        self.target = target
        self.status = status
        self.reason = message
        self.transient = transient
        self.precondition = precondition
        self.retry_after = retry_after

    def details(self) -> dict[str, Any]:
        """JSON-able fields for the job's error record."""
        return {
            "function": self.target,
            "status": self.status,
            "message": self.reason,
            "transient": self.transient,
            "retry_after": self.retry_after,
        }


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None when absent or invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = moment.timestamp() - (now if now is not None else time.time())
    return max(seconds, 0.0) if seconds == seconds else None  # NaN guard


def _message(body: Any, fallback: str) -> str:
    if isinstance(body, Mapping):
        for key in ("error", "message", "msg"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value[:MAX_MESSAGE]
    return fallback


def classify(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Verdict:
    """The verdict for one HTTP answer (``body`` is the decoded JSON, or None)."""
    retry_after = parse_retry_after((headers or {}).get("retry-after"))
    if status == 204:
        return Verdict(
            ok=False,
            transient=True,
            message="204 No Content: the function did not process the call",
            retry_after=retry_after,
        )
    if 200 <= status < 300:
        if isinstance(body, Mapping):
            return Verdict(ok=True)
        return Verdict(ok=False, transient=True, message=f"{status} without a JSON object body")
    message = _message(body, f"HTTP {status}")
    retryable = body.get("retryable") if isinstance(body, Mapping) else None
    if status == 409 and message.startswith("precondition_failed:"):
        transient = retryable is True
        return Verdict(
            ok=False,
            transient=transient,
            precondition=True,
            message=message,
            retry_after=retry_after,
        )
    if isinstance(retryable, bool):
        return Verdict(ok=False, transient=retryable, message=message, retry_after=retry_after)
    transient = status in TRANSIENT_4XX or status >= 500
    return Verdict(ok=False, transient=transient, message=message, retry_after=retry_after)
