"""Request hygiene: a body size limit, JSON-only bodies, and strict JSON parsing.

Oversized bodies get 413, a wrong content type 415, malformed JSON, duplicate keys, NaN/Infinity
and nesting deeper than 32 levels 422 naming the reason: never a 500, and nothing is written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ecosign_orchestrator.service.api.errors import problem
from ecosign_orchestrator.service.jsonio import JSONInputError, strict_loads

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


#: How much of a refused body is read and thrown away before answering 413: a client still
#: sending (Python's urllib, requests) then reads the answer instead of a connection reset.
DRAIN_FACTOR = 16


class BodyLimit:
    """ASGI middleware: read the whole body (at most ``max_bytes``) before the app sees it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send, size=int(declared), read=0)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            more = message.get("more_body", False)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send, size=None, read=size, more=more)
                return
            chunks.append(chunk)
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        size: int | None,
        read: int,
        more: bool = True,
    ) -> None:
        """413 naming the body, its size and the limit, after draining what a client may still
        be sending (up to a bound: past it the connection is closed, as before)."""
        bound = self.max_bytes * DRAIN_FACTOR
        if size is None or size <= bound:
            while more and read <= bound:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                read += len(message.get("body", b""))
                more = message.get("more_body", False)
        what = f"{size} bytes" if size is not None else f"more than {self.max_bytes} bytes"
        reason = f"{what}: over the {self.max_bytes}-byte limit (ECOSIGN_ORCH_MAX_BODY_BYTES)"
        response = problem(
            413,
            f"request body exceeds {self.max_bytes} bytes",
            [{"field": "body", "reason": reason}],
        )
        await response(scope, receive, send)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class StrictJSONRequest(Request):
    """``json()`` refuses duplicate keys, NaN/Infinity and over-deep nesting."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = strict_loads(body, field="body")
            except JSONInputError as exc:
                # FastAPI turns a JSONDecodeError into a 422 validation error; the handler
                # shows this message as the reason.
                raise json.JSONDecodeError(str(exc), body.decode("utf-8", "replace"), 0) from None
        return self._json


class StrictJSONRoute(APIRoute):
    """A route whose body must be JSON (415 otherwise), parsed strictly."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            strict = StrictJSONRequest(request.scope, request.receive)
            if request.method in BODY_METHODS:
                body = await strict.body()
                content_type = request.headers.get("content-type", "")
                if body and not _is_json(content_type):
                    given = content_type or "missing"
                    return problem(
                        415,
                        f"content type must be application/json, not {given!r}",
                        [{"field": "Content-Type", "reason": f"{given!r} is not JSON"}],
                    )
            return await original(strict)

        return handler
