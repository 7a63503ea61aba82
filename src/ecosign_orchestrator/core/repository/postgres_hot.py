"""PostgreSQL's hot statements over asyncpg, with server-side prepared statements.

A worker claims and completes, and a producer enqueues, far more often than anything else runs,
and on these three statements the driver was half of a draining worker's CPU. asyncpg speaks
the binary protocol and keeps each statement prepared on its connection: a claim of 16 jobs
costs its client 270-290 us of CPU where psycopg spends 580-620, an empty statement 145-160
against 230-270 (same machine, same statements). Everything else stays on psycopg.

Prepared statements need a server connection that stays the client's, so this path is used
only without a pooler or behind a session-mode one. Through a transaction-mode pooler (Supabase's
port 6543) asyncpg would have to describe every statement first, an extra round trip that made
it slower than psycopg there (375-460 us for an empty statement), so psycopg runs everything.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
from psycopg.types.json import Jsonb

from ecosign_orchestrator.core import errors, jsonfast

#: The statements this path runs; every other statement runs on psycopg.
HOT_STATEMENTS = frozenset({"claim", "complete_many", "enqueue_new"})

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def positional(sql: str) -> tuple[str, tuple[str, ...]]:
    """psycopg's ``%(name)s`` placeholders as PostgreSQL's ``$n``, and the names in order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    if "%%" in sql:  # not in the hot statements; refuse rather than mistranslate
        raise ValueError("a literal % in a hot statement")
    return _PLACEHOLDER.sub(number, sql), tuple(names)


#: libpq options that tune only the client's side of the connection (asyncpg would send them to
#: the server as settings, which refuses them). Anything else asyncpg cannot use makes it fail
#: to connect, and everything then runs on psycopg (``PostgresRepository.open``).
_CLIENT_ONLY = frozenset(
    {
        "connect_timeout",  # asyncpg's own timeout is the repository's connect timeout
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
        "fallback_application_name",
        "sslsni",  # asyncpg always sends the server name
    }
)


def asyncpg_url(url: str) -> str:
    """The URL without the libpq options asyncpg does not take (:data:`_CLIENT_ONLY`, and
    ``gssencmode`` unless it is ``require``, which asyncpg cannot honour)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    kept = [
        (key, value)
        for key, value in query
        if key not in _CLIENT_ONLY and not (key == "gssencmode" and value != "require")
    ]
    return urlunsplit(parts._replace(query=urlencode(kept))) if kept != query else url


def redacted(message: str, url: str) -> str:
    """``message`` without the URL's password (an error may quote the DSN it parsed)."""
    password = urlsplit(url).password
    return message.replace(password, "***") if password else message


def _encode_jsonb(value: Any) -> bytes:
    return b"\x01" + jsonfast.dumps(value)  # jsonb's binary format: a version byte, the text


def _decode_jsonb(data: bytes) -> Any:
    return jsonfast.loads(memoryview(data)[1:])


async def _init(conn: asyncpg.Connection) -> None:
    """Each connection's set-up: JSON through orjson, as on psycopg's connections."""
    for name in ("jsonb", "json"):
        binary = name == "jsonb"
        await conn.set_type_codec(
            name,
            schema="pg_catalog",
            encoder=_encode_jsonb if binary else jsonfast.dumps,
            decoder=_decode_jsonb if binary else jsonfast.loads,
            format="binary" if binary else "text",
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A released connection keeps its session: the hot statements set nothing, listen to
    nothing and take no advisory lock, so asyncpg's default reset (one more round trip per
    statement) would undo nothing."""


def _value(value: Any) -> Any:
    return value.obj if isinstance(value, Jsonb) else value


class HotPath:
    """A small asyncpg pool for :data:`HOT_STATEMENTS`."""

    def __init__(
        self,
        url: str,
        query: Callable[[str], str],
        *,
        max_size: int,
        connect_timeout: float,
    ) -> None:
        self._url = url
        self._query = query
        self._max_size = max_size
        self._connect_timeout = connect_timeout
        self._pool: asyncpg.Pool | None = None
        self._statements: dict[str, tuple[str, tuple[str, ...]]] = {}

    async def open(self) -> None:
        """Open the pool (one connection at first, more as callers overlap)."""
        with translate_asyncpg():
            self._pool = await asyncpg.create_pool(
                asyncpg_url(self._url),
                min_size=1,
                max_size=self._max_size,
                init=_init,
                reset=_keep_session,
                timeout=self._connect_timeout,
                command_timeout=None,
            )

    async def close(self) -> None:
        """Close the pool, waiting for statements in flight."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def fetch(self, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run one hot statement outside a transaction; its rows."""
        pool = self._pool
        if pool is None:
            raise errors.RepositoryError("repository is not open: use `async with` or open()")
        found = self._statements.get(name)
        if found is None:
            found = self._statements[name] = positional(self._query(name))
        sql, names = found
        args = [_value(params[n]) for n in names]
        # A connection at hand is taken without arming a timer (a timer per statement was
        # measurable); only a wait for one is bounded, as on psycopg's pool.
        timeout = None if pool.get_idle_size() else self._connect_timeout
        with translate_asyncpg():
            async with pool.acquire(timeout=timeout) as conn:
                try:
                    rows = await conn.fetch(sql, *args)
                except BaseException as exc:
                    if not isinstance(exc, asyncpg.PostgresError):
                        # Not an answer from the server (a dropped or cut connection, a
                        # cancelled wait): the connection's state is unknown, and asyncpg can
                        # hand such a one out again (MagicStack/asyncpg#784, #1069). Closed, the
                        # pool replaces it.
                        conn.terminate()
                    raise
        return [dict(r) for r in rows]


@contextlib.contextmanager
def translate_asyncpg() -> Iterator[None]:
    """Map asyncpg's errors to :class:`RepositoryError` (the original in ``__cause__``), as
    :func:`.postgres_tx.translate_errors` maps psycopg's."""
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        raise errors.DuplicateJob(None) from exc
    except (
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,  # a connection cut mid-statement (asyncpg#1069)
        OSError,
        TimeoutError,
    ) as exc:
        raise errors.RepositoryError(f"postgresql: {type(exc).__name__}: {exc}".strip()) from exc
