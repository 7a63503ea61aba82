"""Bearer-token auth: read-write tokens and read-only tokens, compared in constant time, and
short-lived stream tickets for browsers."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ecosign_orchestrator.service.api.errors import ApiError
from ecosign_orchestrator.service.tokens import ApiToken, Scope

bearer = HTTPBearer(
    auto_error=False,
    description="A token from ECOSIGN_ORCH_API_TOKENS (read-write, or read with :read) "
    "or ECOSIGN_ORCH_API_READ_TOKENS (read-only); entries are name:token[:scope]",
)


class TokenCheck:
    """Decides who a presented token is and what it may do."""

    def __init__(self, tokens: Sequence[ApiToken]) -> None:
        self._tokens = [(t, t.secret.encode()) for t in tokens]

    @property
    def enabled(self) -> bool:
        """False when no token is configured (then the server only binds loopback)."""
        return bool(self._tokens)

    def identify(self, token: str) -> ApiToken | None:
        """The configured token ``token`` is (the write one first if configured twice); every
        configured token is compared (no early exit)."""
        given = token.encode()
        matches = [t for t, secret in self._tokens if hmac.compare_digest(given, secret)]
        return min(matches, key=lambda t: t.scope is not Scope.WRITE, default=None)


#: The actor of a request when the server has no token configured (loopback only).
ANONYMOUS = "anonymous"


def requires(scope: Scope) -> Callable[..., Coroutine[Any, Any, None]]:
    """A dependency checking the request's bearer token for ``scope``."""

    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        _check(request.app.state.tokens, credentials, scope)

    return check


async def acting(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """Who makes a write request: its token's name (checked for write access)."""
    found = _check(request.app.state.tokens, credentials, Scope.WRITE)
    return ANONYMOUS if found is None else found.name


#: A route parameter: the name of the token acting (recorded in retry and cancel events).
Actor = Annotated[str, Depends(acting)]


async def stream_reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ticket: Annotated[
        str | None,
        Query(
            max_length=128,
            description="A stream ticket from POST /v1/stream-tickets, instead of the bearer "
            "token (a browser's EventSource cannot send an Authorization header)",
        ),
    ] = None,
) -> None:
    """Read access to the event stream: a bearer token, or a valid stream ticket."""
    tokens: TokenCheck = request.app.state.tokens
    if ticket is not None and tokens.enabled:
        if not request.app.state.tickets.valid(ticket):
            raise ApiError(401, "invalid or expired stream ticket")
        return
    _check(tokens, credentials, Scope.READ)


def _check(
    tokens: TokenCheck, credentials: HTTPAuthorizationCredentials | None, scope: Scope
) -> ApiToken | None:
    """The token presented, checked for ``scope`` (None when the server has no tokens)."""
    if not tokens.enabled:
        return None
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    found = tokens.identify(credentials.credentials)
    if found is None:
        raise ApiError(401, "invalid bearer token", headers={"WWW-Authenticate": "Bearer"})
    if scope is Scope.WRITE and found.scope is not Scope.WRITE:
        raise ApiError(403, f"the token {found.name} is read-only")
    return found


#: How long a stream ticket opens the stream (a browser reconnecting later asks for a new one).
TICKET_SECONDS = 60.0


class StreamTickets:
    """Short-lived, read-only credentials for one purpose: opening the event stream.

    A ticket is ``<expiry>.<HMAC-SHA256(key, expiry)>``. The key is derived from every
    configured token, so each API process with the same configuration accepts the others'
    tickets, and a holder of a ticket learns nothing about a token. A leaked ticket reads the
    event stream for at most ``ttl_seconds``; it cannot call any other route.
    """

    def __init__(self, secrets: Sequence[str], *, ttl_seconds: float = TICKET_SECONDS) -> None:
        material = b"\0".join(sorted(s.encode() for s in secrets))
        self._key = hashlib.sha256(b"ecosign-orchestrator stream ticket\0" + material).digest()
        self.ttl_seconds = ttl_seconds

    def issue(self, *, now: float | None = None) -> str:
        """A new ticket, valid for ``ttl_seconds`` from ``now``."""
        expiry = str(int((time.time() if now is None else now) + self.ttl_seconds))
        return f"{expiry}.{self._sign(expiry)}"

    def valid(self, ticket: str, *, now: float | None = None) -> bool:
        """Whether ``ticket`` was issued with this key and has not expired."""
        expiry, _, signature = ticket.partition(".")
        if not expiry.isascii() or not expiry.isdigit() or len(expiry) > 12:
            return False
        if not hmac.compare_digest(signature.encode(), self._sign(expiry).encode()):
            return False
        return int(expiry) >= (time.time() if now is None else now)

    def _sign(self, expiry: str) -> str:
        return hmac.new(self._key, expiry.encode(), hashlib.sha256).hexdigest()
