"""How long a client may take to send a request, and how many may be connected: the settings
of ``service/slow_clients.py``, kept apart so that reading the configuration does not import
the HTTP server (every CLI command reads it; only ``serve`` runs a server)."""

from __future__ import annotations

import dataclasses
import resource


@dataclasses.dataclass(frozen=True, slots=True)
class HttpLimits:
    """How long a client may take to send a request, and how many may be connected."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    #: How long a response may sit unread (the client reads nothing) before the connection
    #: is dropped.
    send_timeout: float = 30.0
    max_connections: int = 1000
    #: At most this many connections from one client address (0: no limit).
    max_per_client: int = 256

    def effective_max_connections(self) -> int:
        """The cap, kept below half the process's file-descriptor limit (the rest is for the
        database, logs and the worker's HTTP client)."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return self.max_connections
        return max(1, min(self.max_connections, soft // 2))
