"""Secrets never leave the Edge and REST clients: what a function answers is redacted before it
becomes an error message, a step record, a call log entry or a log line.

A misbehaving function may echo what it received (its ``Authorization`` header, a header secret
such as ``x-cron-secret``) in its error text; that text then travels to the job's last error, its
events, the API, the console and the logs, where a read-only token can see it. Redacting where the
answer is read covers every one of those places at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

REDACTED = "[redacted]"


class Redactor:
    """Replaces each secret value by ``[redacted]`` in text and in decoded JSON."""

    __slots__ = ("_encoded", "_secrets")

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first: a secret that contains another is replaced whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._encoded = [s.encode() for s in self._secrets]

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def found_in(self, raw: bytes) -> bool:
        """Whether any secret appears in ``raw`` (a cheap test before decoding anything)."""
        return any(secret in raw for secret in self._encoded)

    def text(self, text: str) -> str:
        """``text`` with every secret replaced."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def json(self, value: Any) -> Any:
        """A JSON value with every secret replaced in its strings (keys included)."""
        if isinstance(value, str):
            return self.text(value)
        encoded = json.dumps(value, ensure_ascii=False)
        cleaned = self.text(encoded)
        return value if cleaned == encoded else json.loads(cleaned)

    def cut(self, raw: bytes, limit: int) -> tuple[str, bool]:
        """``raw`` as text, redacted *before* it is cut to ``limit`` bytes (a secret straddling
        the cut must not leave its first characters behind); and whether it was cut."""
        text = self.text(raw.decode("utf-8", errors="replace"))
        encoded = text.encode()
        if len(encoded) <= limit:
            return text, False
        return encoded[:limit].decode("utf-8", errors="ignore"), True
