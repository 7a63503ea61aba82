"""Bearer-token auth: read-write tokens and read-only tokens, compared in constant time."""

from __future__ import annotations

import enum
import hmac
from collections.abc import Callable, Coroutine, Sequence
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ecosign_orchestrator.service.api.errors import ApiError


class Scope(enum.Enum):
    """What a token may do."""

    READ = "read"
    WRITE = "write"


bearer = HTTPBearer(
    auto_error=False,
    description="A token from ECOSIGN_ORCH_API_TOKENS (read-write) "
    "or ECOSIGN_ORCH_API_READ_TOKENS (read-only)",
)


class TokenCheck:
    """Decides what a presented token may do."""

    def __init__(self, write: Sequence[str], read: Sequence[str]) -> None:
        self._write = [t.encode() for t in write]
        self._read = [t.encode() for t in read]

    @property
    def enabled(self) -> bool:
        """False when no token is configured (then the server only binds loopback)."""
        return bool(self._write or self._read)

    def scope_of(self, token: str) -> Scope | None:
        """The scope of ``token``; every configured token is compared (no early exit)."""
        given = token.encode()
        write = any([hmac.compare_digest(given, t) for t in self._write])
        read = any([hmac.compare_digest(given, t) for t in self._read])
        if write:
            return Scope.WRITE
        return Scope.READ if read else None


def requires(scope: Scope) -> Callable[..., Coroutine[Any, Any, None]]:
    """A dependency checking the request's bearer token for ``scope``."""

    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        tokens: TokenCheck = request.app.state.tokens
        if not tokens.enabled:
            return
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise ApiError(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        granted = tokens.scope_of(credentials.credentials)
        if granted is None:
            raise ApiError(401, "invalid bearer token", headers={"WWW-Authenticate": "Bearer"})
        if scope is Scope.WRITE and granted is not Scope.WRITE:
            raise ApiError(403, "this token is read-only")

    return check
