"""Read deadlines and a connection cap for the HTTP server (uvicorn), so slow or half-open
clients cannot hold the API.

uvicorn times out idle keep-alive connections but never a request being read: a client that
connects and sends its headers one byte at a time (or nothing at all) holds a connection and a
file descriptor forever, and about a thousand of them stop the API. This protocol is uvicorn's
own h11 protocol with three additions:

- a request's headers must arrive within ``header_timeout`` of its first byte (or of the
  connection, for the first request), else ``408`` and the connection is closed;
- its body must arrive within ``body_timeout`` of the headers, else the connection is closed
  (the application sees a disconnect);
- at most ``max_connections`` connections are open at once; one more is answered ``503`` and
  closed at once, before anything is read.

Once a request is fully read nothing is timed here: handlers and event streams run as long as
they need.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from ecosign_orchestrator.service.http_limits import HttpLimits

logger = logging.getLogger(__name__)

_REFUSE = (
    b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s"
)


def _refusal(status: int, reason: str, text: str) -> bytes:
    body = text.encode()
    return _REFUSE % (status, reason.encode(), len(body), body)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with read deadlines and a connection cap (see the module)."""

    limits: ClassVar[HttpLimits] = HttpLimits()
    max_connections: ClassVar[int] = HttpLimits().max_connections
    _deadline: asyncio.TimerHandle | None = None
    _phase: Any = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            logger.warning(
                "refused a connection: %d open (ECOSIGN_ORCH_HTTP_MAX_CONNECTIONS)",
                len(self.connections) - 1,
                extra={"action": "connection_refused"},
            )
            transport.write(_refusal(503, "Service Unavailable", "too many connections\n"))
            transport.close()
            return
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _watch(self) -> None:
        """Arm the deadline of the phase the request is in; keep it while the phase lasts
        (a client sending one byte at a time does not push its deadline back)."""
        if self.transport.is_closing():
            self._disarm()
            return
        state = self.conn.their_state
        if state is self._phase:
            return
        if state is h11.IDLE and self.timeout_keep_alive_task is not None:
            return  # idle between requests: uvicorn's keep-alive timeout applies
        self._disarm()
        self._phase = state
        if state is h11.IDLE:
            self._arm(self.limits.header_timeout, self._headers_late)
        elif state is h11.SEND_BODY:
            self._arm(self.limits.body_timeout, self._body_late)
        elif state is h11.DONE:  # request read: the handler runs as long as it needs
            self._phase = None

    def _arm(self, seconds: float, handler: Any) -> None:
        self._deadline = self.loop.call_later(seconds, handler)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_late(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        logger.info(
            "closed a connection that did not send a request's headers in %.0f s",
            self.limits.header_timeout,
            extra={"action": "request_timeout", "phase": "headers"},
        )
        if self.conn.our_state is h11.IDLE:
            self.transport.write(_refusal(408, "Request Timeout", "request timeout\n"))
        self.transport.close()

    def _body_late(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self.conn.their_state is not h11.SEND_BODY:
            return
        logger.info(
            "closed a connection that did not send a request's body in %.0f s",
            self.limits.body_timeout,
            extra={"action": "request_timeout", "phase": "body"},
        )
        self.transport.close()


def guarded_protocol(limits: HttpLimits) -> type[H11Protocol]:
    """The protocol class with ``limits`` applied (pass it as ``uvicorn.Config(http=...)``)."""
    attributes = {"limits": limits, "max_connections": limits.effective_max_connections()}
    return type("GuardedH11Protocol", (GuardedH11Protocol,), attributes)
