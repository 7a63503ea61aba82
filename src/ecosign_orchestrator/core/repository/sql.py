"""Named SQL blocks loaded from package files, and migration files.

A query file holds blocks that start with a ``-- name --`` line followed by a description
comment, as in Procrastinate's ``queries.sql``.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from importlib.resources.abc import Traversable

_BLOCK = re.compile(r"^-- ([a-z_]+) --$", re.MULTILINE)
_PACKAGE = "ecosign_orchestrator.core.repository"


def parse_queries(text: str) -> dict[str, str]:
    """Split a query file into ``{name: sql}`` (comment lines dropped)."""
    parts = _BLOCK.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in body.splitlines() if not line.lstrip().startswith("--")]
        queries[name] = "\n".join(lines).strip()
    return queries


@functools.cache
def queries(dialect: str) -> dict[str, str]:
    """The named queries of ``dialect`` (``sqlite`` or ``postgres``)."""
    text = resources.files(_PACKAGE).joinpath(f"{dialect}_queries.sql").read_text("utf-8")
    return parse_queries(text)


def migrations(dialect: str) -> list[tuple[str, str]]:
    """``(version, sql)`` for every migration file of ``dialect``, in order."""
    return migrations_in(resources.files(_PACKAGE).joinpath("migrations", dialect))


def migrations_in(folder: Traversable) -> list[tuple[str, str]]:
    """``(version, sql)`` for every ``.sql`` file of ``folder``, by name: the engine's own, or
    what a layer above adds to the same schema (applied after the engine's, in name order)."""
    files = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".sql")),
        key=lambda e: e.name,
    )
    return [(entry.name.removesuffix(".sql"), entry.read_text("utf-8")) for entry in files]


def split_statements(script: str) -> list[str]:
    """Split a migration script on ``;`` at line ends, except inside a ``$$``-quoted function
    body (our migrations keep no ``;`` in other literals)."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    statements: list[str] = []
    pending = ""
    for piece in "\n".join(lines).split(";\n"):
        pending = f"{pending};\n{piece}" if pending else piece
        if pending.count("$$") % 2 == 0:  # not inside a body
            statements.append(pending)
            pending = ""
    statements.append(pending)
    return [stmt.strip().removesuffix(";") for stmt in statements if stmt.strip().strip(";")]
