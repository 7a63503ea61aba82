"""API tokens with names: ``ECOSIGN_ORCH_API_TOKENS=ops-alice:s3cret,deploy:t0ken:read``.

Each entry is ``name:token[:scope]`` (scope ``write``, the default, or ``read``), or a bare
``token`` as before names existed: it is then known as ``token-`` and the first 8 hex digits of
its SHA-256, a name that says which token acted without revealing it. A token's name, never the
token, is what events record as the actor of a retry or a cancel, and what logs show.
``ECOSIGN_ORCH_API_READ_TOKENS`` takes the same forms; its tokens can only read.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import re
from collections.abc import Sequence

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}", re.ASCII)


class Scope(enum.Enum):
    """What a token may do."""

    READ = "read"
    WRITE = "write"


@dataclasses.dataclass(frozen=True, slots=True)
class ApiToken:
    """One configured token: who it stands for and what it may do."""

    name: str
    secret: str = dataclasses.field(repr=False)
    scope: Scope


def unnamed(secret: str) -> str:
    """The name of a token configured without one."""
    return "token-" + hashlib.sha256(secret.encode()).hexdigest()[:8]


def parse_tokens(entries: Sequence[str], *, read_only: bool = False) -> list[ApiToken]:
    """The tokens ``entries`` configure (``ValueError`` naming the entry's position and what is
    wrong with it, never its secret)."""
    tokens = []
    for position, entry in enumerate(entries, 1):
        parts = entry.split(":")
        if len(parts) == 1:
            name, secret, scope = unnamed(entry), entry, None
        elif len(parts) in (2, 3):
            name, secret = parts[0], parts[1]
            scope = parts[2] if len(parts) == 3 else None
        else:
            raise ValueError(f"entry {position}: expected name:token or name:token:scope")
        if not _NAME.fullmatch(name):
            raise ValueError(
                f"entry {position}: a token's name is 1-64 letters, digits and . _ @ - "
                "(starting with a letter or digit)"
            )
        if not secret or secret != secret.strip():
            raise ValueError(f"entry {position} ({name}): the token is empty or has spaces")
        if scope not in (None, "read", "write"):
            raise ValueError(f"entry {position} ({name}): the scope must be read or write")
        if read_only and scope == "write":
            raise ValueError(f"entry {position} ({name}): read tokens cannot have scope write")
        granted = Scope.READ if read_only or scope == "read" else Scope.WRITE
        tokens.append(ApiToken(name=name, secret=secret, scope=granted))
    return tokens
