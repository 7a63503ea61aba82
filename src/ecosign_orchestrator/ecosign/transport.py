"""HTTP for Edge Function calls and state reads, over one pooled aiohttp session.

Why aiohttp and not httpx: measured on this project's own request shape (a JSON POST and a
PostgREST GET against a local server, 8,000 requests), httpx took 1.1-1.7 ms of client CPU per
request and aiohttp 0.25-0.35 ms, at 1, 100 and 1,000 concurrent callers, with 30 MiB less
memory at 1,000 (a flow makes about fifteen requests, so this was most of a flow worker's CPU).

What a caller gets is an :class:`Answer`: the status, the headers worth reading (lowercase
names) and the body, read whole but never beyond ``max_body_bytes``. Transport failures become a
transient :class:`CallError` (a timed-out call may have done its work: every call carries an
idempotency key, and every step is safe to repeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from ecosign_orchestrator.ecosign.http import CallError

#: The largest answer read (a document row with a long ledger is well under 1 MiB).
MAX_BODY_BYTES = 16 * 1024 * 1024
#: An idle connection is dropped after 4 s, before the common 5 s server keep-alive (uvicorn's,
#: nginx's) closes it under a request about to be sent.
KEEPALIVE_SECONDS = 4.0


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer, read whole."""

    status: int
    #: Response headers by lowercase name (the last value of a repeated header).
    headers: Mapping[str, str]
    content: bytes


class HttpClient:
    """Sends requests through one pooled session; share one per process.

    ``connections`` bounds the exchanges open at once. A request past it waits, first come
    first served, before anything of it is built (each open exchange holds about 15 KiB of the
    client's objects), and that wait is not part of its timeout: a long queue delays calls, it
    does not fail them."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        connections: int,
        max_body_bytes: int = MAX_BODY_BYTES,
    ):
        self._session = session
        self._open = asyncio.Semaphore(connections)
        self._waiting = self._active = 0
        self.max_body_bytes = max_body_bytes

    @property
    def exchanges(self) -> tuple[int, int]:
        """(open, waiting): exchanges under way now, and requests waiting for one to end."""
        return self._active, self._waiting

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, connections: int, *, max_body_bytes: int = MAX_BODY_BYTES
    ) -> AsyncIterator[HttpClient]:
        """A client with its own connection pool, closed on exit (``connections``: the
        deployment's ``EDGE_MAX_CONNECTIONS``; this class has no default of its own)."""
        connections = max(1, connections)
        connector = aiohttp.TCPConnector(
            limit=connections,
            limit_per_host=0,
            keepalive_timeout=KEEPALIVE_SECONDS,
            ssl=ssl.create_default_context(),
        )
        # No cookie jar (nothing here is a browser session), no default timeout (each request
        # carries its own), and no environment proxies unless asked for.
        async with aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None),
        ) as session:
            yield cls(session, connections=connections, max_body_bytes=max_body_bytes)

    async def send(
        self,
        method: str,
        url: str,
        *,
        target: str,
        timeout: float,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> Answer:
        """Send one request; ``timeout`` bounds each phase (connecting, and the wait for
        every read), as a per-call timeout of the step table means. ``target`` names the
        endpoint in a :class:`CallError` (never the URL's query)."""
        self._waiting += 1
        try:
            await self._open.acquire()
        finally:
            self._waiting -= 1
        self._active += 1
        try:
            return await self._send(method, url, target, timeout, params, headers, json)
        finally:
            self._active -= 1
            self._open.release()

    async def _send(
        self,
        method: str,
        url: str,
        target: str,
        timeout: float,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        json: Any,
    ) -> Answer:
        limits = aiohttp.ClientTimeout(
            total=None, connect=timeout, sock_connect=timeout, sock_read=timeout
        )
        try:
            async with self._session.request(
                method,
                url,
                params=params,
                headers=headers,
                json=json,
                timeout=limits,
                allow_redirects=False,
            ) as response:
                content = await self._read(response, target)
                return Answer(
                    response.status,
                    {name.lower(): value for name, value in response.headers.items()},
                    content,
                )
        except TimeoutError as exc:  # aiohttp's timeouts are TimeoutErrors
            raise CallError(
                target, f"timeout: {type(exc).__name__}", status=None, transient=True
            ) from None
        except aiohttp.ClientError as exc:
            raise CallError(
                target, f"network error: {type(exc).__name__}", status=None, transient=True
            ) from None

    async def _read(self, response: aiohttp.ClientResponse, target: str) -> bytes:
        declared = response.content_length
        if declared is not None and declared > self.max_body_bytes:
            raise _too_large(target, response.status, self.max_body_bytes)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _too_large(target, response.status, self.max_body_bytes)
            chunks.append(chunk)
        return b"".join(chunks)


def _too_large(target: str, status: int, limit: int) -> CallError:
    # Not transient: the same request would get the same answer.
    return CallError(
        target,
        f"answer larger than {limit // (1024 * 1024)} MiB; not read",
        status=status,
        transient=False,
    )
