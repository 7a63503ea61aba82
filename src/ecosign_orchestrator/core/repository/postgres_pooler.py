"""Connection poolers between the orchestrator and PostgreSQL (PgBouncer, Supabase's Supavisor).

A pooler in **transaction** mode hands each transaction to whichever server connection is free,
so nothing may outlive a transaction: no prepared statement (psycopg prepares a query it has run
five times on a connection), no session setting, no session lock, no ``LISTEN``. **Session**
mode keeps one server connection per client connection, which behaves like a direct one.

The mode comes from the URL's ``pooler`` option (``transaction``, ``session`` or ``none``; it is
removed before the URL reaches libpq, which would refuse it) or, when absent, from the port:
6543 is the transaction-mode port of Supabase's pooler, so a URL copied from Supabase works.
"""

from __future__ import annotations

import dataclasses
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ecosign_orchestrator.core import errors

PoolerMode = Literal["transaction", "session", "none"]
_MODES: dict[str, PoolerMode] = {"transaction": "transaction", "session": "session", "none": "none"}

#: Supabase's (Supavisor's) transaction-mode port.
TRANSACTION_PORT = 6543

#: Without LISTEN, how long an idle worker waits before looking for work again: the
#: enqueue-to-start latency a transaction-mode pooler costs (a claim query per wait).
POLL_SECONDS = 0.1


@dataclasses.dataclass(frozen=True, slots=True)
class Connection:
    """What the driver gets: the URL without our option, and how to use it."""

    url: str
    pooler: PoolerMode

    @property
    def transaction_mode(self) -> bool:
        """Each transaction may run on another server connection."""
        return self.pooler == "transaction"

    @property
    def prepare_threshold(self) -> int | None:
        """psycopg's ``prepare_threshold``: None never prepares (transaction mode)."""
        return None if self.transaction_mode else 5


def parse(url: str) -> Connection:
    """Read and remove the ``pooler`` option of a PostgreSQL URL (or infer it from the port)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    chosen = [value for key, value in query if key == "pooler"]
    rest = [(key, value) for key, value in query if key != "pooler"]
    mode: PoolerMode
    if chosen:
        found = _MODES.get(chosen[-1].strip().lower())
        if found is None:
            raise errors.ConfigurationError(
                f"database URL option pooler={chosen[-1]!r}: use transaction, session or none"
            )
        mode = found
    else:
        try:
            port = parts.port
        except ValueError:
            port = None  # libpq reports a malformed port with its own words
        mode = "transaction" if port == TRANSACTION_PORT else "none"
    clean = urlunsplit(parts._replace(query=urlencode(rest)))
    return Connection(url=clean, pooler=mode)
