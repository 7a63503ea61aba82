"""What the sandbox server holds, shared by its Edge Functions, REST and admin routes."""

from __future__ import annotations

import dataclasses
import hmac

from starlette.requests import Request

from ecosign_orchestrator.sandbox.faults import FaultPlan
from ecosign_orchestrator.sandbox.functions import Functions
from ecosign_orchestrator.sandbox.requests import DEFAULT_SHAPE
from ecosign_orchestrator.sandbox.store import Store


@dataclasses.dataclass(slots=True)
class Sandbox:
    """Everything the server holds."""

    service_key: str
    store: Store
    faults: FaultPlan
    functions: Functions
    #: What the real ``notify-artifact-ready`` demands in ``x-cron-secret`` (None: not checked).
    cron_secret: str | None = None
    #: The shape of the protection requests it writes (``sandbox.requests.SHAPES``).
    request_shape: str = DEFAULT_SHAPE


def sandbox_of(request: Request) -> Sandbox:
    """The sandbox serving ``request``."""
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox


def key_matches(given: str, expected: str) -> bool:
    """Constant-time comparison of a presented key with the expected one."""
    return hmac.compare_digest(given.encode(), expected.encode())
