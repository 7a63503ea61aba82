"""Deadlines and connection caps for the HTTP server (uvicorn), so slow, half-open or
never-reading clients cannot hold the API.

uvicorn times out idle keep-alive connections but never a request being read nor a response the
client does not read: a client that sends its headers one byte at a time, or pipelines requests
and never reads the answers, holds a connection, a file descriptor and its buffered responses
forever, and about a thousand of them stop the API. This protocol is uvicorn's own h11 protocol
with these additions:

- a request's headers must arrive within ``header_timeout`` of its first byte (or of the
  connection, for the first request), else ``408`` and the connection is closed;
- its body must arrive within ``body_timeout`` of the headers, else the connection is closed
  (the application sees a disconnect);
- a response the client stops reading (the transport's buffer stays full) is given
  ``send_timeout``, then the connection is dropped (an event stream keeps flowing while it is
  read: only a stalled one is cut);
- every connection is counted in the server's :class:`~ecosign_orchestrator.service.acceptor.
  ConnectionGate` (overall and per client), which the accept loop waits on; served without that
  loop, one connection over ``max_connections`` is answered ``503`` and closed.

Once a request is fully read and its answer flows, nothing is timed here: handlers and event
streams run as long as they need.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import struct
import termios
import time
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from ecosign_orchestrator.service.connections import ConnectionGate, RateLimitedLog, peer_address
from ecosign_orchestrator.service.http_limits import HttpLimits

logger = logging.getLogger(__name__)

_REFUSE = (
    b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s"
)


#: A client that pipelines requests is answered this many times ahead of what it has read; then
#: nothing more until it reads. Clients that do not pipeline (nearly all) are never held. Without
#: it, each connection that sent a few hundred requests and read nothing cost hundreds of
#: answers (a thousand such connections kept the server busy for seconds).
PIPELINE_DEPTH = 4
PIPELINE_POLL_SECONDS = 0.05


def unsent_bytes(transport: asyncio.BaseTransport) -> int:
    """Bytes written to the connection that its client has not taken yet (the transport's
    buffer plus the kernel's send queue; 0 if the kernel cannot say)."""
    buffered = (
        transport.get_write_buffer_size() if hasattr(transport, "get_write_buffer_size") else 0
    )
    sock = transport.get_extra_info("socket")
    queued = 0
    if sock is not None:
        with contextlib.suppress(OSError, ValueError):
            raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
            queued = struct.unpack("i", raw)[0]
    return int(buffered) + queued


def _refusal(status: int, reason: str, text: str) -> bytes:
    body = text.encode()
    return _REFUSE % (status, reason.encode(), len(body), body)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with read deadlines and a connection cap (see the module)."""

    limits: ClassVar[HttpLimits] = HttpLimits()
    max_connections: ClassVar[int] = HttpLimits().max_connections
    gate: ClassVar[ConnectionGate] = ConnectionGate(HttpLimits().max_connections, 0)
    refused: ClassVar[RateLimitedLog] = RateLimitedLog(logging.WARNING)
    stalled: ClassVar[RateLimitedLog] = RateLimitedLog(logging.INFO)
    _deadline: asyncio.TimerHandle | None = None
    _send_deadline: asyncio.TimerHandle | None = None
    _phase: Any = None
    _client: str | None = None
    #: Monotonic time of its last progress: bytes received, an answer finished or resumed.
    _active_at: float = 0.0
    _stalled_at: float | None = None
    #: Answers sent since this client's socket was last seen drained (pipelined requests only).
    _unread: int = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._client = peer_address(transport)
        self._active_at = time.monotonic()
        self.gate.opened(self._client)
        self.gate.members.add(self)
        if self.gate.open > self.max_connections:  # only without the accept loop
            self.gate.cut["cap"] += 1
            self.refused(
                "refused a connection: %d open (ECOSIGN_ORCH_HTTP_MAX_CONNECTIONS)",
                self.gate.open - 1,
                action="connection_refused",
            )
            transport.write(_refusal(503, "Service Unavailable", "too many connections\n"))
            transport.close()
            return
        self._watch()

    def data_received(self, data: bytes) -> None:
        self._active_at = time.monotonic()
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        self._active_at = time.monotonic()
        if self._unread_answers():
            self._hold_pipeline()  # it reads nothing: answer its next request once it does
            return
        super().on_response_complete()
        self._watch()

    def _unread_answers(self) -> bool:
        """Whether this client lets answers pile up unread: it pipelined more requests, and
        :data:`PIPELINE_DEPTH` answers were sent since its socket was last seen drained."""
        if self.conn.their_state is not h11.DONE:
            return False  # no further request was read yet: nothing is pipelined
        if unsent_bytes(self.transport) == 0:
            self._unread = 0
            return False
        self._unread += 1
        return self._unread >= PIPELINE_DEPTH

    def _hold_pipeline(self) -> None:
        """Answer nothing more until the client has read what it was sent (polled: the kernel
        says when its queue is empty); meanwhile the connection counts as stalled (the send
        deadline runs, and a full server may shed it)."""
        if self._stalled_at is None:
            self._stalled_at = time.monotonic()
        if self._send_deadline is None:
            self._send_deadline = self.loop.call_later(self.limits.send_timeout, self._send_late)
        self.loop.call_later(PIPELINE_POLL_SECONDS, self._release_pipeline)

    def _release_pipeline(self) -> None:
        if self.transport.is_closing():
            return
        if unsent_bytes(self.transport) > 0:
            self.loop.call_later(PIPELINE_POLL_SECONDS, self._release_pipeline)
            return
        self._unread = 0
        self._stalled_at = None
        self._not_stalled()
        super().on_response_complete()
        self._watch()

    def idle_seconds(self) -> float | None:
        """How long this connection has made no progress: its answer unread, or its request
        not (completely) sent; None while a request is being served and its answer flows."""
        now = time.monotonic()
        if self._stalled_at is not None:
            return now - self._stalled_at
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
            return now - self._active_at
        return None

    def shed(self) -> None:
        """The server is full and this connection makes no progress: close it."""
        self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._not_stalled()
        if self._client is not None:
            self.gate.closed(self._client)
            self.gate.members.discard(self)
            self._client = None
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        """The client is not reading what it asked for: it has ``send_timeout`` to start."""
        super().pause_writing()
        if self._stalled_at is None:
            self._stalled_at = time.monotonic()
        if self._send_deadline is None:
            self._send_deadline = self.loop.call_later(self.limits.send_timeout, self._send_late)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._active_at = time.monotonic()
        self._stalled_at = None
        self._not_stalled()

    def _not_stalled(self) -> None:
        if self._send_deadline is not None:
            self._send_deadline.cancel()
            self._send_deadline = None

    def _send_late(self) -> None:
        self._send_deadline = None
        self.gate.cut["stalled"] += 1
        self.stalled(
            "dropped a connection that read nothing of its answer for %.0f s",
            self.limits.send_timeout,
            action="response_stalled",
        )
        self.transport.abort()

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
        self.gate.cut["header_timeout"] += 1
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
        self.gate.cut["body_timeout"] += 1
        logger.info(
            "closed a connection that did not send a request's body in %.0f s",
            self.limits.body_timeout,
            extra={"action": "request_timeout", "phase": "body"},
        )
        self.transport.close()


def guarded_protocol(limits: HttpLimits) -> type[H11Protocol]:
    """The protocol class with ``limits`` applied and a gate of its own (pass it as
    ``uvicorn.Config(http=...)``; one class per server)."""
    cap = limits.effective_max_connections()
    attributes = {
        "limits": limits,
        "max_connections": cap,
        "gate": ConnectionGate(cap, limits.max_per_client),
        "refused": RateLimitedLog(logging.WARNING),
        "stalled": RateLimitedLog(logging.INFO),
    }
    return type("GuardedH11Protocol", (GuardedH11Protocol,), attributes)
